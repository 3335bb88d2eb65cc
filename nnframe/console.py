"""The ``nnframe`` command's entry point: the CLI imported under a guard.

Importing the CLI loads typer and rich (about a tenth of a second); a Ctrl-C
in that time came out of the import as Python's traceback, before
:func:`nnframe.cli.main` could handle it as every later one is handled.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from nnframe.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        raise SystemExit(130) from None
    cli_main()

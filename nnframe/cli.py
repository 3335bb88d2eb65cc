"""The ``nnframe`` command line: parses arguments and delegates; the work lives in the library.

Exit codes: 0 success; 1 internal error, a failed ``gradcheck``, or the file
system refusing a write mid-run (a full disk: one message, no traceback); 2 bad
input (config, data, arguments), one message and no traceback; 3 training
diverged; 130/143 interrupted.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

class _HelpWithoutType:
    """typer shows a flag's type, ``<bool>``, unless it has a metavar: the help option's read as if it took a
    value."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class Group(_HelpWithoutType, TyperGroup):
    """The ``nnframe`` group, its help option shown without a type."""


class Command(_HelpWithoutType, TyperCommand):
    """An ``nnframe`` subcommand, its help option shown without a type."""


app = typer.Typer(
    cls=Group,
    name="nnframe",
    help="Train numpy neural networks from YAML experiments, with plugins and TensorBoard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., Any])
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})
"""The storage failing a write (full, over a limit, read-only, broken): the disk, not the code, is at fault, so no
traceback."""
PLACE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.ENAMETOOLONG})
"""A file that may not be written or read where it is (permissions, a path too long): no traceback where the error
names the file, which says where to look, and was not raised in a plugin's code, whose bug it may be."""
TABLE_WIDTH = 1000
"""Columns a table may take when the output is not a terminal."""


def path_given(text: str | os.PathLike[str]) -> Path:
    """A path argument or option (or its default, which typer passes too), ``~`` expanded as the shell would had
    it not been written ``--opt=~/x``; an empty one (an unset shell variable) is refused rather than read as the
    working directory."""
    text = os.fspath(text)
    if not text.strip():
        raise typer.BadParameter("is empty; give a path (an unset shell variable?)")
    path = Path(text)
    try:
        return path.expanduser()
    except RuntimeError:  # ~name of no user on this machine
        raise typer.BadParameter(f"{text!r}: no home directory is known for {path.parts[0]!r}") from None


ConfigArg = Annotated[Path, typer.Argument(help="Experiment config (YAML).", show_default=False, parser=path_given)]
OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(help="Overrides such as optimizer.lr=0.1 model.0.out=20 (values are YAML).", show_default=False),
]
RunsDirArg = Annotated[Path, typer.Argument(help="Runs directory.", parser=path_given)]
"""The runs directory ``runs`` and ``board`` read; ``runs`` in the working directory by default."""
StrictOption = Annotated[
    bool, typer.Option("--strict-plugins", metavar="",
                       help="Treat a broken plugin as an error (also NNFRAME_STRICT_PLUGINS=1).")
]


def fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def reports_errors(command: F) -> F:
    """Turn nnframe's errors into a message and an exit code; anything else is a bug (exit 1)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from nnframe.errors import NNFrameError, Terminated

        try:
            return command(*args, **kwargs)
        except NNFrameError as exc:
            fail(str(exc), getattr(exc, "exit_code", 1))
        except KeyboardInterrupt as exc:
            fail(_with_notes("interrupted", exc), 130)
        except Terminated as exc:
            fail(_with_notes("interrupted by SIGTERM", exc), 143)
        except typer.Exit:
            raise
        except SystemExit as exc:  # a plugin's sys.exit(): its code stands, with what became of the run
            for note in getattr(exc, "__notes__", []):
                typer.echo(f"note: {note}", err=True)
            raise
        except OSError as exc:
            if exc.errno not in STORAGE_ERRNOS and not (exc.errno in PLACE_ERRNOS and exc.filename
                                                        and _origin_of(exc) is None):
                _note_plugin_origin(exc)
                raise
            where = f": {exc.filename}" if exc.filename else ""
            fail(_with_notes(f"{exc.strerror}{where}", exc), 1)
        except Exception as exc:
            _note_plugin_origin(exc)
            raise

    return wrapper  # type: ignore[return-value]


def _with_notes(message: str, exc: BaseException) -> str:
    """``message`` and the notes the run added to ``exc`` (a plugin's hook failing while the run stopped)."""
    return " ".join([message, *getattr(exc, "__notes__", [])])


def _origin_of(exc: BaseException) -> str | None:
    """The plugin code ``exc`` was raised in (see :func:`nnframe.plugins.plugin_origin`); looking it up must never
    hide the error itself, so its own failure is passed over."""
    from nnframe.plugins import plugin_origin

    try:
        return plugin_origin(exc)
    except Exception:
        return None


def _note_plugin_origin(exc: Exception) -> None:
    """A bug's traceback ends with the plugin distribution it came from, unless a note names it already."""
    if not any(note.startswith("(raised ") for note in getattr(exc, "__notes__", [])):
        origin = _origin_of(exc)
        if origin is not None:
            exc.add_note(origin)


def plugin_manager(strict: bool = False, allow_clashes: bool = False) -> Any:
    from nnframe.plugins import get_plugin_manager

    plugins = get_plugin_manager(strict=strict or None, allow_clashes=allow_clashes)
    for broken in plugins.broken:
        typer.echo(f"warning: {broken.describe()}", err=True)
    return plugins


@app.command(cls=Command)
@reports_errors
def train(
    config: ConfigArg,
    overrides: OverridesArg = None,
    runs_dir: Annotated[Path | None, typer.Option(
        "--runs-dir", metavar="<path>", parser=path_given, show_default=False,
        help="Where run directories go (default: runs); with --resume, the run's.")] = None,
    resume: Annotated[Path | None, typer.Option(
        "--resume", metavar="<path>", parser=path_given, help="Continue the run in this directory.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", metavar="", help="No progress display.")] = False,
    strict_plugins: StrictOption = False,
) -> None:
    """Train an experiment and log it to a new run directory."""
    from nnframe.launch import train as run_training

    from nnframe.tracking import lies_in

    if resume is not None and runs_dir is not None and not lies_in(resume, runs_dir):
        fail(f"--runs-dir {runs_dir} is not where run {resume} lies; a resume stays in the run's directory, so "
             "leave --runs-dir out", 2)
    runs_dir = Path("runs") if runs_dir is None else runs_dir
    result = run_training(config, list(overrides or []), plugin_manager(strict_plugins), runs_dir=runs_dir,
                          resume=resume, quiet=quiet, on_note=lambda note: typer.echo(f"note: {note}", err=True))
    typer.echo(f"run: {result.run_dir}")
    from nnframe.formatting import format_metric

    for name, value in result.summary.get("metrics", {}).items():
        if value is not None:
            typer.echo(f"{name}: {format_metric(value)}")


@app.command(cls=Command)
@reports_errors
def validate(config: ConfigArg, overrides: OverridesArg = None, strict_plugins: StrictOption = False) -> None:
    """Check a config (and its data) and print it fully resolved, with the notes training would print."""
    from nnframe.launch import config_notes, prepare

    experiment = prepare(config, list(overrides or []), plugin_manager(strict_plugins))
    for note in config_notes(experiment):
        typer.echo(f"note: {note}", err=True)
    typer.echo(experiment.config.to_yaml(), nl=False)


@app.command(cls=Command)
@reports_errors
def schema(strict_plugins: StrictOption = False) -> None:
    """Print the JSON Schema of experiment configs, plugin components included."""
    from nnframe.config import ConfigModels

    typer.echo(json.dumps(ConfigModels(plugin_manager(strict_plugins)).json_schema(), indent=2))


@app.command(cls=Command)
@reports_errors
def plugins(
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Machine-readable output.")] = False,
    strict_plugins: StrictOption = False,
) -> None:
    """List every registered component by kind, and broken plugins with their errors."""
    from nnframe.listing import plugins_json, plugins_table

    manager = plugin_manager(strict_plugins, allow_clashes=True)
    from nnframe.plugin_distributions import near_miss_groups

    for near in near_miss_groups():
        typer.echo(f"warning: {near}", err=True)
    if as_json:
        typer.echo(json.dumps(plugins_json(manager), indent=2))
    else:
        print_table(table_console(), plugins_table(manager))
    if manager.clashes:  # listed first, since every other command stops at them
        fail("; ".join(manager.clashes), 2)


@app.command(cls=Command)
@reports_errors
def gradcheck(
    config: ConfigArg,
    overrides: OverridesArg = None,
    batch: Annotated[int, typer.Option(min=1, help="Examples in the checked batch.")] = 4,
    tolerance: Annotated[float, typer.Option(help="Largest relative error accepted (above 0).")] = 1e-5,
    strict_plugins: StrictOption = False,
) -> None:
    """Check the configured model's and loss's gradients numerically in float64 (exit 1 if any fails)."""
    from nnframe.gradcheck import KINK_NOTE, check_experiment

    report = check_experiment(config, list(overrides or []), plugin_manager(strict_plugins), batch, tolerance)
    typer.echo(f"{'gradient':<30} relative error")
    for name, error in report.errors.items():
        verdict = "" if error <= tolerance else "  FAIL"
        typer.echo(f"{name:<30} {error:.3e}{verdict}")
    for problem in report.problems:
        typer.echo(f"problem: {problem}")
    if report.zero:
        typer.echo(f"note: the model's output does not depend on {', '.join(report.zero)} on this batch (their "
                   "gradients are zero, numerically too, up to rounding), as a bias just before a batch norm's is; "
                   "a node that reads its own copy of a parameter would look like this too")
    for note in report.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"worst: {report.worst_name} {report.worst_error:.3e} (tolerance {tolerance:g})")
    if not report.ok:
        reason = report.problems[0] if report.problems else (
            f"{report.worst_name} has relative error {report.worst_error:.3e} (tolerance {tolerance:g})")
        loss_ok = not any(name.startswith("loss/") and not error <= tolerance for name, error in report.errors.items())
        around = (" (but the model passes around the values it failed at: see the note on a kink)"
                  if KINK_NOTE in report.notes and loss_ok else "")
        fail(f"gradient check failed: {reason}{around}", 1)
    typer.echo("gradient check passed")


def table_console() -> Any:
    """A console for tables: the terminal's width, or wide enough not to cut cells when the output is a
    pipe or a file (rich would assume 80 columns); ``COLUMNS`` still sets it."""
    from rich.console import Console

    unbounded = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    return Console(width=TABLE_WIDTH if unbounded else None)


@app.command(cls=Command)
@reports_errors
def runs(
    runs_dir: RunsDirArg = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Machine-readable output.")] = False,
) -> None:
    """List runs, newest first, with their status and final metrics."""
    from nnframe.run_listing import format_runs_table, list_runs, runs_json

    records = list_runs(runs_dir)
    if as_json:
        typer.echo(json.dumps(runs_json(records), indent=2))
    else:
        table = format_runs_table(records)
        if narrowest(table) > table_console().width:  # a narrow terminal: the overrides are in --json too
            table = format_runs_table(records, with_overrides=False)
        print_whole(table)


UNCLAMPED = 100_000
"""A width to measure a table in: rich reports no minimum above the width it is given."""


def narrowest(table: Any) -> int:
    """The fewest columns ``table`` takes without cutting a cell short."""
    from rich.measure import Measurement

    console = table_console()
    return Measurement.get(console, console.options.update_width(UNCLAMPED), table).minimum


def print_whole(table: Any) -> None:
    """Print ``table`` on :func:`table_console`, made wider where the terminal is narrower than the table's
    narrowest form: the terminal then wraps its lines, rather than numbers being cut to ``0.…``."""
    from rich.console import Console

    console, needed = table_console(), narrowest(table)
    print_table(console if needed <= console.width else Console(width=needed), table)


def print_table(console: Any, table: Any) -> None:
    """Print ``table``; to a pipe or a file without the spaces rich pads each line with to the table's width."""
    if sys.stdout.isatty():
        console.print(table)
        return
    with console.capture() as captured:
        console.print(table)
    typer.echo("\n".join(line.rstrip() for line in captured.get().split("\n")), nl=False)


@app.command(cls=Command)
@reports_errors
def board(
    runs_dir: RunsDirArg = Path("runs"),
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 6006,
) -> None:
    """Start TensorBoard on the runs directory."""
    from nnframe.board import launch_board

    raise typer.Exit(launch_board(runs_dir, host=host, port=port))


def _print_version(asked: bool) -> None:
    if asked:
        from nnframe import __version__

        typer.echo(f"nnframe {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", metavar="", is_eager=True, callback=_print_version,
                                          help="Show nnframe's version and exit.")] = False,
) -> None:
    """Train numpy neural networks from YAML experiments, with plugins and TensorBoard."""


def main() -> None:
    from nnframe.errors import Terminated, raise_terminated
    from nnframe.held_signals import not_ignored
    from nnframe.output_streams import guard_output_streams

    guard_output_streams()
    if not_ignored((signal.SIGTERM,)):  # outside training, which finishes its step and saves first
        signal.signal(signal.SIGTERM, raise_terminated)
    try:
        app()
    except Terminated:  # before a command's own handling began (while the arguments were read)
        typer.echo("error: interrupted by SIGTERM", err=True)
        raise SystemExit(143) from None
    except KeyboardInterrupt:  # likewise, and while typer builds the commands
        typer.echo("error: interrupted", err=True)
        raise SystemExit(130) from None


if __name__ == "__main__":
    sys.exit(main())

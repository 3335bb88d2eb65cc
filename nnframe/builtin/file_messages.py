"""Messages shared by the file datasets: a name missing from a file, a file the system refuses to read."""

from __future__ import annotations

from pathlib import Path

from nnframe.errors import DataError, close_match, did_you_mean


def missing_message(message: str, name: str, present: list[str], what: str) -> str:
    """``message`` with the names ``present`` and the close match of ``name`` among them."""
    message += f"; {what} present: {', '.join(present) if present else '(none)'}"
    return message + did_you_mean(close_match(name, present))


def unreadable(kind: str, path: Path, exc: OSError) -> DataError:
    """A data file the system refuses to read (EIO, EACCES): the input is at fault, not the disk of the run."""
    return DataError(f"{kind} file {path} cannot be read: {exc.strerror or exc}")

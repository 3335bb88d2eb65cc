"""The command line's stdout and stderr when nobody reads them: closed at start, or a pipe whose reader quit.

A command's outcome is its work, not its output: ``nnframe train ... | head -1``
must still finish the run and exit 0, and ``nnframe gradcheck ... | head``
must still exit 1 for a wrong gradient. Click exits 1 at the first write that
finds the pipe broken, so the streams are made to drop their output instead.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, TextIO


class ReaderMayQuit:
    """A text stream that, once a write or flush finds its pipe broken, sends the rest of its output to /dev/null.

    The stream's file descriptor itself is pointed at /dev/null, so that what
    is still buffered and the flush at exit go nowhere too, instead of
    printing "Exception ignored ... BrokenPipeError". Everything else is the
    wrapped stream's.
    """

    def __init__(self, stream: TextIO | BinaryIO, binary: bool = False) -> None:
        self._stream = stream
        self._binary = binary
        self._buffer: ReaderMayQuit | None = None

    @property
    def buffer(self) -> ReaderMayQuit:
        """The binary stream below, guarded too: click writes there itself when the text stream's encoding
        is one it will not use (ASCII under ``LC_ALL=C``)."""
        if self._buffer is None:
            self._buffer = ReaderMayQuit(self._stream.buffer, binary=True)  # type: ignore[union-attr]
        return self._buffer

    def write(self, text: Any) -> int:
        with self._dropped_when_unread():
            return self._stream.write(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self._dropped_when_unread():
            self._stream.flush()

    @contextmanager
    def _dropped_when_unread(self) -> Iterator[None]:
        try:
            yield
        except BrokenPipeError:
            self._reader_quit()
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            self._unwritable()

    def _unwritable(self) -> None:
        """The descriptor was open at start but not for writing (a launcher script's own file, ``2>&-``
        under a pyenv shim): it is someone else's, so only this stream lets go of it."""
        self._stream = open(os.devnull, "wb") if self._binary else open(os.devnull, "w", encoding="utf-8")

    def _reader_quit(self) -> None:
        try:
            target = self._stream.fileno()
        except (OSError, ValueError, io.UnsupportedOperation):
            self._unwritable()
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, target)
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_output_streams() -> None:
    """Give a stream closed when the process started (``>&-``; Python makes it ``None``) a sink, let the
    readers of both streams quit, and on a terminal write a character its encoding lacks as ``?``: the
    progress bar's ellipsis on an ASCII terminal failed a finished run. A file or a pipe keeps the text
    exact, or fails, since a script may read a path from it."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))
        elif not isinstance(stream, ReaderMayQuit):
            if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict" and stream.isatty():
                stream.reconfigure(errors="replace")
            setattr(sys, name, ReaderMayQuit(stream))

"""Ctrl-C and SIGTERM held back while code runs that could swallow the exception they raise.

pydantic's compiled core calls back into Python while it builds, validates
and serialises; an exception a signal handler raises in such a callback can
come out as a schema error, or as a serializer warning with the signal lost.
So the config's validation and resolution run with the two signals held and
delivered, to the handler that was in place, as soon as they are done.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nnframe.errors import Terminated

HELD = (signal.SIGINT, signal.SIGTERM)


def not_ignored(signals: tuple[int, ...]) -> list[int]:
    """The signals of ``signals`` this process does not ignore: one ignored since it started, as a script's
    background job starts with Ctrl-C ignored, stays ignored, as Python itself leaves an inherited ignore of
    SIGINT alone."""
    return [sig for sig in signals if signal.getsignal(sig) != signal.SIG_IGN]


@contextmanager
def signals_held() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM recorded, not handled; then deliver them in the order they came."""
    held = HeldSignals()
    try:
        yield
    finally:
        held.release()


class HeldSignals:
    """SIGINT and SIGTERM recorded from its making until :meth:`release`, which delivers them to the handlers
    that were in place (outside the main thread, where no handler can be set, nothing).

    For a span that is no one block: a stopped run's checkpoint, its plugins' ``nnframe_run_end`` and the
    ``summary.json`` written after it, which a process pool's ``terminate()`` (a SIGTERM just after the
    Ctrl-C) would otherwise cut short. ``sigints`` Ctrl-Cs are held at most; the next raises
    ``KeyboardInterrupt`` at once, a way out of a save or a plugin that hangs.
    """

    def __init__(self, sigints: int | None = None) -> None:
        self.caught: list[int] = []
        self.sigints = sigints
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._record) for sig in not_ignored(HELD)}

    def _record(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.sigints is not None and self.caught.count(signal.SIGINT) >= self.sigints:
            raise KeyboardInterrupt
        self.caught.append(signum)

    def release(self, default_sigterm_ends_process: bool = True) -> None:
        """Restore the handlers, then deliver what was held: a SIGTERM first, which ends a process whose
        handler is the default one whatever a Ctrl-C's handler would raise, then each Ctrl-C in turn (a
        training run's second one stops it at once). Without ``default_sigterm_ends_process`` a SIGTERM whose
        handler is the default one raises :class:`~nnframe.errors.Terminated` instead."""
        caught = self.take()
        if signal.SIGTERM in caught:
            if not default_sigterm_ends_process and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                raise Terminated
            signal.raise_signal(signal.SIGTERM)
        for sig in caught:
            if sig != signal.SIGTERM:
                signal.raise_signal(sig)

    def hand_over(self) -> tuple[list[int], dict[int, Any]]:
        """What was held and the handlers in place before, leaving whatever handler the caller has set since:
        for a caller that sets its own first, so that no signal falls between the two (see ``Trainer.fit``).
        :meth:`take` still puts those handlers back, for a plugin that saved this one and set it again."""
        caught, self.caught = self.caught, []
        return caught, dict(self._previous)

    def take(self) -> list[int]:
        """Restore the handlers and return what was held, undelivered, for a caller that acts on it itself."""
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        caught, self.caught = self.caught, []
        return caught

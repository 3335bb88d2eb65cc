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

HELD = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_held() -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM recorded, not handled; then deliver them in the order they came."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def record(signum: int, frame: Any) -> None:
        caught.append(signum)

    previous = {sig: signal.signal(sig, record) for sig in HELD}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in caught:  # each in turn: a training run's second Ctrl-C stops it at once
            signal.raise_signal(sig)

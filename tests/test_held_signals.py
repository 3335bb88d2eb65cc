"""Ctrl-C and SIGTERM held back while pydantic runs, then delivered to the handler in place."""

from __future__ import annotations

import os
import signal

import pytest

from nnframe.errors import Terminated, raise_terminated
from nnframe.held_signals import HeldSignals, signals_held


@pytest.fixture
def terminating():
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_a_signal_in_the_block_is_delivered_after_it(terminating) -> None:
    done = []
    with pytest.raises(Terminated):
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("the block ran to its end")
    assert done == ["the block ran to its end"]
    assert signal.getsignal(signal.SIGTERM) is raise_terminated


def test_ctrl_c_in_the_block_is_a_keyboard_interrupt_after_it() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("the block ran to its end")
    assert done == ["the block ran to its end"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_every_signal_held_is_delivered_in_turn() -> None:
    seen = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        assert seen == [signal.SIGINT, signal.SIGINT]  # a training run's second Ctrl-C stops it at once
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_block_without_a_signal_changes_nothing(terminating) -> None:
    with signals_held():
        pass
    assert signal.getsignal(signal.SIGTERM) is raise_terminated


def test_held_signals_deliver_a_sigterm_before_the_ctrl_cs_that_came_first() -> None:
    """A Ctrl-C's handler that raises would otherwise keep a SIGTERM behind it from ever being delivered, and a
    pool's worker, whose SIGTERM ends it, alive: terminate() then waits for ever."""
    delivered: list[int] = []
    before = {sig: signal.signal(sig, lambda signum, frame: delivered.append(signum))
              for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        held = HeldSignals()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
            os.kill(os.getpid(), sig)
        assert delivered == []
        held.release()
        assert delivered == [signal.SIGTERM, signal.SIGINT, signal.SIGINT]
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)

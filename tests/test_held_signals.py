"""Ctrl-C and SIGTERM held back while pydantic runs, then delivered to the handler in place."""

from __future__ import annotations

import os
import signal

import pytest

from nnframe.errors import Terminated, raise_terminated
from nnframe.held_signals import signals_held


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

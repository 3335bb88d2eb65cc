"""Shared test set-up: every test starts from a clean plugin environment."""

from __future__ import annotations

import pytest

from nnframe.plugins import AUTOLOAD_OFF_ENV, STRICT_ENV

pytest_plugins = ["fixtures.distributions"]


@pytest.fixture(autouse=True)
def clean_plugin_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's plugin switches must not change what a test (or its subprocesses) sees."""
    monkeypatch.delenv(AUTOLOAD_OFF_ENV, raising=False)
    monkeypatch.delenv(STRICT_ENV, raising=False)

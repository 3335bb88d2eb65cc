"""call_each: every implementation of a finishing hook runs, in pluggy's order, and no error is lost."""

from __future__ import annotations

import pluggy
import pytest

from nnframe.hook_calls import call_each
from nnframe.hookspecs import hookimpl
from nnframe.plugins import get_plugin_manager


class Ends:
    """Records its run_end; raises when given an error."""

    def __init__(self, name: str, calls: list[str], error: Exception | None = None) -> None:
        self.name, self.calls, self.error = name, calls, error

    @hookimpl
    def nnframe_run_end(self, run, status, summary):
        self.calls.append(self.name)
        if self.error is not None:
            raise self.error


class First(Ends):
    @hookimpl(tryfirst=True)
    def nnframe_run_end(self, run, status, summary):
        super().nnframe_run_end(run, status, summary)


def manager(*plugins: Ends) -> pluggy.PluginManager:
    pm = get_plugin_manager(autoload=False).pm
    for plugin in plugins:
        pm.register(plugin, name=plugin.name)
    return pm


def plugins(calls: list[str], errors: bool) -> list[Ends]:
    return [Ends("a", calls), Ends("b", calls, ValueError("b broke") if errors else None), First("c", calls),
            Ends("d", calls, KeyError("d broke") if errors else None)]


def test_every_implementation_runs_in_pluggys_order_and_the_first_error_carries_the_others() -> None:
    through_pluggy: list[str] = []
    manager(*plugins(through_pluggy, errors=False)).hook.nnframe_run_end(run=None, status="completed", summary={})
    calls: list[str] = []
    pm = manager(*plugins(calls, errors=True))
    with pytest.raises(KeyError) as caught:
        call_each(pm.hook.nnframe_run_end, run=None, status="completed", summary={})
    assert calls == through_pluggy == ["c", "d", "b", "a"]  # tryfirst first, then the last registered
    assert caught.value.__notes__ == ["(plugin b's nnframe_run_end failed too: ValueError('b broke'))"]


def test_a_hook_with_a_wrapper_goes_through_pluggy() -> None:
    calls: list[str] = []

    class Wrapper:
        name = "w"

        @hookimpl(wrapper=True)
        def nnframe_run_end(self, run, status, summary):
            calls.append("before")
            yield
            calls.append("after")

    pm = manager(Ends("a", calls))
    pm.register(Wrapper(), name="w")
    call_each(pm.hook.nnframe_run_end, run=None, status="completed", summary={})
    assert calls == ["before", "a", "after"]

"""call_each, call_holding_exit and HoldingExit: every implementation of a hook runs, in pluggy's order, and no error is
lost."""

from __future__ import annotations

import pluggy
import pytest

from nnframe.hook_calls import HoldingExit, call_each, call_holding_exit
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


class Wrapper:
    """A new-style wrapper around run_end: records before and after the call it wraps."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    @hookimpl(wrapper=True)
    def nnframe_run_end(self, run, status, summary):
        self.calls.append("before")
        try:
            return (yield)
        finally:
            self.calls.append("after")


def test_a_hook_with_a_wrapper_goes_through_pluggy() -> None:
    calls: list[str] = []
    pm = manager(Ends("a", calls))
    pm.register(Wrapper(calls), name="w")
    call_each(pm.hook.nnframe_run_end, run=None, status="completed", summary={})
    assert calls == ["before", "a", "after"]


def test_a_sys_exit_waits_for_the_other_implementations_and_a_failing_code_comes_first() -> None:
    calls: list[str] = []
    pm = manager(Ends("a", calls, SystemExit(3)), Ends("b", calls), First("c", calls, SystemExit(0)))
    held = call_holding_exit(pm.hook.nnframe_run_end, run=None, status="completed", summary={})
    assert calls == ["c", "b", "a"] and held.code == 3  # pluggy's order; a stop (0) gives way to a failure (3)
    assert call_holding_exit(manager(Ends("d", [])).hook.nnframe_run_end, run=None, status="x", summary={}) is None
    with pytest.raises(KeyError):  # any other error as pluggy raises it, at once
        call_holding_exit(manager(Ends("e", calls, KeyError("e"))).hook.nnframe_run_end, run=None, status="x",
                          summary={})


def test_a_sys_exit_in_a_hook_with_a_wrapper_is_held_too() -> None:
    calls: list[str] = []
    pm = manager(Ends("a", calls, SystemExit(0)))
    pm.register(Wrapper(calls), name="w")
    held = call_holding_exit(pm.hook.nnframe_run_end, run=None, status="completed", summary={})
    assert held is not None and held.code == 0 and calls == ["before", "a", "after"]


class Steps:
    """Records its step_end with the metrics it was given; raises when given an error. ``argnames`` picks the
    arguments it takes, as a hook implementation may take fewer than the spec, in any order."""

    def __init__(self, name: str, calls: list[tuple], error: BaseException | None = None,
                 takes: str = "run, metrics") -> None:
        self.name, self.calls, self.error = name, calls, error
        namespace: dict = {}
        exec(f"def nnframe_step_end({takes}):\n    return record({takes})", {"record": self.record}, namespace)
        self.nnframe_step_end = hookimpl(namespace["nnframe_step_end"])

    def record(self, *arguments: object) -> None:
        self.calls.append((self.name, *arguments))
        if self.error is not None:
            raise self.error


def test_holding_exit_follows_the_plugins_registered_and_unregistered_between_its_calls() -> None:
    calls: list[tuple] = []
    pm = get_plugin_manager(autoload=False).pm
    step_end = HoldingExit(pm.hook.nnframe_step_end)
    assert step_end("run", 1) is None and calls == []
    a = Steps("a", calls)
    pm.register(a, name="a")
    pm.register(Steps("b", calls, takes="metrics, run"), name="b")
    pm.register(Steps("c", calls, takes="metrics"), name="c")
    assert step_end("run", 2) is None
    assert calls == [("c", 2), ("b", 2, "run"), ("a", "run", 2)]  # pluggy's order, each with what it takes
    pm.unregister(a)
    pm.register(Steps("d", calls, SystemExit(0)), name="d")
    pm.register(Steps("e", calls, SystemExit(4), takes="run"), name="e")
    calls.clear()
    held = step_end("run", 3)
    assert calls == [("e", "run"), ("d", "run", 3), ("c", 3), ("b", 3, "run")] and held.code == 4
    pm.register(Steps("f", calls, KeyError("f")), name="f")
    with pytest.raises(KeyError):
        step_end("run", 4)


def test_holding_exit_calls_a_hook_with_a_wrapper_through_pluggy() -> None:
    calls: list = []

    class StepWrapper:
        @hookimpl(wrapper=True)
        def nnframe_step_end(self, run, metrics):
            calls.append("before")
            try:
                return (yield)
            finally:
                calls.append("after")

    pm = get_plugin_manager(autoload=False).pm
    pm.register(Steps("a", calls, SystemExit(0)), name="a")
    step_end = HoldingExit(pm.hook.nnframe_step_end)
    assert step_end("run", 1).code == 0 and calls == [("a", "run", 1)]
    calls.clear()
    pm.register(StepWrapper(), name="w")
    assert step_end("run", 2).code == 0 and calls == ["before", ("a", "run", 2), "after"]

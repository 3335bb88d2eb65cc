"""RunContext: per-run plugin objects are registered for the run and checked against the hook names."""

from __future__ import annotations

import pytest

from nnframe.errors import PluginError
from nnframe.hookspecs import hookimpl
from nnframe.plugins import get_plugin_manager
from nnframe.run import RunContext, StepMetrics


class Counter:
    def __init__(self) -> None:
        self.steps = 0

    @hookimpl
    def nnframe_step_end(self, run, metrics):
        self.steps += 1


class Misspelled:
    @hookimpl
    def nnframe_step_ned(self, run, metrics):
        pass


def make_run() -> RunContext:
    plugins = get_plugin_manager(autoload=False)
    return RunContext(name="demo", config={}, run_dir=None, plugin_manager=plugins.pm)


def test_registered_objects_receive_events_until_unregistered():
    run, counter = make_run(), Counter()
    run.register(counter)
    run.hook.nnframe_step_end(run=run, metrics=StepMetrics(1, 0, 1.0, 0.1))
    run.unregister_all()
    run.hook.nnframe_step_end(run=run, metrics=StepMetrics(2, 0, 1.0, 0.1))
    assert counter.steps == 1
    assert not run.plugin_manager.get_plugins()


def test_a_per_run_plugin_with_a_misspelled_hook_is_refused():
    run = make_run()
    with pytest.raises(PluginError, match="nnframe_step_ned"):
        run.register(Misspelled())
    assert not run.plugin_manager.get_plugins()

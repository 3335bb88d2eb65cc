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


class WrongArgument:
    @hookimpl
    def nnframe_log_metrics(self, run, metric):
        pass


class WrongArgumentAndName(WrongArgument):
    """Two mistakes: both are named at once."""

    @hookimpl
    def nnframe_run_strat(self, run):
        pass


class DefaultedArgument:
    """``metrics=None`` is never given: pluggy passes no argument that has a default."""

    @hookimpl
    def nnframe_step_end(self, run, metrics=None):
        pass


class MisspeltDefaultedArgument:
    """``metric=None`` for ``metrics``: never given either, and the hook's own ``metrics`` is not taken."""

    @hookimpl
    def nnframe_step_end(self, run, metric=None):
        pass


class ExtraParameters:
    """Parameters with defaults that are no hook argument are the plugin's own business, however they are named."""

    @hookimpl
    def nnframe_run_start(self, run, rng=None):
        pass

    @hookimpl
    def nnframe_run_end(self, run, status, summary, stats=None):
        pass


class FailingProperty:
    @property
    def writer(self):
        return self._writer

    @hookimpl
    def nnframe_step_end(self, run, metrics):
        pass


class Unmarked:
    def nnframe_step_end(self, run, metrics):
        pass


class WithoutSelf:
    @hookimpl
    def nnframe_run_start(run):  # noqa: N805  (the mistake itself)
        pass


class NamedOtherwise:
    """A first parameter named otherwise than ``self`` is the object all the same, and is accepted."""

    @hookimpl
    def nnframe_run_start(this, run):  # noqa: N805
        pass


@pytest.mark.parametrize(("plugin", "message"), [
    (WithoutSelf(), "run plugin test_run.WithoutSelf implements nnframe_run_start with 'run' first, where a method "
                    "takes self, so it would get the object itself as 'run'; write def nnframe_run_start(self, run)"),
    (Misspelled(), "run plugin test_run.Misspelled implements unknown hook 'nnframe_step_ned' "
                   "(did you mean 'nnframe_step_end'?)"),
    (WrongArgument(), "run plugin test_run.WrongArgument implements nnframe_log_metrics with the argument 'metric', "
                      "which the hook does not give (did you mean 'metrics'?); it gives (run, metrics); see "
                      "nnframe/hookspecs.py"),
    (WrongArgumentAndName(), "run plugin test_run.WrongArgumentAndName implements nnframe_log_metrics with the "
                             "argument 'metric', which the hook does not give (did you mean 'metrics'?); it gives "
                             "(run, metrics); implements unknown hook 'nnframe_run_strat' (did you mean "
                             "'nnframe_run_start'?)"),
    (DefaultedArgument(), "run plugin test_run.DefaultedArgument implements nnframe_step_end with a default for "
                          "'metrics', and pluggy never passes an argument that has a default (it keeps the default); "
                          "remove the default"),
    (MisspeltDefaultedArgument(), "run plugin test_run.MisspeltDefaultedArgument implements nnframe_step_end with a "
                                  "default for 'metric', and pluggy never passes"),
    (FailingProperty(), "run plugin test_run.FailingProperty: reading its attributes raised AttributeError: "
                        "'FailingProperty' object has no attribute '_writer' (raised in "),
    (Unmarked(), "run plugin test_run.Unmarked defines nnframe_step_end without @nnframe.hookimpl, "
                 "so nnframe never calls it"),
])
def test_a_per_run_plugin_with_a_broken_hook_is_refused_by_name(plugin: object, message: str):
    run = make_run()
    with pytest.raises(PluginError) as caught:
        run.register(plugin)
    assert str(caught.value).startswith(message)
    assert not run.plugin_manager.get_plugins()


def test_a_class_whose_hooks_are_methods_is_refused_and_its_instance_registered() -> None:
    """Given the class, pluggy would call its methods without self, and the first step would fail."""
    from nnframe.hook_checks import hook_problems

    class AsClass:
        @hookimpl
        def nnframe_step_end(self, run, metrics):
            pass

        @staticmethod
        @hookimpl
        def nnframe_run_start(run):
            pass

    class Static:
        @staticmethod
        @hookimpl
        def nnframe_run_start(run):
            pass

    assert hook_problems(AsClass) == ["is the class test_a_class_whose_hooks_are_methods_is_refused_and_its_instance_"
                                      "registered.<locals>.AsClass, whose hooks (nnframe_step_end) are methods that "
                                      "nothing would give self: register an instance, test_a_class_whose_hooks_are_"
                                      "methods_is_refused_and_its_instance_registered.<locals>.AsClass()"]
    assert hook_problems(AsClass()) == hook_problems(Static) == []
    run = make_run()
    with pytest.raises(PluginError, match=r"^run plugin test_run\.test_a_class_whose_hooks_are_methods_is_refused_"
                                          r"and_its_instance_registered\.<locals>\.AsClass is the class .* register "
                                          r"an instance"):
        run.register(AsClass)
    run.register(AsClass())
    assert run.plugin_manager.get_plugins()


def test_a_marked_callable_object_is_passed_over_as_pluggy_passes_it_over() -> None:
    from nnframe.hook_checks import hook_problems

    class Callable:
        def __call__(self, zzz):
            pass

    class Holder:
        nnframe_step_end = hookimpl(Callable())

    assert hook_problems(Holder()) == []


def test_a_hook_with_parameters_of_its_own_that_have_defaults_is_registered() -> None:
    run = make_run()
    run.register(ExtraParameters())
    assert run.plugin_manager.get_plugins()


def test_a_hook_named_attribute_that_fails_as_it_is_read_is_named_not_raised() -> None:
    class Failing:
        @property
        def nnframe_writer(self):
            raise RuntimeError("boom")

        @hookimpl
        def nnframe_run_start(self, run):
            pass

    with pytest.raises(PluginError, match=r"reading its attributes raised RuntimeError: boom"):
        make_run().register(Failing())


def test_a_hook_method_whose_first_parameter_is_named_otherwise_than_self_is_registered() -> None:
    run = make_run()
    run.register(NamedOtherwise())
    assert run.plugin_manager.get_plugins()


@pytest.mark.parametrize("reason", [None, ""])
def test_a_stop_without_a_reason_records_that_a_plugin_asked(reason) -> None:
    run = make_run()
    run.stop(reason)
    run.stop("a later reason")
    assert run.stop_reason == "a plugin asked to stop"


def test_every_error_of_nnframes_survives_pickling_as_a_worker_process_hands_it_back() -> None:
    """``multiprocessing`` and ``concurrent.futures`` pickle a worker's exception; an error whose constructor takes
    something other than its message used to fail there, and hang a Pool."""
    import pickle
    import signal as signals

    from nnframe import errors
    from nnframe.train import Interrupted

    made = [errors.ConfigError("bad lr", file="x.yaml", path="optimizer.lr"), errors.RunDirectoryGone("/r/1"),
            errors.UnknownComponentError("node", "afine", ["affine", "relu"]), Interrupted(signals.SIGINT),
            errors.DataError("no rows"), errors.NonFiniteError("nan at step 3")]
    made[3].add_note("(the run is in runs/x)")
    for error in made:
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error) and vars(again) == vars(error)
    assert pickle.loads(pickle.dumps(made[3])).exit_code == 130


def test_an_object_registered_already_cannot_be_registered_for_a_run() -> None:
    """pluggy's own error for it is a bare ValueError, which the command line takes for a bug."""
    from nnframe.plugins import get_plugin_manager
    from nnframe.run import run_plugin_problem

    plugins = get_plugin_manager()
    builtin = plugins.pm.get_plugin("tensorboard")
    assert "it is registered already" in run_plugin_problem(plugins.pm, builtin)
    assert plugins.pm.is_registered(builtin)

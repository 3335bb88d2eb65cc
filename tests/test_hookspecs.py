"""The plugin contract: each hook exercised by a test, and two meta-tests keeping the surface honest.

``HOOK_TESTS`` maps every hook in :mod:`nnframe.hookspecs` to the test that
exercises it; one meta-test checks the table covers exactly the hooks that
exist, another that every hook is documented (a docstring saying when it is
called, and a mention in the plugin guide, docs/plugins.md).
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from fixtures.distributions import Site
from fixtures.sources import component_plugin
from nnframe import hookspecs
from nnframe.checkpoint import Checkpointer, read_checkpoint, step_name
from nnframe.errors import NonFiniteError
from nnframe.launch import prepare
from nnframe.plugins import REGISTER_HOOKS, get_plugin_manager
from nnframe.run import RunContext
from nnframe.train import Trainer

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
HOOKS = sorted(name for name, value in vars(hookspecs).items()
               if callable(value) and hasattr(value, "nnframe_spec"))

RECORDER = '''
from nnframe import hookimpl

RECORDERS = []


class Recorder:
    """A stateful third-party logger: one per run, registered in nnframe_configure_run."""

    def __init__(self, run):
        self.events = [("configure_run", run.name, run.step)]

    @hookimpl
    def nnframe_run_start(self, run):
        self.events.append(("run_start", run.step))

    @hookimpl
    def nnframe_step_end(self, run, metrics):
        self.events.append(("step_end", metrics.step, metrics.logged, metrics.accuracy is not None))

    @hookimpl
    def nnframe_log_metrics(self, run, metrics):
        self.events.append(("log_metrics", metrics.step, sorted(metrics.grad_norms)))

    @hookimpl
    def nnframe_evaluation_end(self, run, metrics):
        self.events.append(("evaluation_end", metrics.step, metrics.accuracy is not None))

    @hookimpl
    def nnframe_checkpoint(self, run):
        self.events.append(("checkpoint", run.step))

    @hookimpl
    def nnframe_run_end(self, run, status, summary):
        self.events.append(("run_end", status, summary["steps"]))


@hookimpl
def nnframe_configure_run(run):
    recorder = Recorder(run)
    RECORDERS.append(recorder)
    run.register(recorder)
'''
CONFIG = {
    "name": "events",
    "seed": 7,
    "data": {"type": "spiral", "points_per_class": 10, "classes": 3, "val_fraction": 0.2},
    "model": [{"type": "affine", "out": 4}, {"type": "tanh"}, {"type": "affine", "out": 3}],
    "loss": {"type": "softmax_cross_entropy"},
    "optimizer": {"type": "sgd", "lr": 0.5},
    "train": {"max_steps": 12, "batch_size": 8, "eval_every": 5},
    "log": {"every": 4},
}


def trainer_for(tmp_path: Path, plugins, **sections: object) -> Trainer:
    path = tmp_path / "events.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, **sections}, sort_keys=False), encoding="utf-8")
    experiment = prepare(path, [], plugins)
    run = RunContext(name=experiment.settings.name, config=experiment.config.resolved, run_dir=None,
                     plugin_manager=plugins.pm)
    return Trainer(experiment, run)


# ------------------------------------------------------ registration hooks

REGISTER_CASES = [
    ("nnframe_register_nodes", "node", "clamp"),
    ("nnframe_register_losses", "loss", "hinge"),
    ("nnframe_register_optimizers", "optimizer", "lion"),
    ("nnframe_register_datasets", "dataset", "moons"),
    ("nnframe_register_callbacks", "callback", "lr_finder"),
    ("nnframe_register_schedules", "schedule", "one_cycle"),
]


@pytest.mark.parametrize("hook,kind,name", REGISTER_CASES)
def test_registration_hook_adds_its_components(site: Site, hook: str, kind: str, name: str) -> None:
    assert REGISTER_HOOKS[kind] == hook
    site.add("nnframe-extra", {"nnframe_extra": component_plugin(kind, name)},
             entry_points={"extra": "nnframe_extra"}, version="0.4.0")
    plugins = get_plugin_manager()
    registry = plugins.registry(kind)
    assert registry.get(name).kind == kind
    origin = registry.plugin_of(name)
    assert (origin.name, origin.dist, origin.version) == ("extra", "nnframe-extra", "0.4.0")
    others = [other for other in ("node", "loss", "optimizer", "dataset", "callback", "schedule") if other != kind]
    assert all(name not in plugins.registry(other) for other in others)


def test_registration_hooks_are_called_once_per_plugin_manager(site: Site) -> None:
    site.add("nnframe-counted", {"nnframe_counted": component_plugin("node", "clamp")
                                 .replace("    return [", "    CALLS.append(1)\n    return [")
                                 + "\nCALLS = []\n"})
    plugins = get_plugin_manager()
    for _ in range(3):
        assert "clamp" in plugins.nodes
    assert importlib.import_module("nnframe_counted").CALLS == [1]


# ---------------------------------------------------------- training events


def test_per_run_logger_receives_every_event_and_is_unregistered(site: Site, tmp_path: Path) -> None:
    site.add("nnframe-recorder", {"nnframe_recorder": RECORDER}, entry_points={"recorder": "nnframe_recorder"})
    plugins = get_plugin_manager()
    summary = trainer_for(tmp_path, plugins).fit()
    [recorder] = importlib.import_module("nnframe_recorder").RECORDERS
    # 12 steps, log.every 4 -> steps 4, 8, 12 are logged with accuracy; eval_every 5 -> evaluations at
    # steps 5 and 10, plus the final one at step 12 because the last evaluation was not at step 12.
    steps = [("step_end", step, step % 4 == 0, step % 4 == 0) for step in range(1, 13)]
    evaluations = {5: ("evaluation_end", 5, True), 10: ("evaluation_end", 10, True),
                   12: ("evaluation_end", 12, True)}
    norms = ["affine1/W", "affine1/b", "affine2/W", "affine2/b", "global"]
    expected = [("configure_run", "events", 0), ("run_start", 0)]
    for event in steps:
        expected.append(event)
        if event[2]:
            expected.append(("log_metrics", event[1], norms))
        if event[1] in evaluations:
            expected.append(evaluations[event[1]])
    expected.append(("run_end", "completed", 12))
    assert recorder.events == expected
    assert summary["steps"] == 12
    assert not plugins.pm.is_registered(recorder)
    assert recorder not in plugins.pm.get_plugins()


def test_each_run_gets_its_own_logger_and_the_last_one_hears_nothing_more(site: Site, tmp_path: Path) -> None:
    site.add("nnframe-recorder", {"nnframe_recorder": RECORDER}, entry_points={"recorder": "nnframe_recorder"})
    plugins = get_plugin_manager()
    trainer_for(tmp_path, plugins).fit()
    trainer_for(tmp_path, plugins, train={"max_steps": 3, "batch_size": 8}).fit()
    first, second = importlib.import_module("nnframe_recorder").RECORDERS
    assert first.events[-1] == ("run_end", "completed", 12)
    assert [event[0] for event in second.events] == [  # log.every 4, but the last step is always logged
        "configure_run", "run_start", "step_end", "step_end", "step_end", "log_metrics", "evaluation_end", "run_end"]
    assert plugins.pm.get_plugins() == {plugins.pm.get_plugin(name) for name in plugins.infos}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_run_end_reports_divergence_and_still_unregisters(site: Site, tmp_path: Path) -> None:
    site.add("nnframe-recorder", {"nnframe_recorder": RECORDER}, entry_points={"recorder": "nnframe_recorder"})
    plugins = get_plugin_manager()
    trainer = trainer_for(tmp_path, plugins, optimizer={"type": "sgd", "lr": 1e38})
    with np.errstate(all="ignore"), pytest.raises(NonFiniteError):
        trainer.fit()
    [recorder] = importlib.import_module("nnframe_recorder").RECORDERS
    assert recorder.events[-1][:2] == ("run_end", "diverged")
    assert not plugins.pm.is_registered(recorder)


def test_checkpoint_hook_is_called_for_every_checkpoint(site: Site, tmp_path: Path) -> None:
    site.add("nnframe-recorder", {"nnframe_recorder": RECORDER}, entry_points={"recorder": "nnframe_recorder"})
    plugins = get_plugin_manager()
    trainer = trainer_for(tmp_path, plugins, checkpoint={"every": 6, "keep": 5, "best_metric": "val/loss"})
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    trainer.checkpointer = Checkpointer(directory, trainer.settings.checkpoint, trainer.experiment.config)
    trainer.fit()
    [recorder] = importlib.import_module("nnframe_recorder").RECORDERS
    saved = [event[1] for event in recorder.events if event[0] == "checkpoint"]
    # step checkpoints at 6 and 12; evaluations at 5, 10 and 12, the first of which always writes best
    assert saved[:2] == [5, 6] and 12 in saved and set(saved) <= {5, 6, 10, 12}
    assert read_checkpoint(directory / "best.json").step in saved
    assert sorted(path.name for path in directory.glob("step-*.json")) == [f"{step_name(step)}.json"
                                                                          for step in (6, 12)]


# --------------------------------------------------------------- meta-tests

HOOK_TESTS = {
    "nnframe_register_nodes": test_registration_hook_adds_its_components,
    "nnframe_register_losses": test_registration_hook_adds_its_components,
    "nnframe_register_optimizers": test_registration_hook_adds_its_components,
    "nnframe_register_datasets": test_registration_hook_adds_its_components,
    "nnframe_register_callbacks": test_registration_hook_adds_its_components,
    "nnframe_register_schedules": test_registration_hook_adds_its_components,
    "nnframe_configure_run": test_per_run_logger_receives_every_event_and_is_unregistered,
    "nnframe_run_start": test_per_run_logger_receives_every_event_and_is_unregistered,
    "nnframe_step_end": test_per_run_logger_receives_every_event_and_is_unregistered,
    "nnframe_log_metrics": test_per_run_logger_receives_every_event_and_is_unregistered,
    "nnframe_evaluation_end": test_per_run_logger_receives_every_event_and_is_unregistered,
    "nnframe_run_end": test_per_run_logger_receives_every_event_and_is_unregistered,
    "nnframe_checkpoint": test_checkpoint_hook_is_called_for_every_checkpoint,
}


def mentions(test, hook: str) -> bool:
    """Whether ``test`` names ``hook`` in its parametrization, or its event (``step_end``) in its body."""
    marks = getattr(test, "pytestmark", [])
    if any(hook in repr(mark.args) for mark in marks):
        return True
    return f'"{hook.removeprefix("nnframe_")}"' in inspect.getsource(test)


def test_every_hook_has_a_test() -> None:
    assert HOOKS, "no hooks found in nnframe.hookspecs"
    assert set(HOOK_TESTS) == set(HOOKS)
    for hook, test in HOOK_TESTS.items():
        assert test.__name__.startswith("test_") and globals()[test.__name__] is test, hook
        assert mentions(test, hook), f"{test.__name__} does not exercise {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_prefixed_and_typed(hook: str) -> None:
    assert hook.startswith("nnframe_")
    signature = inspect.signature(getattr(hookspecs, hook))
    assert signature.return_annotation is not inspect.Signature.empty
    assert all(parameter.annotation is not inspect.Parameter.empty for parameter in signature.parameters.values())


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_docstring_says_when_it_is_called(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert doc.strip(), f"{hook} has no docstring"
    assert re.search(r"\bcalled\b", doc, re.IGNORECASE), f"{hook}'s docstring does not say when it is called"


def plugin_guide() -> str:
    """docs/plugins.md, the plugin guide the README's plugin section points to."""
    if not GUIDE.exists():
        pytest.fail(f"{GUIDE} does not exist; the plugin guide must name every hook")
    return GUIDE.read_text(encoding="utf-8")


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_named_in_the_plugin_guide(hook: str) -> None:
    assert hook in plugin_guide()

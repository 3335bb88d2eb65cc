"""Callbacks: per-run plugins that a config lists under ``callbacks``, with the built-in ``early_stopping``."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import nnframe
from fixtures.console import NNFRAME
from fixtures.distributions import Site
from nnframe.builtin.callbacks import EarlyStopping, EarlyStoppingParams, early_stopping
from nnframe.components import CallbackContext
from nnframe.errors import ConfigError, PluginError
from nnframe.plugins import get_plugin_manager
from nnframe.run import EvalMetrics

SPIRAL = {
    "name": "stopping",
    "seed": 3,
    "data": {"type": "spiral", "points_per_class": 30, "classes": 3, "val_fraction": 0.2},
    "model": [{"type": "affine", "out": 8}, {"type": "sigmoid"}, {"type": "affine", "out": 3}],
    "loss": {"type": "softmax_cross_entropy"},
    "optimizer": {"type": "sgd", "lr": 1e-4},  # the validation loss moves by far less than min_delta
    "train": {"max_steps": 40, "batch_size": 8, "eval_every": 5, "dtype": "float64"},
    "log": {"tensorboard": False},
    "callbacks": [{"type": "early_stopping", "patience": 3, "min_delta": 1e-3}],
}

COUNTER = '''
from pydantic import Field
import nnframe
from nnframe.components import callback


class CountParams(nnframe.Params):
    every: int = Field(1, ge=1)


class StepCounter:
    def __init__(self, name, every):
        self.name, self.every = name, every

    @nnframe.hookimpl
    def nnframe_step_end(self, run, metrics):
        if metrics.step % self.every == 0:
            run.state[self.name] = run.state.get(self.name, 0) + 1


class Silent:
    """Implements no hook: a mistake nnframe names."""


class Misspelled:
    @nnframe.hookimpl
    def nnframe_step_ned(self, run, metrics):
        pass


class WrongArgument:
    @nnframe.hookimpl
    def nnframe_evaluation_end(self, run, metric):
        pass


SHARED = StepCounter("shared", 1)


@nnframe.hookimpl
def nnframe_register_callbacks():
    return [callback("step_counter", CountParams, lambda params, ctx: StepCounter(ctx.name, params.every)),
            callback("shared", CountParams, lambda params, ctx: SHARED),
            callback("silent", CountParams, lambda params, ctx: Silent()),
            callback("misspelled", CountParams, lambda params, ctx: Misspelled()),
            callback("wrong_argument", CountParams, lambda params, ctx: WrongArgument())]
'''


def run(config: dict, tmp_path: Path, *overrides: str, resume: Path | None = None) -> dict:
    result = nnframe.run_experiment(config, list(overrides), runs_dir=tmp_path / "runs", resume=resume, quiet=True)
    return {**result.summary, "run_dir": Path(result.run_dir)}


def evaluated(stopper: EarlyStopping, values: list[float], scheduled: bool = True) -> tuple[dict, list[int]]:
    """Feed ``values`` as consecutive evaluations; the stopper's state and the evaluations it asked to stop at."""
    class Run:
        state: dict = {}
        stops: list[int] = []

        def stop(self, reason: str) -> None:
            self.stops.append(step)

    target = Run()
    target.state, target.stops = {}, []
    for step, value in enumerate(values, start=1):
        metrics = EvalMetrics(step, 0, value, value, scheduled)
        stopper.nnframe_evaluation_end(run=target, metrics=metrics)
    return target.state, target.stops


def test_early_stopping_counts_evaluations_without_improvement_by_more_than_min_delta() -> None:
    stopper = EarlyStopping("early_stopping", "val/loss", patience=2, min_delta=0.1)
    state, stops = evaluated(stopper, [1.0, 0.95, 0.85, 0.8, float("nan"), 0.5])
    # 0.95 is within min_delta of 1.0 (bad 1); 0.85 beats it (best); 0.8 (bad 1); nan (bad 2): stop; 0.5 beats 0.85
    assert stops == [5]
    assert state == {"early_stopping": {"metric": "val/loss", "best": 0.5, "bad": 0}}


def test_early_stopping_counts_afresh_when_a_resume_watches_another_metric() -> None:
    class Run:
        def __init__(self) -> None:
            self.state = {"early_stopping": {"metric": "val/loss", "best": 0.2, "bad": 2}}
            self.stops: list[str] = []

        def stop(self, reason: str) -> None:
            self.stops.append(reason)

    run = Run()
    stopper = EarlyStopping("early_stopping", "val/accuracy", patience=3, min_delta=0.0)
    for accuracy in (0.5, 0.6, 0.7):
        stopper.nnframe_evaluation_end(run=run, metrics=EvalMetrics(1, 0, 1.0, accuracy, True))
    assert run.stops == [] and run.state["early_stopping"] == {"metric": "val/accuracy", "best": 0.7, "bad": 0}


def test_early_stopping_on_accuracy_wants_it_higher_and_skips_unscheduled_evaluations() -> None:
    stopper = EarlyStopping("acc", "val/accuracy", patience=1, min_delta=0.0)
    state, stops = evaluated(stopper, [0.5, 0.6, 0.6])
    assert stops == [3] and state == {"acc": {"metric": "val/accuracy", "best": 0.6, "bad": 1}}
    assert evaluated(stopper, [0.5, 0.4], scheduled=False) == ({}, [])


def test_a_listed_early_stopping_stops_the_run_and_says_why(tmp_path: Path) -> None:
    summary = run(SPIRAL, tmp_path)
    # evaluations at 5 (the best), 10, 15, 20 without improvement: patience 3 is spent at step 20
    assert summary["status"] == "completed" and summary["steps"] == 20
    assert summary["stopped_early"]["step"] == 20 and summary["stopped_early"]["planned_steps"] == 40
    assert summary["stopped_early"]["reason"].startswith("early_stopping: val/loss has not improved")


def test_resuming_a_run_early_stopping_stopped_changes_nothing_unless_its_patience_grows(tmp_path: Path) -> None:
    first = run(SPIRAL, tmp_path)
    again = run(SPIRAL, tmp_path, resume=first["run_dir"])
    assert again["steps"] == first["steps"] == 20
    assert again["stopped_early"] == first["stopped_early"] and again["metrics"] == first["metrics"]
    longer = run(SPIRAL, tmp_path, "callbacks=[{type: early_stopping, patience: 4, min_delta: 0.001}]",
                 resume=first["run_dir"])
    assert longer["steps"] == 25 and longer["stopped_early"]["reason"].endswith("in 4 evaluations")


def test_a_run_without_callbacks_is_left_alone(tmp_path: Path) -> None:
    summary = run({**SPIRAL, "callbacks": []}, tmp_path)
    assert summary["steps"] == 40 and "stopped_early" not in summary


@pytest.mark.parametrize("split", [10, 12])
def test_a_resumed_run_stops_where_an_uninterrupted_one_stops(tmp_path: Path, split: int) -> None:
    """The count lives in ``run.state``: resumed at step 10 or 12 it stops at 20 as the straight run does, where a
    count started afresh would stop at 30; the evaluation the first part adds at step 12 is not counted."""
    straight = run(SPIRAL, tmp_path / "straight")
    part = run(SPIRAL, tmp_path / "parts", f"train.max_steps={split}")
    checkpoint = json.loads((part["run_dir"] / "checkpoints" / f"step-{split:08d}.json").read_text())
    assert checkpoint["plugin_state"]["early_stopping"]["bad"] == 1
    resumed = run(SPIRAL, tmp_path / "parts", resume=part["run_dir"])
    assert resumed["stopped_early"] == straight["stopped_early"]
    assert resumed["steps"] == 20 and resumed["metrics"] == straight["metrics"]


def test_early_stopping_is_added_on_a_resume_by_an_override_and_not_lost_by_a_resume_without_it(
        tmp_path: Path) -> None:
    first = run({**SPIRAL, "callbacks": []}, tmp_path, "train.max_steps=10")
    with pytest.raises(ConfigError, match=r"callbacks: \[\] in the run, \[\{type: early_stopping, name: null, "
                                          r"metric: val/loss, .*\}\] now\. To continue the run as it was, "
                                          r"add: 'callbacks=\[\]'"):
        nnframe.run_experiment(SPIRAL, [], runs_dir=tmp_path / "runs", resume=first["run_dir"], quiet=True)
    notes: list[str] = []
    stopper = "callbacks=[{type: early_stopping, patience: 3, min_delta: 0.001}]"
    result = nnframe.run_experiment(SPIRAL, [stopper], runs_dir=tmp_path / "runs", resume=first["run_dir"],
                                    quiet=True, on_note=notes.append)
    assert result.summary["stopped_early"]["step"] == 30  # counting from the resume's first evaluation, at 15
    assert any("callbacks" in note for note in notes)
    saved = yaml.safe_load((first["run_dir"] / "config.yaml").read_text())
    assert saved["callbacks"][0]["type"] == "early_stopping"


def test_two_stoppers_need_names_of_their_own_and_keep_separate_state(tmp_path: Path) -> None:
    both = [{"type": "early_stopping", "patience": 3, "min_delta": 1e-3},
            {"type": "early_stopping", "metric": "val/accuracy", "patience": 100}]
    with pytest.raises(ConfigError, match=r"callbacks 0 and 1 are both named 'early_stopping'.*callbacks\[1\]\.name"):
        nnframe.prepare_experiment({**SPIRAL, "callbacks": both})
    both[1]["name"] = "accuracy_stop"
    summary = run({**SPIRAL, "callbacks": both}, tmp_path, "checkpoint.every=5")
    checkpoint = json.loads((summary["run_dir"] / "checkpoints" / "step-00000020.json").read_text())
    assert set(checkpoint["plugin_state"]) == {"early_stopping", "accuracy_stop"}


@pytest.mark.parametrize("change, message", [
    ({"data": {**SPIRAL["data"], "val_fraction": 0.0}}, r"callbacks\[0\].*no validation set.*data\.val_fraction"),
    ({"callbacks": [{"type": "early_stopping", "patiance": 3}]}, r"callbacks\[0\]\.patiance.*did you mean 'patience'"),
    ({"callbacks": [{"type": "early_stoping"}]}, r"callbacks\[0\]\.type.*did you mean 'early_stopping'"),
    ({"callbacks": [{"type": "early_stopping", "patience": 0}]}, r"callbacks\[0\]\.patience"),
])
def test_a_wrong_callback_section_is_a_config_error_naming_its_field(change: dict, message: str) -> None:
    with pytest.raises(nnframe.UserError, match=message):
        nnframe.prepare_experiment({**SPIRAL, **change})


def test_early_stopping_refuses_accuracy_for_a_regression_loss() -> None:
    params = EarlyStoppingParams(metric="val/accuracy")
    with pytest.raises(ConfigError, match=r"this run measures no val/accuracy \(a regression loss, or targets"):
        early_stopping(params, CallbackContext("early_stopping", has_validation=True, classification=False))
    assert early_stopping(params, CallbackContext("es", True, True)).name == "es"


def test_early_stopping_refuses_an_error_measure_for_a_classification_run() -> None:
    params = EarlyStoppingParams(metric="val/rmse")
    with pytest.raises(ConfigError, match=r"this classification run measures no val/rmse"):
        early_stopping(params, CallbackContext("early_stopping", has_validation=True, classification=True))
    assert early_stopping(params, CallbackContext("es", True, False, error_measures=True)).metric == "val/rmse"
    with pytest.raises(ConfigError, match=r"this run measures no val/rmse: its loss makes no predictions"):
        early_stopping(params, CallbackContext("es", True, False))


def test_the_command_line_reports_a_wrong_callback_with_the_file_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "stopping.yaml"
    path.write_text(yaml.safe_dump({**SPIRAL, "callbacks": [{"type": "early_stopping", "metric": "val/los"}]}))
    done = subprocess.run([NNFRAME, "train", str(path), "-q"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert str(path) in done.stderr and "callbacks[0].metric" in done.stderr and "Traceback" not in done.stderr


def test_an_installed_callback_acts_only_in_the_runs_that_list_it(site: Site, tmp_path: Path) -> None:
    site.add("step-counter", {"step_counter": COUNTER}, version="0.2")
    plugins = get_plugin_manager()
    assert plugins.callbacks.plugin_of("step_counter").dist == "step-counter"
    listed = {**SPIRAL, "callbacks": [{"type": "step_counter", "name": "fives", "every": 5}]}
    result = nnframe.run_experiment(listed, ["checkpoint.every=40"], runs_dir=tmp_path / "a", quiet=True,
                                    plugins=plugins)
    checkpoint = json.loads((Path(result.run_dir) / "checkpoints" / "step-00000040.json").read_text())
    assert checkpoint["plugin_state"] == {"fives": 8}
    unlisted = nnframe.run_experiment({**SPIRAL, "callbacks": []}, ["checkpoint.every=40"], runs_dir=tmp_path / "b",
                                      quiet=True, plugins=plugins)
    checkpoint = json.loads((Path(unlisted.run_dir) / "checkpoints" / "step-00000040.json").read_text())
    assert checkpoint["plugin_state"] == {}


@pytest.mark.parametrize("kind, problem", [
    ("silent", "built Silent, which implements no hook"),
    ("misspelled", "built Misspelled, which a run cannot register: implements unknown hook 'nnframe_step_ned' "
                   "(did you mean 'nnframe_step_end'?)"),
    ("wrong_argument", "built WrongArgument, which a run cannot register: "),
    ("shared", "built StepCounter, the very object an earlier entry got"),
])
def test_a_callback_a_run_could_not_register_is_named_where_it_is_configured(site: Site, tmp_path: Path, kind: str,
                                                                             problem: str) -> None:
    site.add("step-counter", {"step_counter": COUNTER}, version="0.2")
    entries = [{"type": kind}] if kind != "shared" else [{"type": kind, "name": "a"}, {"type": kind, "name": "b"}]
    at = 1 if kind == "shared" else 0
    with pytest.raises(PluginError, match=rf"callbacks\[{at}\]\.type: type {kind!r}.*step-counter") as raised:
        nnframe.prepare_experiment({**SPIRAL, "callbacks": entries})
    assert problem in str(raised.value)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**SPIRAL, "callbacks": entries}))
    done = subprocess.run([NNFRAME, "validate", str(path)], capture_output=True, text=True, timeout=120,
                          env=site.env())
    assert done.returncode == 2 and f"callbacks[{at}].type" in done.stderr, done.stderr


def test_the_schema_and_the_hparams_know_the_callbacks() -> None:
    done = subprocess.run([NNFRAME, "schema"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "EarlyStoppingCallback" in done.stdout and "min_delta" in done.stdout
    from nnframe.builtin.tensorboard import flatten_config
    flat = flatten_config(nnframe.prepare_experiment(SPIRAL).config.resolved)
    assert flat["callbacks.0.type"] == "early_stopping" and flat["callbacks.0.patience"] == 3
    assert not [key for key in flatten_config({**SPIRAL, "callbacks": []}) if key.startswith("callbacks")]


def test_a_loaded_run_and_a_gradient_check_leave_the_callbacks_out(site: Site, tmp_path: Path) -> None:
    """They train nothing: a callback's plugin uninstalled since, or one that needs a validation set, is no
    obstacle."""
    info = site.add("step-counter", {"step_counter": COUNTER}, version="0.2")
    listed = {**SPIRAL, "callbacks": [{"type": "step_counter", "every": 5}]}
    result = nnframe.run_experiment(listed, [], runs_dir=tmp_path / "runs", quiet=True, plugins=get_plugin_manager())
    shutil.rmtree(info)  # uninstalled
    importlib.invalidate_caches()
    plugins = get_plugin_manager()
    assert "step_counter" not in plugins.callbacks
    loaded = nnframe.load_run(result.run_dir, plugins=plugins)
    assert loaded.step == 40 and loaded.experiment.callbacks == [] and loaded.experiment.config.overrides == []
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump({**SPIRAL, "data": {**SPIRAL["data"], "val_fraction": 0.0}}))
    done = subprocess.run([NNFRAME, "gradcheck", str(path), "callbacks.0.patience=5"], capture_output=True,
                          text=True, timeout=120)  # an override of the callbacks, as a sweep gives train, still fits
    assert done.returncode == 0 and "gradient check passed" in done.stdout, done.stderr


def test_a_callback_of_an_unknown_type_is_named_alone_though_one_type_is_registered() -> None:
    """With one arm the section was no tagged union, so a missing plugin's entry was also checked against
    early_stopping's fields."""
    with pytest.raises(ConfigError) as raised:
        nnframe.prepare_experiment({**SPIRAL, "callbacks": [{"type": "earlystopping", "patiense": 3}]})
    assert "unknown type 'earlystopping'" in str(raised.value) and "patiense" not in str(raised.value)

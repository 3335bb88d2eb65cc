"""Tests of nnframe.schedules."""

from __future__ import annotations

import functools
import importlib
import math
import shutil
import subprocess
import warnings

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

import nnframe
from fixtures.console import NNFRAME
from nnframe import Params, hookimpl
from nnframe.builtin import datasets, losses, nodes, optimizers
from nnframe.components import schedule
from nnframe.config import ConfigModels
from nnframe.errors import ConfigError, PluginError
from nnframe.plugins import get_plugin_manager
from nnframe.schedules import ConstantSchedule, CosineSchedule, Schedule, StepSchedule


@functools.cache
def schedules() -> TypeAdapter:
    """The config's schedule section, built on first use (not at import, where the test set-up has not run)."""
    return TypeAdapter(ConfigModels(get_plugin_manager()).schedule)


def parse(data: dict):
    return schedules().validate_python(data)


# (schedule, run total steps, {step: lr}) with base lr 1.0
CASES = [
    ({"type": "constant"}, None, {0: 1.0, 1: 1.0, 1000: 1.0}),
    # 1 * 0.5 ** (step // 2)
    ({"type": "step", "step_size": 2, "gamma": 0.5}, None, {0: 1.0, 1: 1.0, 2: 0.5, 3: 0.5, 4: 0.25, 7: 0.125}),
    # (1 + cos(pi * step / 10)) / 2: step 5 -> (1 + 0) / 2; step 10 and after -> 0
    ({"type": "cosine", "total_steps": 10}, None, {0: 1.0, 5: 0.5, 10: 0.0, 12: 0.0}),
    # 0.1 + 0.9 * (1 + cos(pi * step / 10)) / 2: step 5 -> 0.1 + 0.45; the end is min_lr
    ({"type": "cosine", "total_steps": 10, "min_lr": 0.1}, None, {0: 1.0, 5: 0.55, 10: 0.1, 20: 0.1}),
    # total_steps from the run: step 2 -> (1 + cos(pi/2)) / 2
    ({"type": "cosine"}, 4, {0: 1.0, 2: 0.5, 4: 0.0}),
    # the last step of a 4-step run: (1 + cos(3*pi/4)) / 2 = (1 - 0.70710678) / 2
    ({"type": "cosine"}, 4, {3: 0.14644661}),
    # warm-up: (step + 1) / 4 for steps 0..3, then the base rate
    ({"type": "constant", "warmup_steps": 4}, None, {0: 0.25, 1: 0.5, 2: 0.75, 3: 1.0, 4: 1.0}),
    # warm-up 2 (0.5, 1.0), then 0.5 ** ((step - 2) // 2)
    ({"type": "step", "step_size": 2, "gamma": 0.5, "warmup_steps": 2}, None,
     {0: 0.5, 1: 1.0, 2: 1.0, 3: 1.0, 4: 0.5, 6: 0.25}),
    # warm-up 2, then a cosine over the remaining 8 steps: step 6 -> (1 + cos(pi * 4 / 8)) / 2
    ({"type": "cosine", "total_steps": 10, "warmup_steps": 2}, None, {0: 0.5, 1: 1.0, 2: 1.0, 6: 0.5, 10: 0.0}),
]


@pytest.mark.parametrize(("data", "total", "expected"), CASES)
def test_lr_at_matches_hand_values(data: dict, total: int | None, expected: dict[int, float]) -> None:
    schedule = parse(data)
    for step, lr in expected.items():
        assert schedule.lr_at(step, 1.0, total) == pytest.approx(lr, abs=1e-8), f"step {step}"


def test_lr_scales_with_the_base_rate() -> None:
    # 0.2 * 0.1 ** (5 // 2)
    assert StepSchedule(step_size=2).lr_at(5, 0.2, None) == pytest.approx(0.002)


def test_lr_at_returns_a_python_float() -> None:
    assert type(CosineSchedule(total_steps=3).lr_at(1, 1, None)) is float


def test_cosine_is_monotone_down_to_min_lr() -> None:
    schedule = CosineSchedule(min_lr=0.01)
    rates = [schedule.lr_at(step, 0.5, 50) for step in range(51)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert rates[-1] == pytest.approx(0.01)
    assert rates[0] == 0.5


def test_cosine_without_any_total_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="total_steps is not set and the run's total number of steps is unknown"):
        CosineSchedule().lr_at(0, 1.0, None)
    with pytest.raises(ConfigError, match="total_steps"):
        CosineSchedule().check(None)


def test_cosine_warmup_longer_than_the_run_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"warmup_steps \(5\) must be less than total_steps \(5\)"):
        CosineSchedule(warmup_steps=5).lr_at(0, 1.0, 5)
    with pytest.raises(ValidationError, match=r"warmup_steps \(5\) must be less than total_steps \(3\)"):
        parse({"type": "cosine", "total_steps": 3, "warmup_steps": 5})


def test_schedules_without_totals_need_none() -> None:
    ConstantSchedule().check(None)
    StepSchedule(step_size=1).check(None)
    CosineSchedule(total_steps=10).check(None)


@pytest.mark.parametrize("data", [
    {"type": "linear"},
    {"type": "constant", "bogus": 1},
    {"type": "step"},
    {"type": "step", "step_size": 0},
    {"type": "step", "step_size": 2, "gamma": 0.0},
    {"type": "step", "step_size": 2, "gamma": 1.5},
    {"type": "cosine", "min_lr": -0.1},
    {"type": "cosine", "total_steps": 0},
    {"type": "constant", "warmup_steps": -1},
])
def test_bad_schedules_are_rejected(data: dict) -> None:
    with pytest.raises(ValidationError):
        parse(data)


def test_the_union_picks_the_model_by_type() -> None:
    assert isinstance(parse({"type": "constant"}), ConstantSchedule)
    assert isinstance(parse({"type": "step", "step_size": 3}), StepSchedule)
    assert isinstance(parse({"type": "cosine", "min_lr": 0.001}), CosineSchedule)


def test_an_optimizer_section_defaults_to_the_constant_schedule() -> None:
    section = TypeAdapter(ConfigModels(get_plugin_manager()).optimizer)
    default = section.validate_python({"type": "sgd"}).schedule
    assert isinstance(default, ConstantSchedule) and default.model_dump() == {"type": "constant", "warmup_steps": 0}
    chosen = section.validate_python({"type": "sgd", "schedule": {"type": "step", "step_size": 2}}).schedule
    assert isinstance(chosen, StepSchedule) and chosen.step_size == 2
    assert "discriminator" in str(section.json_schema())


def test_gamma_one_keeps_the_rate() -> None:
    assert StepSchedule(step_size=1, gamma=1.0).lr_at(100, 0.3, None) == 0.3
    assert math.isclose(StepSchedule(step_size=1).lr_at(1, 0.3, None), 0.03)


def test_a_cosine_that_rises_or_ends_before_the_run_gets_notes() -> None:
    assert CosineSchedule().notes(0.1, 300) == []
    assert ConstantSchedule().notes(0.1, 300) == []
    (rising,) = CosineSchedule(min_lr=0.5).notes(0.1, 300)
    assert "min_lr (0.5) is above optimizer.lr (0.1)" in rising
    (short,) = CosineSchedule(total_steps=100).notes(0.1, 300)
    assert "total_steps is 100 but the run takes 300 steps" in short and "for the last 200" in short
    assert CosineSchedule(total_steps=300).notes(0.1, 300) == []


@pytest.mark.parametrize("schedule", [ConstantSchedule(warmup_steps=500), StepSchedule(step_size=10, warmup_steps=500)],
                         ids=["constant", "step"])
def test_a_warm_up_longer_than_the_run_gets_a_note_with_the_rate_it_reaches(schedule) -> None:
    (note,) = schedule.notes(0.1, 300)
    assert note == ("optimizer.schedule.warmup_steps is 500 but the run takes 300 steps: the learning rate climbs "
                    "only to 0.06, short of optimizer.lr (0.1)")
    assert type(schedule)(**{**schedule.model_dump(), "warmup_steps": 300}).notes(0.1, 300) == []


class Overshoot(Schedule):
    """Broken on purpose: below zero after a few steps."""

    def rate_after_warmup(self, step: int, base_lr: float, total_steps: int | None) -> float:
        return base_lr - 0.4 * step


class NotASchedule(Params):
    drop: float = 0.5


class SchedulesPlugin:
    @hookimpl
    def nnframe_register_schedules(self) -> list:
        return [schedule("overshoot", Overshoot)]


class NotASchedulePlugin:
    @hookimpl
    def nnframe_register_schedules(self) -> list:
        return [schedule("overshoot", Overshoot), schedule("not_a_schedule", NotASchedule)]


def test_a_schedule_whose_params_are_no_schedule_is_a_broken_plugin() -> None:
    with pytest.raises(PluginError) as caught:  # given in the process: an error; installed, it is left out
        get_plugin_manager(plugins=[("my-schedules", NotASchedulePlugin())])
    assert "plugin 'my-schedules' from (local): schedule 'not_a_schedule': its params" in str(caught.value)
    assert "do not subclass nnframe.Schedule" in str(caught.value)


def test_a_plugin_schedule_trains_and_a_rate_below_zero_ends_the_run_naming_it(tmp_path) -> None:
    plugins = get_plugin_manager(plugins=[("my-schedules", SchedulesPlugin())])
    assert "overshoot" in plugins.schedules
    config = {"name": "over", "data": {"type": "spiral", "points_per_class": 10, "classes": 3},
              "model": [{"type": "affine", "out": 3}], "loss": {"type": "softmax_cross_entropy"},
              "optimizer": {"type": "sgd", "lr": 1.0, "schedule": {"type": "overshoot"}},
              "train": {"max_steps": 5, "batch_size": 10}}
    with pytest.raises(PluginError, match=r"schedule 'overshoot' \(test_schedules.Overshoot\) gave the learning rate "
                                          r"-0.2\d* for step 3; a rate is a finite number, at least 0"):
        nnframe.run_experiment(config, runs_dir=tmp_path, quiet=True, plugins=plugins)
    assert nnframe.run_experiment(config, ["train.max_steps=3"], runs_dir=tmp_path, quiet=True,
                                  plugins=plugins).summary["status"] == "completed"


def test_a_plugin_manager_without_nnframes_schedules_reads_back_the_default_one(tmp_path) -> None:
    """Built with autoload off and nnframe's other built-ins, as before schedules were a plugin kind."""
    plugins = get_plugin_manager(autoload=False, plugins=[("nodes", nodes), ("losses", losses),
                                                          ("optimizers", optimizers), ("datasets", datasets)])
    config = {"name": "plain", "data": {"type": "spiral", "points_per_class": 10, "classes": 3},
              "model": [{"type": "affine", "out": 3}], "loss": {"type": "softmax_cross_entropy"},
              "optimizer": {"type": "sgd", "lr": 0.1}, "train": {"max_steps": 3, "batch_size": 10}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydantic warns where a section serialises otherwise than it validates
        first = nnframe.run_experiment(config, runs_dir=tmp_path, quiet=True, plugins=plugins)
        resumed = nnframe.run_experiment(config, ["train.max_steps=5"], resume=first.run_dir, quiet=True,
                                         plugins=plugins)
    assert resumed.summary["steps"] == 5
    assert nnframe.load_run(first.run_dir, plugins=plugins).step == 5
    with pytest.raises(ConfigError, match=r"unknown type 'cosine'; available: constant;"):
        nnframe.prepare_experiment(config, ["optimizer.schedule={type: cosine}"], plugins=plugins)


class NeedsALongRun(Schedule):
    """Refuses a run shorter than its span, as a plugin author writes it: with a ValueError."""

    span: int = 100

    def check(self, total_steps: int | None) -> None:
        if total_steps is not None and total_steps < self.span:
            raise ValueError(f"needs {self.span} steps, the run has {total_steps}")

    def rate_after_warmup(self, step: int, base_lr: float, total_steps: int | None) -> float:
        return base_lr


class LongRunPlugin:
    @hookimpl
    def nnframe_register_schedules(self) -> list:
        return [schedule("long_run", NeedsALongRun)]


def test_a_plugin_schedules_check_refuses_the_run_as_a_config_error_and_its_docstring_is_its_summary() -> None:
    plugins = get_plugin_manager(plugins=[("long-run", LongRunPlugin())])
    summary = plugins.schedules.get("long_run").summary()
    assert summary == "Refuses a run shorter than its span, as a plugin author writes it: with a ValueError."
    config = {"name": "short", "data": {"type": "spiral", "points_per_class": 10, "classes": 3},
              "model": [{"type": "affine", "out": 3}], "loss": {"type": "softmax_cross_entropy"},
              "optimizer": {"type": "sgd", "lr": 0.1, "schedule": {"type": "long_run"}},
              "train": {"max_steps": 30, "batch_size": 10}}
    with pytest.raises(ConfigError, match=r"field optimizer.schedule: needs 100 steps, the run has 30") as info:
        nnframe.prepare_experiment(config, plugins=plugins)
    assert info.value.path == "optimizer.schedule"
    nnframe.prepare_experiment(config, ["train.max_steps=100"], plugins=plugins)


HALVING = '''
import nnframe
from nnframe.components import schedule


class Halving(nnframe.Schedule):
    """Half the rate every ten steps."""

    def rate_after_warmup(self, step, base_lr, total_steps):
        return base_lr * 0.5 ** (step // 10)


@nnframe.hookimpl
def nnframe_register_schedules():
    return [schedule("halving", Halving)]
'''


def test_a_loaded_run_and_a_gradient_check_put_the_constant_schedule_for_one_whose_plugin_is_gone(
        site, tmp_path) -> None:
    info = site.add("halving-schedule", {"halving": HALVING})
    config = {"name": "halved", "data": {"type": "spiral", "points_per_class": 10, "classes": 3},
              "model": [{"type": "affine", "out": 3}], "loss": {"type": "softmax_cross_entropy"},
              "optimizer": {"type": "sgd", "lr": 0.5, "schedule": {"type": "halving"}},
              "train": {"max_steps": 20, "batch_size": 10, "dtype": "float64"}}
    path = tmp_path / "halved.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = nnframe.run_experiment(path, runs_dir=tmp_path / "runs", quiet=True, plugins=get_plugin_manager())
    shutil.rmtree(info)  # uninstalled
    importlib.invalidate_caches()
    plugins = get_plugin_manager()
    assert "halving" not in plugins.schedules
    loaded = nnframe.load_run(result.run_dir, plugins=plugins)
    assert loaded.step == 20 and loaded.experiment.settings.optimizer.schedule.type == "constant"
    assert loaded.experiment.config.overrides == []
    done = subprocess.run([NNFRAME, "gradcheck", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "gradient check passed" in done.stdout, done.stderr
    with pytest.raises(ConfigError, match=r"unknown type 'halving'.*a plugin may be missing"):
        nnframe.run_experiment(path, resume=result.run_dir, quiet=True, plugins=plugins)  # training needs it

"""The built-in TensorBoard logger, driven through a fresh plugin manager as the trainer drives it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import (
    HISTOGRAMS,
    SCALARS,
    TENSORS,
    EventAccumulator,
)
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from nnframe.builtin.tensorboard import TensorBoardLogger, flatten_config
from nnframe.components import Params, loss
from nnframe.event_file import EventFile, _file_length, _records, import_tensorboardx
from nnframe.hookspecs import hookimpl
from nnframe.losses import SoftmaxWithLoss
from nnframe.plugins import get_plugin_manager
from nnframe.run import EvalMetrics, RunContext, StepMetrics
from nnframe.tracking import RunDirectory

GRAD_KEYS = ("global", "affine1/W", "affine1/b")


def make_config(every: int = 10, histograms_every: int = 0, tensorboard: bool = True) -> dict:
    return {
        "name": "tiny",
        "seed": 1984,
        "data": {"type": "spiral", "points_per_class": 100, "classes": 3, "noise": None},
        "model": [{"type": "affine", "out": 3}],
        "optimizer": {"type": "sgd", "lr": 0.1},
        "train": {"epochs": 5, "batch_size": 30, "dtype": "float32"},
        "log": {"every": every, "grad_norms": True, "histograms_every": histograms_every,
                "tensorboard": tensorboard},
    }


class TinyModel:
    """Stands in for the graph model: two parameters whose values change with the step."""

    def __init__(self) -> None:
        self.W = np.zeros((2, 3), dtype=np.float32)
        self.dW = np.zeros((2, 3), dtype=np.float32)
        self.b = np.zeros(3, dtype=np.float32)
        self.db = np.zeros(3, dtype=np.float32)

    def set_step(self, step: int) -> None:
        self.W[...] = np.arange(6, dtype=np.float32).reshape(2, 3) + step  # min step, max step + 5
        self.dW[...] = -step
        self.b[...] = step
        self.db[...] = np.array([1.0, np.nan, 3.0], dtype=np.float32)  # a NaN must not break histograms

    def named_params(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        return [("affine1/W", self.W, self.dW), ("affine1/b", self.b, self.db)]


def loss_at(step: int, offset: float = 0.0) -> float:
    return 1.0 / step + offset


def step_metrics(step: int, every: int, offset: float = 0.0) -> StepMetrics:
    logged = step % every == 0
    return StepMetrics(
        step=step, epoch=step // 10, loss=loss_at(step, offset), lr=0.1 / step, logged=logged,
        accuracy=step / 100 if logged else None,
        grad_norms={key: (i + 1) * step for i, key in enumerate(GRAD_KEYS)} if logged else None,
    )


@dataclass
class Drive:
    """How one call of :func:`drive` runs: steps ``start+1 .. stop``, evaluating every ``eval_every``."""

    start: int = 0
    stop: int = 30
    eval_every: int = 10
    offset: float = 0.0
    status: str = "completed"
    fail_after: int | None = None
    config: dict = field(default_factory=make_config)


class PlannedCrash(Exception):
    """The crash a plan asks for; any other exception, from the logger under test, propagates."""


def drive(plugins, run_dir: Path | None, plan: Drive) -> RunContext:
    """Call the hooks in the trainer's order; ``fail_after`` raises mid-run and still ends the run as failed."""
    model = TinyModel()
    run = RunContext(name="tiny", config=plan.config, run_dir=run_dir, plugin_manager=plugins.pm,
                     model=model, step=plan.start, resumed=plan.start > 0)
    every = plan.config["log"]["every"]
    hook = run.hook
    hook.nnframe_configure_run(run=run)
    status = plan.status
    try:
        hook.nnframe_run_start(run=run)
        for step in range(plan.start + 1, plan.stop + 1):
            if plan.fail_after is not None and step > plan.fail_after:
                raise PlannedCrash("boom")
            run.step = step
            model.set_step(step)
            metrics = step_metrics(step, every, plan.offset)
            hook.nnframe_step_end(run=run, metrics=metrics)
            if metrics.logged:
                hook.nnframe_log_metrics(run=run, metrics=metrics)
            if step % plan.eval_every == 0:
                hook.nnframe_evaluation_end(run=run, metrics=EvalMetrics(step, step // 10, 2.0 / step, step / 200))
    except PlannedCrash:
        status = "failed"
    finally:
        hook.nnframe_run_end(run=run, status=status, summary={"status": status})
        run.unregister_all()
    return run


def read_events(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0, HISTOGRAMS: 0, TENSORS: 0})
    accumulator.Reload()
    return accumulator


def points(accumulator: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def assert_points(accumulator: EventAccumulator, tag: str, expected: list[tuple[int, float]]) -> None:
    """Steps exactly, values to float32 precision (TensorBoard stores scalars as float32)."""
    found = points(accumulator, tag)
    assert [step for step, _ in found] == [step for step, _ in expected], tag
    assert [value for _, value in found] == pytest.approx([value for _, value in expected], rel=1e-6), tag


@pytest.fixture
def plugins():
    return get_plugin_manager()


@pytest.fixture
def run_dir(tmp_path) -> Path:
    directory = RunDirectory.create(tmp_path / "runs", "tiny")
    directory.write_config(make_config())
    return directory.path


# --------------------------------------------------------------------------
# Scalars
# --------------------------------------------------------------------------


def test_loading_the_plugin_imports_neither_tensorboardx_nor_rich():
    code = ("import sys, nnframe.builtin.tensorboard, nnframe.tracking; "
            "print(sorted(m for m in sys.modules if m.startswith(('tensorboardX', 'tensorboard', 'rich'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"


def test_builtin_logger_is_loaded_through_its_entry_point(plugins):
    assert "tensorboard" in plugins.infos
    assert not [broken for broken in plugins.broken if broken.name == "tensorboard"]


def test_every_scalar_tag_has_one_point_per_log_every_with_the_values_passed(plugins, run_dir):
    drive(plugins, run_dir, Drive(stop=30))

    events = read_events(run_dir)
    logged = [10, 20, 30]
    expected_tags = {"train/loss", "train/accuracy", "train/lr", "val/loss", "val/accuracy"}
    expected_tags |= {f"grad_norm/{key}" for key in GRAD_KEYS}
    assert set(events.Tags()["scalars"]) == expected_tags
    assert_points(events, "train/loss", [(s, 1.0 / s) for s in logged])
    assert_points(events, "train/accuracy", [(s, s / 100) for s in logged])
    assert_points(events, "train/lr", [(s, 0.1 / s) for s in logged])
    assert_points(events, "grad_norm/global", [(s, 1.0 * s) for s in logged])
    assert_points(events, "grad_norm/affine1/W", [(s, 2.0 * s) for s in logged])
    assert_points(events, "grad_norm/affine1/b", [(s, 3.0 * s) for s in logged])
    assert_points(events, "val/loss", [(s, 2.0 / s) for s in logged])
    assert_points(events, "val/accuracy", [(s, s / 200) for s in logged])


@pytest.mark.parametrize("every, stop, expected_steps", [
    (1, 3, [1, 2, 3]),
    (5, 12, [5, 10]),
    (7, 6, []),
])
def test_points_fall_on_log_every(plugins, run_dir, every, stop, expected_steps):
    drive(plugins, run_dir, Drive(stop=stop, config=make_config(every=every)))

    events = read_events(run_dir)
    steps = [step for step, _ in points(events, "train/loss")] if expected_steps else []
    assert steps == expected_steps
    assert ("train/loss" in events.Tags()["scalars"]) == bool(expected_steps)


def test_short_run_events_are_on_disk_and_nothing_else_is_created(plugins, run_dir):
    drive(plugins, run_dir, Drive(stop=2, config=make_config(every=1)))

    assert [path.name for path in run_dir.iterdir() if path.is_dir()] == ["checkpoints"]
    event_files = list(run_dir.glob("*tfevents*"))
    assert len(event_files) == 1 and event_files[0].stat().st_size > 0
    assert [step for step, _ in points(read_events(run_dir), "train/loss")] == [1, 2]


def test_crash_keeps_the_events_written_before_it(plugins, run_dir):
    run = drive(plugins, run_dir, Drive(stop=50, fail_after=25))

    events = read_events(run_dir)
    assert [step for step, _ in points(events, "train/loss")] == [10, 20]
    assert [step for step, _ in points(events, "val/loss")] == [10, 20]
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")
    assert run._registered == []


@pytest.mark.parametrize("status", ["interrupted", "diverged", "failed"])
def test_a_run_that_did_not_complete_has_hparams_but_no_session_end(plugins, run_dir, status):
    drive(plugins, run_dir, Drive(stop=20, status=status))
    assert set(hparams_content(run_dir)) == {"_hparams_/session_start_info"}


def test_a_resumed_run_keeps_one_session_start_and_ends_once(plugins, run_dir):
    drive(plugins, run_dir, Drive(stop=30, status="interrupted"))
    drive(get_plugin_manager(), run_dir, Drive(start=30, stop=40))
    files = sorted(run_dir.glob("*tfevents*"))
    tags = [sorted(EventAccumulator(str(path)).Reload().PluginTagToContent("hparams")) for path in files]
    assert tags == [["_hparams_/session_start_info"], ["_hparams_/session_end_info"]]


def test_a_run_begun_without_tensorboard_gets_its_session_start_when_a_resume_turns_it_on(plugins, run_dir):
    run_dir.mkdir(parents=True, exist_ok=True)
    drive(plugins, run_dir, Drive(stop=30, status="interrupted", config=make_config(tensorboard=False)))
    assert not list(run_dir.glob("*tfevents*"))
    drive(get_plugin_manager(), run_dir, Drive(start=30, stop=40))
    (path,) = run_dir.glob("*tfevents*")
    assert sorted(EventAccumulator(str(path)).Reload().PluginTagToContent("hparams")) == [
        "_hparams_/session_end_info", "_hparams_/session_start_info"]


def started_run(plugins, run_dir: Path) -> RunContext:
    """A run logging every step, through configure_run and run_start, for tests that drive the hooks by hand."""
    run = RunContext(name="tiny", config=make_config(every=1), run_dir=run_dir, plugin_manager=plugins.pm,
                     model=TinyModel())
    run.hook.nnframe_configure_run(run=run)
    run.hook.nnframe_run_start(run=run)
    return run


def test_a_checkpoint_puts_every_logged_point_on_disk_first(plugins, run_dir):
    run = started_run(plugins, run_dir)
    for step in range(1, 8):
        run.step = step
        run.hook.nnframe_log_metrics(run=run, metrics=step_metrics(step, 1, 0.0))
    assert "train/loss" not in read_events(run_dir).Tags()["scalars"]  # held back for a burst
    run.hook.nnframe_checkpoint(run=run)
    assert [step for step, _ in points(read_events(run_dir), "train/loss")] == list(range(1, 8))
    run.hook.nnframe_run_end(run=run, status="interrupted", summary={})
    run.unregister_all()


def test_resume_continues_the_steps_without_duplicates(plugins, run_dir):
    drive(plugins, run_dir, Drive(stop=30, fail_after=30, status="failed"))
    # the last checkpoint was at step 20: the resumed run repeats 21..30 with other values
    drive(get_plugin_manager(), run_dir, Drive(start=20, stop=40, offset=100.0))

    events = read_events(run_dir)
    assert_points(events, "train/loss", [(10, 1 / 10), (20, 1 / 20), (30, 100 + 1 / 30), (40, 100 + 1 / 40)])
    assert [step for step, _ in points(events, "val/loss")] == [10, 20, 30, 40]
    # the config the run continues under, at the step it resumed from
    assert [event.step for event in events.Tensors("config/text_summary")] == [0, 20]
    assert len(list(run_dir.glob("*tfevents*"))) == 2


def server_points(run_dir: Path, tag: str) -> list[int]:
    """The steps of ``tag`` as TensorBoard's server loads them (its Python loader, which reads a run's first
    ``SessionLog.START`` as its start, not as a restart)."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    multiplexer = EventMultiplexer(tensor_size_guidance={"scalars": 0})
    multiplexer.AddRunsFromDirectory(str(run_dir))
    multiplexer.Reload()
    (run,) = multiplexer.Runs()
    return [event.step for event in multiplexer.Tensors(run, tag)]


def test_a_resume_takes_the_points_a_killed_run_logged_after_its_checkpoint_out_of_its_files(plugins, run_dir):
    drive(plugins, run_dir, Drive(stop=30, fail_after=30, status="failed"))
    # the last checkpoint was at step 20; the resume logs every 20 steps, so no point of its own replaces 30's
    drive(get_plugin_manager(), run_dir, Drive(start=20, stop=40, offset=100.0, config=make_config(every=20)))
    assert [step for step, _ in points(read_events(run_dir), "train/loss")] == [10, 20, 40]
    assert server_points(run_dir, "train/loss") == [10, 20, 40]
    assert server_points(run_dir, "val/loss") == [10, 20, 30, 40]  # 30 once, the resume's
    first = sorted(run_dir.glob("*tfevents*"))[0]
    assert [event.step for event in EventAccumulator(str(first)).Reload().Scalars("train/loss")] == [10, 20]


def test_a_record_a_kill_cut_short_goes_at_the_resume(plugins, run_dir):
    drive(plugins, run_dir, Drive(stop=30, fail_after=30, status="failed"))
    (first,) = run_dir.glob("*tfevents*")
    first.write_bytes(first.read_bytes()[:-7])
    drive(get_plugin_manager(), run_dir, Drive(start=20, stop=40, offset=100.0))
    assert [step for step, _ in points(read_events(run_dir), "train/loss")] == [10, 20, 30, 40]
    raw = first.read_bytes()
    assert _file_length(_records(raw)) == len(raw)  # whole records: the next writer appends after one
    assert not [path for path in run_dir.iterdir() if path.name.endswith(".tmp")]


def test_a_completed_run_keeps_its_end_until_a_leg_that_trains_it_further_ends(plugins, run_dir):
    def session_ends() -> list[int]:
        ends = []
        for i, path in enumerate(sorted(run_dir.glob("*tfevents*"))):
            try:
                tags = EventAccumulator(str(path)).Reload().PluginTagToContent("hparams")
            except KeyError:  # a file without HParams data
                continue
            ends += [i] if "_hparams_/session_end_info" in tags else []
        return ends

    drive(plugins, run_dir, Drive(stop=30))
    drive(get_plugin_manager(), run_dir, Drive(start=30, stop=50, fail_after=40, status="failed"))  # killed
    assert session_ends() == [0]
    drive(get_plugin_manager(), run_dir, Drive(start=30, stop=50))
    assert session_ends() == [2]
    # resumed from step 20 (the newer checkpoints damaged): the end at 50 is no longer the run's
    drive(get_plugin_manager(), run_dir, Drive(start=20, stop=50, fail_after=40, status="failed"))
    assert session_ends() == []


def test_a_completed_run_trained_further_ends_once_at_its_new_last_step(tmp_path: Path) -> None:
    import nnframe

    spiral = Path(__file__).resolve().parents[1] / "experiments" / "spiral.yaml"
    first = nnframe.run_experiment(spiral, ["train.epochs=3"], runs_dir=tmp_path, quiet=True)
    again = nnframe.run_experiment(spiral, ["train.epochs=6"], runs_dir=tmp_path, resume=first.run_dir, quiet=True)
    assert server_points(again.run_dir, "final/train/loss") == [again.summary["steps"]] == [60]
    files = sorted(again.run_dir.glob("*tfevents*"))
    tags = [sorted(EventAccumulator(str(path)).Reload().PluginTagToContent("hparams")) for path in files]
    assert tags == [["_hparams_/session_start_info"], ["_hparams_/session_end_info"]]


def test_the_files_of_many_resumes_in_one_second_are_read_in_the_order_written(plugins, run_dir, monkeypatch):
    """TensorBoard reads a run's files in the order of their names, and files started in one second differ only
    by their number: file 10 read before file 9 had 9's purge of the steps from 91 on hide all that 10 logged."""
    tbx = import_tensorboardx()
    monkeypatch.setattr(tbx.event_file_writer, "time", SimpleNamespace(time=lambda: 1795813409.25))
    drive(plugins, run_dir, Drive(stop=10, status="interrupted"))
    for start in range(10, 120, 10):
        drive(get_plugin_manager(), run_dir, Drive(start=start, stop=start + 10, status="interrupted"))
    assert len({path.name.split(".")[3] for path in run_dir.glob("*tfevents*")}) == 1  # one second
    assert [step for step, _ in points(read_events(run_dir), "train/loss")] == list(range(10, 130, 10))


# --------------------------------------------------------------------------
# Histograms, config text, hparams
# --------------------------------------------------------------------------


def test_histograms_of_weights_and_grads_when_enabled(plugins, run_dir):
    drive(plugins, run_dir, Drive(stop=10, config=make_config(histograms_every=5)))

    events = read_events(run_dir)
    assert set(events.Tags()["histograms"]) == {"weights/affine1/W", "grads/affine1/W",
                                                "weights/affine1/b", "grads/affine1/b"}
    weights = events.Histograms("weights/affine1/W")
    assert [event.step for event in weights] == [5, 10]
    last = weights[-1].histogram_value
    assert (last.min, last.max, last.num) == (10.0, 15.0, 6.0)  # W = [0..5] + 10
    grads_b = events.Histograms("grads/affine1/b")[-1].histogram_value
    assert (grads_b.min, grads_b.max, grads_b.num) == (1.0, 3.0, 2.0)  # the NaN is left out


def test_no_histograms_when_off(plugins, run_dir):
    drive(plugins, run_dir, Drive(stop=10, config=make_config(histograms_every=0)))

    assert read_events(run_dir).Tags()["histograms"] == []


def test_config_is_written_as_yaml_text(plugins, run_dir):
    drive(plugins, run_dir, Drive(stop=10))

    [event] = read_events(run_dir).Tensors("config/text_summary")
    text = event.tensor_proto.string_val[0].decode()
    assert text.startswith("```yaml\n") and text.endswith("```")
    assert yaml.safe_load(text.removeprefix("```yaml\n").removesuffix("```")) == make_config()


def hparams_content(run_dir: Path) -> dict:
    return {tag: plugin_data_pb2.HParamsPluginData.FromString(content)
            for tag, content in read_events(run_dir).PluginTagToContent("hparams").items()}


def test_hparams_hold_the_flat_config_and_no_experiment_summary(plugins, run_dir):
    started = time.time()
    drive(plugins, run_dir, Drive(stop=20))

    content = hparams_content(run_dir)
    start = content["_hparams_/session_start_info"].session_start_info.start_time_secs
    end = content["_hparams_/session_end_info"].session_end_info.end_time_secs
    assert started <= start <= end <= time.time()  # the HParams tab's start and end times
    # without an experiment summary TensorBoard takes the columns from every run: the config's
    # hyperparameters and the scalar tags as metrics
    assert set(content) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    assert content["_hparams_/session_end_info"].session_end_info.status == api_pb2.STATUS_SUCCESS
    hparams = content["_hparams_/session_start_info"].session_start_info.hparams
    assert hparams["optimizer.lr"].number_value == pytest.approx(0.1)
    assert hparams["log.grad_norms"].bool_value is True
    assert "data.noise" not in hparams  # unset: an empty cell, so that a column of numbers stays numbers
    assert hparams["model.0.type"].string_value == "affine"
    assert hparams["model.0.out"].number_value == 3  # a number, to sort and plot a sweep over a layer's width
    assert "model" not in hparams
    assert [path.name for path in run_dir.iterdir() if path.is_dir()] == ["checkpoints"]


@pytest.mark.parametrize("config, expected", [
    ({"a": 1, "b": {"c": 2.5, "d": {"e": True}}}, {"a": 1, "b.c": 2.5, "b.d.e": True}),
    ({"x": None, "y": [1, 2], "z": "s", "w": {"v": None}}, {"y": "[1, 2]", "z": "s"}),
    ({"n": np.float32(0.5), "p": Path("a/b")}, {"n": 0.5, "p": "a/b"}),
    ({"model": {"inputs": ["x"], "nodes": [{"type": "affine", "out": 3, "inputs": ["x"]}, {"type": "relu"}]}},
     {"model.inputs": '["x"]', "model.nodes.0.type": "affine", "model.nodes.0.out": 3,
      "model.nodes.0.inputs": '["x"]', "model.nodes.1.type": "relu"}),
    ({"empty": [], "callbacks": []}, {}),  # no callbacks: no column, where runs with some have theirs
])
def test_flatten_config(config, expected):
    assert flatten_config(config) == expected


# --------------------------------------------------------------------------
# When nothing is written
# --------------------------------------------------------------------------


def test_tensorboard_false_writes_no_events(plugins, run_dir):
    run = drive(plugins, run_dir, Drive(stop=10, config=make_config(tensorboard=False)))

    assert list(run_dir.glob("*tfevents*")) == []
    assert run._registered == []


def test_run_without_directory_registers_no_logger(plugins):
    seen = []

    class Spy:
        @hookimpl
        def nnframe_run_start(self, run):
            seen.extend(plugins.pm.get_plugins())

    plugins.register(Spy(), name="spy")
    drive(plugins, None, Drive(stop=10))

    assert not any(isinstance(plugin, TensorBoardLogger) for plugin in seen)


# --------------------------------------------------------------------------
# A third-party logger sees the same events
# --------------------------------------------------------------------------


class CountingLogger:
    """A stateful third-party logger, registered per run exactly like the built-in one."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.logged_steps: list[int] = []

    @hookimpl
    def nnframe_run_start(self, run):
        self.calls["run_start"] += 1

    @hookimpl
    def nnframe_step_end(self, run, metrics):
        self.calls["step_end"] += 1
        if metrics.logged:
            self.logged_steps.append(metrics.step)

    @hookimpl
    def nnframe_evaluation_end(self, run, metrics):
        self.calls["evaluation_end"] += 1

    @hookimpl
    def nnframe_run_end(self, run, status, summary):
        self.calls["run_end"] += 1


def test_third_party_logger_object_receives_the_same_events(plugins, run_dir):
    counter = CountingLogger()

    class ThirdPartyPlugin:
        @hookimpl
        def nnframe_configure_run(self, run):
            run.register(counter)

    plugins.register(ThirdPartyPlugin(), name="counting")
    run = drive(plugins, run_dir, Drive(stop=25, eval_every=5))

    events = read_events(run_dir)
    assert counter.calls == {"run_start": 1, "step_end": 25, "evaluation_end": 5, "run_end": 1}
    assert counter.logged_steps == [step for step, _ in points(events, "train/loss")] == [10, 20]
    assert counter.calls["evaluation_end"] == len(points(events, "val/loss"))
    assert not plugins.pm.is_registered(counter)
    assert run._registered == []


# --------------------------------------------------------------------------
# End to end through the real trainer
# --------------------------------------------------------------------------

TINY_EXPERIMENT = """\
name: tiny
seed: 3
data: {type: spiral, points_per_class: 20, classes: 3, val_fraction: 0.25}
model:
  - {type: affine, out: 5}
  - {type: sigmoid}
  - {type: affine, out: 3}
loss: {type: softmax_cross_entropy}
optimizer: {type: sgd, lr: 1.0}
train: {max_steps: 20, batch_size: 9}
log: {every: 5, grad_norms: true, histograms_every: 10}
"""


class Recorder:
    """Keeps every logged step and evaluation the trainer emits, to compare with the event files."""

    def __init__(self) -> None:
        self.steps: list[StepMetrics] = []
        self.evals: list[EvalMetrics] = []

    @hookimpl
    def nnframe_step_end(self, run, metrics):
        if metrics.logged:
            self.steps.append(metrics)

    @hookimpl
    def nnframe_evaluation_end(self, run, metrics):
        self.evals.append(metrics)


def test_training_a_tiny_config_writes_what_the_trainer_emitted(plugins, tmp_path):
    from nnframe.launch import prepare
    from nnframe.train import Trainer

    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(TINY_EXPERIMENT)
    experiment = prepare(config_path, [], plugins)
    run_dir = RunDirectory.create(tmp_path / "runs", "tiny")
    run_dir.write_config(experiment.config.to_yaml())
    recorder = Recorder()
    run = RunContext(name="tiny", config=experiment.config.resolved, run_dir=run_dir.path,
                     plugin_manager=plugins.pm)
    run.register(recorder)
    summary = Trainer(experiment, run).fit()

    events = read_events(run_dir.path)
    assert [metrics.step for metrics in recorder.steps] == [5, 10, 15, 20]  # 20 steps, log.every 5
    assert_points(events, "train/loss", [(m.step, m.loss) for m in recorder.steps])
    assert_points(events, "train/accuracy", [(m.step, m.accuracy) for m in recorder.steps])
    assert_points(events, "train/lr", [(m.step, 1.0) for m in recorder.steps])
    for key in ("global", "affine1/W", "affine1/b", "affine2/W", "affine2/b"):
        assert_points(events, f"grad_norm/{key}", [(m.step, m.grad_norms[key]) for m in recorder.steps])
    assert recorder.evals
    assert_points(events, "val/loss", [(m.step, m.loss) for m in recorder.evals])
    assert_points(events, "val/accuracy", [(m.step, m.accuracy) for m in recorder.evals])
    assert points(events, "val/loss")[-1][1] == pytest.approx(summary["metrics"]["val/loss"], rel=1e-6)
    assert [event.step for event in events.Histograms("weights/affine2/W")] == [10, 20]
    assert "_hparams_/session_end_info" in events.PluginTagToContent("hparams")
    assert [path.name for path in run_dir.path.iterdir() if path.is_dir()] == ["checkpoints"]


def test_tensorboardx_loads_without_importing_torch_or_boto3(tmp_path):
    import os
    import subprocess
    import sys

    # stand-ins that leave a mark when imported, so the test does not depend on what is installed
    for name in ("torch", "boto3"):
        (tmp_path / f"{name}.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'a').write('{name} ')\n")
    logged = EventFile(tmp_path / "run")  # a file for a resume's trim to read, in a process of its own
    logged.scalars({"train/loss": 1.0}, 5)
    logged.close()
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for code in ("from nnframe.event_file import import_tensorboardx; import_tensorboardx()",
                 f"from nnframe.event_file import trim_for_resume; trim_for_resume({str(tmp_path / 'run')!r}, 1)"):
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        assert not (tmp_path / "imported").exists(), code
    subprocess.run([sys.executable, "-c", "import torch, boto3"], env=env, check=True)
    assert (tmp_path / "imported").read_text() == "torch boto3 "


def test_a_burst_keeps_step_order_when_the_logged_scalars_change(plugins, run_dir):
    run = started_run(plugins, run_dir)
    for step in range(1, 7):
        metrics = step_metrics(step, every=1)
        if step in (3, 4):
            metrics.accuracy, metrics.grad_norms = None, None
        run.hook.nnframe_log_metrics(run=run, metrics=metrics)
    run.hook.nnframe_run_end(run=run, status="completed", summary={})
    run.unregister_all()

    events = read_events(run_dir)
    assert_points(events, "train/loss", [(s, 1.0 / s) for s in range(1, 7)])
    assert_points(events, "train/lr", [(s, 0.1 / s) for s in range(1, 7)])
    assert_points(events, "train/accuracy", [(s, s / 100) for s in (1, 2, 5, 6)])
    assert_points(events, "grad_norm/affine1/b", [(s, 3.0 * s) for s in (1, 2, 5, 6)])


def test_logged_steps_reach_the_file_at_each_evaluation_before_the_run_ends(plugins, run_dir):
    config = make_config(every=1)
    run = RunContext(name="tiny", config=config, run_dir=run_dir, plugin_manager=plugins.pm, model=TinyModel())
    run.hook.nnframe_configure_run(run=run)
    run.hook.nnframe_run_start(run=run)
    for step in range(1, 8):
        run.hook.nnframe_log_metrics(run=run, metrics=step_metrics(step, every=1))
    assert "train/loss" not in read_events(run_dir).Tags()["scalars"]  # kept back for a burst
    run.hook.nnframe_evaluation_end(run=run, metrics=EvalMetrics(7, 0, 0.5, 0.5))
    events = read_events(run_dir)
    assert [step for step, _ in points(events, "train/loss")] == list(range(1, 8))
    assert [step for step, _ in points(events, "val/loss")] == [7]
    run.hook.nnframe_run_end(run=run, status="completed", summary={})
    run.unregister_all()


class FailingAtTheEnd:
    """A logger with a bug in its ``run_end``, called before the TensorBoard logger's."""

    @hookimpl(tryfirst=True)
    def nnframe_run_end(self, run, status, summary):
        raise RuntimeError("a bug in another logger")


def test_another_loggers_failing_run_end_leaves_the_tensorboard_log_complete(plugins, tmp_path):
    from nnframe.launch import prepare
    from nnframe.train import Trainer

    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(TINY_EXPERIMENT.replace("every: 5,", "every: 1,"))
    experiment = prepare(config_path, [], plugins)
    run_dir = RunDirectory.create(tmp_path / "runs", "tiny")
    run = RunContext(name="tiny", config=experiment.config.resolved, run_dir=run_dir.path,
                     plugin_manager=plugins.pm)
    run.register(FailingAtTheEnd())
    with pytest.raises(RuntimeError, match="a bug in another logger"):
        Trainer(experiment, run).fit()
    events = read_events(run_dir.path)
    assert [step for step, _ in points(events, "train/loss")] == list(range(1, 21))  # held back, then written
    assert "_hparams_/session_end_info" in events.PluginTagToContent("hparams")


def test_a_completed_run_logs_its_final_measures_over_the_whole_training_set(tmp_path):
    import nnframe

    spiral = Path(__file__).resolve().parents[1] / "experiments" / "spiral.yaml"
    result = nnframe.run_experiment(spiral, ["train.epochs=3"], runs_dir=tmp_path, quiet=True)
    events = read_events(result.run_dir)
    for tag in ("train/loss", "train/accuracy"):
        (point,) = events.Scalars(f"final/{tag}")
        assert point.step == result.summary["steps"]
        assert point.value == pytest.approx(result.summary["metrics"][tag], rel=1e-6)  # float32 in the file
    assert events.Scalars("train/loss")[-1].value != pytest.approx(events.Scalars("final/train/loss")[0].value)


def test_the_step_a_stop_ends_a_run_at_is_logged_with_the_norms_before_clipping(tmp_path: Path) -> None:
    """Logged every 7 steps, the run stops at step 20: its last points are those of a run logged every step."""
    import nnframe

    config = {**make_config(every=7), "data": {"type": "spiral", "points_per_class": 30, "classes": 3,
                                                "val_fraction": 0.2},
              "loss": {"type": "softmax_cross_entropy"}, "optimizer": {"type": "sgd", "lr": 1e-4},
              "train": {"max_steps": 40, "batch_size": 8, "eval_every": 5, "clip_grad_norm": 0.01},
              "callbacks": [{"type": "early_stopping", "patience": 3, "min_delta": 1e-3}]}
    sparse = nnframe.run_experiment(config, runs_dir=tmp_path / "sparse", quiet=True)
    dense = nnframe.run_experiment(config, ["log.every=1"], runs_dir=tmp_path / "dense", quiet=True)
    assert sparse.summary["steps"] == sparse.summary["stopped_early"]["step"] == 20
    sparse_events, dense_events = read_events(sparse.run_dir), read_events(dense.run_dir)
    assert points(dense_events, "grad_norm/global")[-1][1] > 0.01  # clipped at that step
    for tag in ("train/loss", "train/accuracy", "train/lr", "grad_norm/global", "grad_norm/affine1/W",
                "grad_norm/affine1/b"):
        assert [step for step, _ in points(sparse_events, tag)] == [7, 14, 20], tag
        assert points(sparse_events, tag)[-1] == pytest.approx(points(dense_events, tag)[-1], rel=1e-6), tag


class InfiniteAtStep12(SoftmaxWithLoss):
    """An infinite loss on the twelfth training batch (the only forward passes before the run's end)."""

    calls = 0

    def forward(self, x, t):
        self.calls += 1
        value = super().forward(x, t)
        return float("inf") if self.calls == 12 else value


class StopAt12:
    @hookimpl
    def nnframe_register_losses(self) -> list:
        return [loss("inf_at_12", Params, lambda params: InfiniteAtStep12())]

    @hookimpl
    def nnframe_step_end(self, run, metrics) -> None:
        if metrics.step == 12:
            run.stop("a test's stop on the skipped step")


def test_a_stop_on_a_skipped_step_logs_its_norms_as_they_were_unclipped(tmp_path: Path) -> None:
    import nnframe

    plugins = get_plugin_manager(plugins=[("stopper", StopAt12())])
    config = {**make_config(every=5), "data": {"type": "spiral", "points_per_class": 100, "classes": 3},
              "loss": {"type": "inf_at_12"}, "optimizer": {"type": "sgd", "lr": 0.5},
              "train": {"max_steps": 30, "batch_size": 30, "clip_grad_norm": 0.01, "on_nonfinite": "skip_step"}}
    sparse = nnframe.run_experiment(config, runs_dir=tmp_path / "sparse", quiet=True, plugins=plugins)
    dense = nnframe.run_experiment(config, ["log.every=1"], runs_dir=tmp_path / "dense", quiet=True, plugins=plugins)
    assert sparse.summary["steps"] == 12 and sparse.summary["skipped_steps"] == 1
    sparse_events, dense_events = read_events(sparse.run_dir), read_events(dense.run_dir)
    for tag in ("grad_norm/global", "grad_norm/affine1/W", "grad_norm/affine1/b"):
        assert [step for step, _ in points(sparse_events, tag)] == [5, 10, 12], tag
        assert points(sparse_events, tag)[-1] == pytest.approx(points(dense_events, tag)[-1], rel=1e-6), tag
    assert points(dense_events, "grad_norm/global")[-1][1] > 0.01  # clipping would have scaled it

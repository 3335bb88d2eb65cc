"""Checkpoints in process: layout, round trip, keep/best, crash recovery, refusal of foreign or unsafe files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from fixtures.experiments import write_experiment
from nnframe.checkpoint import (
    Checkpointer,
    _restore_generators,
    fingerprint,
    fingerprint_hash,
    latest_checkpoint,
    read_checkpoint,
    step_name,
)
from nnframe.checkpoint_files import meta_digest
from nnframe.errors import CheckpointError, NonFiniteError, PluginStateError
from nnframe.hookspecs import hookimpl
from nnframe.launch import prepare
from nnframe.node import Node
from nnframe.launch import train as launch_train
from nnframe.plugins import get_plugin_manager
from nnframe.run import EvalMetrics, RunContext
from nnframe.train import Trainer

CONFIG = {
    "name": "tiny",
    "seed": 7,
    "data": {"type": "spiral", "points_per_class": 30, "classes": 3, "val_fraction": 0.2},
    "model": [{"type": "affine", "out": 8}, {"type": "tanh"}, {"type": "dropout", "ratio": 0.2},
              {"type": "affine", "out": 3}],
    "loss": {"type": "softmax_cross_entropy"},
    "optimizer": {"type": "momentum", "lr": 0.3},
    "train": {"max_steps": 40, "batch_size": 10},
    "log": {"every": 1, "tensorboard": False},
    "checkpoint": {"every": 0, "keep": 3, "best_metric": None},
}


def write_config(tmp_path: Path, **sections: Any) -> Path:
    return write_experiment(tmp_path, CONFIG, **sections)


def make_trainer(config_path: Path, directory: Path, overrides: tuple[str, ...] = (),
                 stream: io.StringIO | None = None) -> Trainer:
    plugins = get_plugin_manager()
    experiment = prepare(config_path, list(overrides), plugins)
    run = RunContext(name="tiny", config=experiment.config.resolved, run_dir=None, plugin_manager=plugins.pm)
    checkpointer = Checkpointer(directory, experiment.settings.checkpoint, experiment.config, stream=stream)
    return Trainer(experiment, run, checkpointer=checkpointer)


def steps(trainer: Trainer, count: int) -> None:
    for _ in range(count):
        trainer.train_step()
        trainer.checkpointer.after_step(trainer)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def ckpt_dir(tmp_path: Path) -> Path:
    return tmp_path / "checkpoints"


def saved_steps(directory: Path, suffix: str = ".json") -> list[int]:
    return sorted(int(p.stem[5:]) for p in directory.glob(f"step-*{suffix}"))


# ------------------------------------------------------------------ layout and round trip


def test_save_writes_arrays_then_metadata_naming_them(config_path: Path, ckpt_dir: Path) -> None:
    trainer = make_trainer(config_path, ckpt_dir)
    steps(trainer, 4)
    json_path = trainer.checkpointer.save(trainer, final=True)
    assert json_path == ckpt_dir / "step-00000004.json"
    meta = json.loads(json_path.read_text())
    arrays = ckpt_dir / meta["arrays"]
    assert arrays.name == "step-00000004.npz"
    assert meta["sha256"] == hashlib.sha256(arrays.read_bytes()).hexdigest()
    assert (meta["step"], meta["final"], meta["skipped_steps"]) == (4, True, 0)
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["step-00000004.json", "step-00000004.npz"]
    with np.load(arrays, allow_pickle=False) as npz:
        assert npz["params/affine1/W"].dtype == np.float32
        np.testing.assert_array_equal(npz["params/affine1/W"], trainer.model.params[0])
        assert int(npz["optimizer/t"]) == 4


def test_restore_continues_exactly(config_path: Path, ckpt_dir: Path) -> None:
    straight = make_trainer(config_path, ckpt_dir)
    losses = [straight.train_step().loss for _ in range(13)]
    first = make_trainer(config_path, ckpt_dir)
    steps(first, 6)  # 6 steps of 10 over 72 examples: mid-epoch (8 batches per epoch)
    first.checkpointer.save(first)
    resumed = make_trainer(config_path, ckpt_dir)
    resumed.checkpointer.restore(resumed)
    assert (resumed.step, resumed.run.step, resumed.batches.position) == (6, 6, 6)
    resumed_losses = [resumed.train_step().loss for _ in range(7)]
    assert resumed_losses == losses[6:]
    for a, b in zip(straight.model.params, resumed.model.params):
        assert np.array_equal(a, b)
    assert straight.optimizer.step == resumed.optimizer.step == 13


def test_restore_sets_dropout_and_stream_states(config_path: Path, ckpt_dir: Path) -> None:
    first = make_trainer(config_path, ckpt_dir)
    steps(first, 3)
    first.checkpointer.save(first)
    resumed = make_trainer(config_path, ckpt_dir)
    resumed.checkpointer.restore(resumed)
    for a, b in [(first.model["dropout1"].rng, resumed.model["dropout1"].rng),
                 (first.experiment.streams.init, resumed.experiment.streams.init),
                 (first.experiment.streams.data, resumed.experiment.streams.data),
                 (first.batches.rng, resumed.batches.rng)]:
        assert a.bit_generator.state == b.bit_generator.state


def test_restore_copies_parameters_in_place(config_path: Path, ckpt_dir: Path) -> None:
    first = make_trainer(config_path, ckpt_dir)
    steps(first, 2)
    first.checkpointer.save(first)
    resumed = make_trainer(config_path, ckpt_dir)
    before = list(resumed.model.params)
    resumed.checkpointer.restore(resumed)
    assert all(a is b for a, b in zip(before, resumed.model.params))
    assert np.array_equal(resumed.model.params[0], first.model.params[0])


# -------------------------------------------------------------------------- keep and best


def test_every_and_keep(tmp_path: Path, ckpt_dir: Path) -> None:
    trainer = make_trainer(write_config(tmp_path, checkpoint={"every": 2, "keep": 2}), ckpt_dir)
    steps(trainer, 7)  # saves at 2, 4, 6; keep the newest two
    assert saved_steps(ckpt_dir) == saved_steps(ckpt_dir, ".npz") == [4, 6]
    trainer.checkpointer.save(trainer, final=True)
    assert saved_steps(ckpt_dir) == [6, 7]


def test_save_twice_at_one_step_writes_once(config_path: Path, ckpt_dir: Path) -> None:
    trainer = make_trainer(config_path, ckpt_dir)
    steps(trainer, 1)
    assert trainer.checkpointer.save(trainer) is not None
    assert trainer.checkpointer.save(trainer, final=True) is None


@pytest.mark.parametrize(("metric", "values", "best_step", "best_value"), [
    ("val/accuracy", [0.5, 0.7, 0.6, 0.7], 2, 0.7),  # highest; a tie keeps the earlier one
    ("val/loss", [0.9, 0.4, 0.6, 0.5], 2, 0.4),      # lowest
])
def test_best_checkpoint(tmp_path: Path, ckpt_dir: Path, metric: str, values: list[float],
                         best_step: int, best_value: float) -> None:
    trainer = make_trainer(write_config(tmp_path, checkpoint={"best_metric": metric}), ckpt_dir)
    for value in values:
        steps(trainer, 1)
        metrics = EvalMetrics(trainer.step, 0, loss=value, accuracy=value)
        trainer.checkpointer.after_evaluation(trainer, metrics)
    best = read_checkpoint(ckpt_dir / "best.json")
    assert (best.step, best.meta["metric"]) == (best_step, {"name": metric, "value": best_value})
    assert sorted(p.name for p in ckpt_dir.glob("best*")) == ["best-00000002.npz", "best.json"]


def test_no_best_without_metric(config_path: Path, ckpt_dir: Path) -> None:
    trainer = make_trainer(config_path, ckpt_dir)
    steps(trainer, 1)
    trainer.checkpointer.after_evaluation(trainer, EvalMetrics(1, 0, 0.5, 0.5))
    assert not ckpt_dir.exists()


def test_restore_remembers_best_value(tmp_path: Path, ckpt_dir: Path) -> None:
    path = write_config(tmp_path, checkpoint={"best_metric": "val/accuracy"})
    first = make_trainer(path, ckpt_dir)
    steps(first, 2)
    first.checkpointer.after_evaluation(first, EvalMetrics(2, 0, 1.0, 0.8))
    first.checkpointer.save(first)
    resumed = make_trainer(path, ckpt_dir)
    resumed.checkpointer.restore(resumed)
    steps(resumed, 1)
    resumed.checkpointer.after_evaluation(resumed, EvalMetrics(3, 0, 1.0, 0.6))  # worse: best stays at step 2
    assert read_checkpoint(ckpt_dir / "best.json").step == 2


def test_best_counts_as_newest_when_it_is(tmp_path: Path, ckpt_dir: Path) -> None:
    path = write_config(tmp_path, checkpoint={"best_metric": "val/loss"})
    first = make_trainer(path, ckpt_dir)
    steps(first, 2)
    first.checkpointer.save(first)
    steps(first, 1)
    first.checkpointer.after_evaluation(first, EvalMetrics(3, 0, 0.3, None))
    assert latest_checkpoint(ckpt_dir).path.name == "best.json"


# ------------------------------------------------------------------------ crash recovery


def _truncate_npz(directory: Path, step: int) -> None:
    path = directory / f"{step_name(step)}.npz"
    path.write_bytes(path.read_bytes()[:100])


def _swap_npz(directory: Path, step: int) -> None:
    shutil.copy(directory / f"{step_name(step - 1)}.npz", directory / f"{step_name(step)}.npz")


def _truncate_json(directory: Path, step: int) -> None:
    path = directory / f"{step_name(step)}.json"
    path.write_text(path.read_text()[:50])


def _remove_npz(directory: Path, step: int) -> None:
    (directory / f"{step_name(step)}.npz").unlink()


def _killed_before_json(directory: Path, step: int) -> None:
    (directory / f"{step_name(step)}.json").unlink()
    (directory / f".{step_name(step)}.npz.123.abcd1234.tmp").write_bytes(b"PK\x03\x04 half")


@pytest.mark.parametrize("damage", [_truncate_npz, _swap_npz, _truncate_json, _remove_npz, _killed_before_json])
def test_restore_falls_back_past_a_broken_newest(tmp_path: Path, ckpt_dir: Path, damage) -> None:
    path = write_config(tmp_path, checkpoint={"every": 1, "keep": 5})
    first = make_trainer(path, ckpt_dir)
    steps(first, 3)
    damage(ckpt_dir, 3)
    warnings = io.StringIO()
    resumed = make_trainer(path, ckpt_dir, stream=warnings)
    checkpoint = resumed.checkpointer.restore(resumed)
    assert (checkpoint.step, resumed.step) == (2, 2)
    if damage is not _killed_before_json:  # an npz without its JSON was never a checkpoint: nothing to warn about
        assert "warning: skipping checkpoint" in warnings.getvalue()
        assert "step-00000003.json" in warnings.getvalue()
    assert not list(ckpt_dir.glob(".*.tmp"))


def test_restore_refuses_when_every_checkpoint_is_broken(tmp_path: Path, ckpt_dir: Path) -> None:
    path = write_config(tmp_path, checkpoint={"every": 1, "keep": 5})
    steps(make_trainer(path, ckpt_dir), 2)
    _truncate_npz(ckpt_dir, 1)
    _truncate_json(ckpt_dir, 2)
    resumed = make_trainer(path, ckpt_dir, stream=io.StringIO())
    with pytest.raises(CheckpointError, match=r"no valid checkpoint in .*checkpoints.*sha256") as info:
        resumed.checkpointer.restore(resumed)
    assert info.value.exit_code == 2


def test_restore_without_checkpoints(config_path: Path, ckpt_dir: Path) -> None:
    ckpt_dir.mkdir()
    trainer = make_trainer(config_path, ckpt_dir)
    with pytest.raises(CheckpointError, match=r"no checkpoint in .*checkpoints.*without --resume"):
        trainer.checkpointer.restore(trainer)


class _Trap:
    """Unpickling this would create ``path``: proof that loading ran code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_pickled_arrays_are_refused_unexecuted(config_path: Path, ckpt_dir: Path, tmp_path: Path) -> None:
    trainer = make_trainer(config_path, ckpt_dir)
    steps(trainer, 1)
    json_path = trainer.checkpointer.save(trainer)
    meta = json.loads(json_path.read_text())
    trap = tmp_path / "code-ran"
    buffer = io.BytesIO()
    np.savez(buffer, evil=np.array([_Trap(trap)], dtype=object))
    (ckpt_dir / meta["arrays"]).write_bytes(buffer.getvalue())
    meta["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    json_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        read_checkpoint(json_path)
    assert not trap.exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"format": "other"}, "not an nnframe checkpoint"),
    ({"version": 99}, "checkpoint format version 99; this nnframe reads version 1"),
    ({"step": "3"}, "field 'step' is missing or not an integer"),
    ({"rngs": None}, "field 'rngs' is missing or not an object"),
    ({"step": -5}, "field 'step' is -5; a count cannot be negative"),
    ({"fingerprint": {"params": [["affine1/W"]]}}, "'fingerprint.params' is not a list of"),
    ({"plugin_state": ["early_stopping"]}, "field 'plugin_state' is not an object"),
    ({"stop": {"reason": "enough"}}, "field 'stop' is not null or an object with a 'reason' string and a 'done'"),
])
def test_malformed_metadata_is_a_checkpoint_error(config_path: Path, ckpt_dir: Path, change: dict,
                                                  message: str) -> None:
    trainer = make_trainer(config_path, ckpt_dir)
    steps(trainer, 1)
    json_path = trainer.checkpointer.save(trainer)
    json_path.write_text(json.dumps({**json.loads(json_path.read_text()), **change}))
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(json_path)


def test_incomplete_batch_position_is_a_checkpoint_error(config_path: Path, ckpt_dir: Path) -> None:
    trainer = make_trainer(config_path, ckpt_dir)
    steps(trainer, 1)
    json_path = trainer.checkpointer.save(trainer)
    meta = json.loads(json_path.read_text())
    del meta["batches"]["position"], meta["meta_sha256"]  # as in a checkpoint from before the metadata's hash
    json_path.write_text(json.dumps(meta))
    resumed = make_trainer(config_path, ckpt_dir)
    with pytest.raises(CheckpointError, match="batch position is incomplete or malformed"):
        resumed.checkpointer.restore(resumed)


@pytest.mark.parametrize("arrays", ["../elsewhere.npz", "/tmp/x.npz", "step-00000001.pkl"])
def test_metadata_cannot_point_outside_the_directory(config_path: Path, ckpt_dir: Path, arrays: str) -> None:
    trainer = make_trainer(config_path, ckpt_dir)
    steps(trainer, 1)
    json_path = trainer.checkpointer.save(trainer)
    meta = json.loads(json_path.read_text())
    json_path.write_text(json.dumps({**meta, "arrays": arrays}))
    with pytest.raises(CheckpointError, match="is not a .npz file beside the metadata"):
        read_checkpoint(json_path)


# -------------------------------------------------------------------- a different model


@pytest.mark.parametrize(("override", "message"), [
    ("model.0.out=9", r"parameter 'affine1/W' has shape \(2, 8\) in the checkpoint but \(2, 9\) in this model"),
    ("model.1.type=sigmoid", r"model\.1\.type: 'tanh' in the checkpoint, 'sigmoid' now"),
    ("model.2.ratio=0.5", r"model\.2\.ratio: 0\.2 in the checkpoint, 0\.5 now"),
    ("train.dtype=float64", r"saved with train\.dtype float32, but this run uses float64"),
])
def test_restore_refuses_another_model(config_path: Path, ckpt_dir: Path, override: str, message: str) -> None:
    first = make_trainer(config_path, ckpt_dir)
    steps(first, 1)
    first.checkpointer.save(first)
    other = make_trainer(config_path, ckpt_dir, overrides=(override,))
    with pytest.raises(CheckpointError, match=message):
        other.checkpointer.restore(other)


@pytest.mark.parametrize(("override", "same"), [
    ("train.max_steps=500", True),
    ("train.epochs=3", True),
    ("optimizer.lr=0.01", True),
    ("log.every=5", True),
    ("model.0.out=9", False),
    ("model.0.init=xavier", False),
    ("train.dtype=float64", False),
])
def test_fingerprint_covers_the_model_only(config_path: Path, ckpt_dir: Path, override: str, same: bool) -> None:
    def digest(overrides: tuple[str, ...]) -> str:
        trainer = make_trainer(config_path, ckpt_dir, overrides)
        return fingerprint_hash(fingerprint(trainer.experiment.config, trainer.model))

    assert (digest(()) == digest((override,))) is same


# --------------------------------------------------------------------------- divergence


def test_nonfinite_state_is_never_saved(config_path: Path, ckpt_dir: Path) -> None:
    warnings = io.StringIO()
    trainer = make_trainer(config_path, ckpt_dir, stream=warnings)
    steps(trainer, 1)
    trainer.checkpointer.save(trainer)
    steps(trainer, 1)
    trainer.model.params[2][0, 0] = np.inf
    assert trainer.checkpointer.save(trainer, final=True) is None
    assert "not saving checkpoint step-00000002 at step 2: affine2/W is not finite" in warnings.getvalue()
    assert latest_checkpoint(ckpt_dir).step == 1


def test_divergence_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    # lr 1e38 makes W about 1e38 after a step; logits overflow float32's 3.4e38 and the loss is NaN at step 3.
    path = write_config(tmp_path, seed=3, optimizer={"type": "sgd", "lr": 1e38}, model=CONFIG["model"][:2]
                        + CONFIG["model"][3:], checkpoint={"every": 1})
    with np.errstate(all="ignore"), pytest.raises(NonFiniteError, match=r"diverged at step 3: .*affine1/W") as info:
        launch_train(path, [], get_plugin_manager(), runs_dir=tmp_path / "runs", quiet=True)
    assert info.value.exit_code == 3
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    assert checkpoint.step == 2
    assert all(np.isfinite(p).all() for p in checkpoint.params.values())
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "diverged"


def test_skip_step_counts_skips_and_saves_them(tmp_path: Path) -> None:
    path = write_config(tmp_path, seed=3, optimizer={"type": "sgd", "lr": 1e38}, model=CONFIG["model"][:2]
                        + CONFIG["model"][3:], train={"max_steps": 10, "on_nonfinite": "skip_step"})
    with np.errstate(all="ignore"):
        result = launch_train(path, [], get_plugin_manager(), runs_dir=tmp_path / "runs", quiet=True)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert (summary["status"], summary["steps"], summary["skipped_steps"]) == ("completed", 10, 8)
    assert result.notes == ["skipped 8 of 10 steps with a non-finite loss or gradient (train.on_nonfinite: skip_step)"]
    checkpoint = latest_checkpoint(result.run_dir / "checkpoints")
    assert (checkpoint.step, checkpoint.meta["skipped_steps"]) == (10, 8)


def test_a_regression_run_keeps_its_best_checkpoint_by_val_loss(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((60, 2))
    np.savez(tmp_path / "reg.npz", x=x, y=x.sum(axis=1))
    config = {**CONFIG, "data": {"type": "npz", "path": "reg.npz", "task": "regression", "val_fraction": 0.2},
              "model": [{"type": "affine", "out": 1}], "loss": {"type": "mse"}, "optimizer": {"type": "sgd", "lr": 0.1},
              "train": {"max_steps": 20, "batch_size": 12, "eval_every": 4},
              "checkpoint": {"every": 0}}  # best_metric defaults to val/accuracy, which regression has not
    path = tmp_path / "reg.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = launch_train(path, [], get_plugin_manager(), runs_dir=tmp_path / "runs", quiet=True)
    best = read_checkpoint(result.run_dir / "checkpoints" / "best.json")
    assert best.meta["metric"]["name"] == "val/loss"
    assert best.meta["metric"]["value"] <= result.summary["metrics"]["val/loss"]  # the final one, at step 20
    assert result.notes == []  # the default, not asked for
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert saved["checkpoint"]["best_metric"] == "val/loss"  # the resolved config says what the run does
    asked = launch_train(path, ["checkpoint.best_metric=val/accuracy"], get_plugin_manager(),
                         runs_dir=tmp_path / "runs", quiet=True)
    assert asked.notes == ["checkpoint.best_metric is val/accuracy, which a regression run has not; the best "
                           "checkpoint is kept by val/loss"]
    saved = yaml.safe_load((asked.run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert saved["checkpoint"]["best_metric"] == "val/accuracy"  # as asked


def test_a_best_metric_without_a_validation_set_is_named_in_a_note(tmp_path: Path) -> None:
    path = write_config(tmp_path, data={**CONFIG["data"], "val_fraction": 0.0},
                        checkpoint={"best_metric": "val/loss"})
    result = launch_train(path, [], get_plugin_manager(), runs_dir=tmp_path / "runs", quiet=True)
    assert result.notes == ["checkpoint.best_metric is val/loss, but the run has no validation set, so no best "
                            "checkpoint is kept; set data.val_fraction, a csv dataset's data.val_path, or give "
                            "x_val and y_val"]
    assert not (result.run_dir / "checkpoints" / "best.json").exists()
    quiet = launch_train(write_config(tmp_path, data={**CONFIG["data"], "val_fraction": 0.0}, checkpoint={}), [],
                         get_plugin_manager(), runs_dir=tmp_path / "runs", quiet=True)
    assert quiet.notes == []  # the default, not asked for


class FailingCheckpointHook:
    """A plugin whose ``nnframe_checkpoint`` has a bug that shows at step 8."""

    @hookimpl
    def nnframe_checkpoint(self, run):
        if run.step == 8:
            raise RuntimeError(f"a bug at step {run.step}")


def test_a_plugins_failing_checkpoint_hook_still_lets_the_checkpoint_be_saved(tmp_path: Path) -> None:
    plugins = get_plugin_manager()
    plugins.register(FailingCheckpointHook(), name="failing")
    path = write_config(tmp_path, checkpoint={"every": 4, "keep": 1, "best_metric": None}, train={"max_steps": 20})
    with pytest.raises(RuntimeError, match="a bug at step 8"):
        launch_train(path, [], plugins, runs_dir=tmp_path / "runs", quiet=True)
    (run_dir,) = (tmp_path / "runs").glob("*/*")
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-00000008.json",
                                                                           "step-00000008.npz"]  # keep: 1
    assert read_checkpoint(run_dir / "checkpoints" / "step-00000008.json").meta["step"] == 8


def test_the_plugins_state_is_saved_as_it_was_at_the_checkpoint_and_given_back(config_path: Path,
                                                                             ckpt_dir: Path) -> None:
    trainer = make_trainer(config_path, ckpt_dir)
    steps(trainer, 3)
    trainer.run.state.update(stopper={"best": float("inf"), "bad": np.int64(2), "seen": (1, 2)}, other=[])
    trainer.checkpointer.save(trainer)
    trainer.run.state["stopper"]["bad"] = 5
    resumed = make_trainer(config_path, ckpt_dir)
    resumed.run.state["left over"] = True
    resumed.checkpointer.restore(resumed)
    assert resumed.run.state == {"stopper": {"best": float("inf"), "bad": 2, "seen": [1, 2]}, "other": []}
    assert type(resumed.run.state["stopper"]["bad"]) is int


def test_a_checkpoint_from_before_plugins_had_a_state_restores_an_empty_one(config_path: Path,
                                                                           ckpt_dir: Path) -> None:
    trainer = make_trainer(config_path, ckpt_dir)
    steps(trainer, 2)
    json_path = trainer.checkpointer.save(trainer)
    meta = json.loads(json_path.read_text())
    del meta["plugin_state"]
    meta["meta_sha256"] = meta_digest(meta)
    json_path.write_text(json.dumps(meta))
    resumed = make_trainer(config_path, ckpt_dir)
    resumed.run.state["left over"] = True
    assert resumed.checkpointer.restore(resumed).step == 2
    assert resumed.run.state == {}


class KeepsAnArray:
    @hookimpl
    def nnframe_run_start(self, run):
        run.state.update(count=1, weights=np.zeros(2), pair={"at": (run.step, {3: "x"})})


def test_a_state_a_checkpoint_cannot_hold_ends_the_run_after_the_checkpoint_is_saved(tmp_path: Path) -> None:
    plugins = get_plugin_manager()
    plugins.register(KeepsAnArray(), name="keeps_an_array")
    path = write_config(tmp_path, checkpoint={"every": 4, "keep": 1, "best_metric": None}, train={"max_steps": 20})
    with pytest.raises(PluginStateError) as raised:
        launch_train(path, [], plugins, runs_dir=tmp_path / "runs", quiet=True)
    (run_dir,) = (tmp_path / "runs").glob("*/*")
    assert str(raised.value).startswith(
        "run.state['weights'] is a numpy.ndarray (.tolist() makes it a list); run.state['pair']['at'][1] has the "
        "key 3, which is not a string: a checkpoint keeps only plain numbers, strings, lists and dicts with string "
        "keys in run.state, so checkpoint step-00000004 was saved without run.state['weights'], "
        f"run.state['pair']; the run is in {run_dir}; continue it once the plugin keeps plain values there with: "
        f"nnframe train {path} --resume {run_dir}")
    assert raised.value.exit_code == 2
    assert read_checkpoint(run_dir / "checkpoints" / "step-00000004.json").meta["plugin_state"] == {"count": 1}


def test_a_regression_runs_own_config_gets_no_best_metric_note(tmp_path: Path) -> None:
    from nnframe.launch import config_notes

    x = np.random.default_rng(0).standard_normal((60, 2))
    np.savez(tmp_path / "reg.npz", x=x, y=x.sum(axis=1))
    config = {**CONFIG, "data": {"type": "npz", "path": "reg.npz", "task": "regression"},
              "model": [{"type": "affine", "out": 1}], "loss": {"type": "mse"}, "optimizer": {"type": "sgd", "lr": 0.1},
              "train": {"max_steps": 4, "batch_size": 12}, "checkpoint": {"every": 0}}
    path = tmp_path / "reg.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = launch_train(path, [], get_plugin_manager(), runs_dir=tmp_path / "runs", quiet=True)
    assert result.notes == []
    resolved = result.run_dir / "config.yaml"
    assert yaml.safe_load(resolved.read_text(encoding="utf-8"))["checkpoint"]["best_metric"] == "val/loss"
    assert config_notes(prepare(resolved, [], get_plugin_manager())) == []  # written out, not chosen


def test_a_regression_loss_on_class_labels_gets_a_note(tmp_path: Path) -> None:
    from nnframe.launch import config_notes

    config = {**CONFIG, "model": [{"type": "affine", "out": 1}], "loss": {"type": "mse"}}
    notes = config_notes(prepare(config, [], get_plugin_manager()))
    assert any(note.startswith("loss 'mse' fits values, but the data holds class labels") for note in notes), notes


def test_features_far_beyond_unit_scale_get_a_note_naming_them(tmp_path: Path) -> None:
    from nnframe.launch import config_notes

    x = np.random.default_rng(0).standard_normal((60, 3))
    x[:, 1] *= 3e6
    np.savez(tmp_path / "big.npz", x=x, y=np.arange(60) % 3)
    config = {**CONFIG, "data": {"type": "npz", "path": str(tmp_path / "big.npz")}}
    notes = config_notes(prepare(config, [], get_plugin_manager()))
    assert [note for note in notes if "x[:, 1] up to" in note and "standardize" in note], notes
    assert not [note for note in config_notes(prepare(CONFIG, [], get_plugin_manager())) if "scale" in note]

    class Lookup(Node):
        """Rows of a table picked by the ids of the input's first column: an embedding, whose input is indices."""

        differentiable_input = False

        def __init__(self, dtype: np.dtype) -> None:
            super().__init__()
            self.params, self.grads = [np.zeros((5, 3), dtype)], [np.zeros((5, 3), dtype)]

        def forward(self, x):
            self.ids = np.abs(x[:, 0]).astype(np.intp)
            return self.params[0][self.ids]

        def backward(self, dout):
            self.grads[0][...] = 0
            np.add.at(self.grads[0], self.ids, dout)

    class Embedding:
        @hookimpl
        def nnframe_register_nodes(self) -> list:
            from nnframe.components import Params, node
            return [node("lookup", Params, lambda params, ctx: Lookup(ctx.dtype))]

    ids = {**config, "model": [{"type": "lookup"}, {"type": "affine", "out": 3}]}
    notes = config_notes(prepare(ids, [], get_plugin_manager(plugins=[("lookup", Embedding())])))
    assert not [note for note in notes if "scale" in note], notes


class InterruptedAtStep3:
    """A plugin that presses Ctrl-C at step 3, and whose checkpoint hook then fails."""

    @hookimpl
    def nnframe_step_end(self, run, metrics):
        if metrics.step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    @hookimpl
    def nnframe_checkpoint(self, run):
        raise RuntimeError("a bug while interrupted")


def interrupted_run(tmp_path: Path, plugin: object) -> tuple[Exception, Path]:
    """A run with ``plugin`` that a SIGINT interrupts: the interruption it ended with, and its directory."""
    from nnframe.train import Interrupted

    plugins = get_plugin_manager()
    plugins.register(plugin, name="interrupting")
    path = write_config(tmp_path, train={"max_steps": 20})
    with pytest.raises(Interrupted) as caught:
        launch_train(path, [], plugins, runs_dir=tmp_path / "runs", quiet=True)
    (run_dir,) = (tmp_path / "runs").glob("*/*")
    return caught.value, run_dir


def test_an_interrupted_run_stays_interrupted_when_a_checkpoint_hook_fails(tmp_path: Path) -> None:
    interruption, run_dir = interrupted_run(tmp_path, InterruptedAtStep3())
    assert interruption.exit_code == 130
    assert "(a plugin's nnframe_checkpoint failed too: RuntimeError('a bug while interrupted'))" \
        in str(interruption) and "continue it with: nnframe train" in str(interruption)
    assert read_checkpoint(run_dir / "checkpoints" / "step-00000003.json").meta["step"] == 3


class InterruptedAtStep3WithASet:
    @hookimpl
    def nnframe_step_end(self, run, metrics):
        run.state["seen"] = {metrics.step}
        if metrics.step == 3:
            os.kill(os.getpid(), signal.SIGINT)


def test_an_interrupted_run_stays_interrupted_when_its_state_cannot_be_saved(tmp_path: Path) -> None:
    interruption, run_dir = interrupted_run(tmp_path, InterruptedAtStep3WithASet())
    assert "(run.state['seen'] is a set: a checkpoint keeps only plain numbers, strings, lists and dicts with " \
        "string keys in run.state, so checkpoint step-00000003 was saved without run.state['seen'])" \
        in str(interruption)
    assert "continue it with: nnframe train" in str(interruption)
    assert read_checkpoint(run_dir / "checkpoints" / "step-00000003.json").meta["plugin_state"] == {}


class MovesTheRunsDirectory:
    """Renames the runs directory at step 5, as a user's `mv runs runs2` during training would."""

    @hookimpl
    def nnframe_step_end(self, run, metrics):
        if metrics.step == 5:
            runs = run.run_dir.parent.parent
            runs.rename(runs.with_name("moved"))


@pytest.mark.parametrize("every", [4, 0])  # a checkpoint after the move, or only the final save and the summary
def test_a_run_whose_directory_moved_while_it_trained_does_not_start_a_second_one_at_the_old_path(
        tmp_path: Path, every: int) -> None:
    from nnframe.errors import RunDirectoryGone

    plugins = get_plugin_manager()
    plugins.register(MovesTheRunsDirectory(), name="mover")
    path = write_config(tmp_path, checkpoint={"every": every, "best_metric": None}, train={"max_steps": 12})
    with pytest.raises(RunDirectoryGone, match="was moved or deleted while the run trained"):
        launch_train(path, [], plugins, runs_dir=tmp_path / "runs", quiet=True)
    assert not (tmp_path / "runs").exists()
    (moved,) = (tmp_path / "moved").glob("*/*")
    assert (moved / "config.yaml").is_file()


class MovesTheRunsDirectoryThenFails(MovesTheRunsDirectory):
    @hookimpl
    def nnframe_step_end(self, run, metrics):
        super().nnframe_step_end(run, metrics)
        if metrics.step == 6:
            raise ValueError("a bug after the move")


def test_a_moved_run_directory_is_named_under_the_error_that_ends_the_run_not_instead_of_it(tmp_path: Path) -> None:
    plugins = get_plugin_manager()
    plugins.register(MovesTheRunsDirectoryThenFails(), name="mover")
    path = write_config(tmp_path, checkpoint={"every": 0, "best_metric": None}, train={"max_steps": 12})
    with pytest.raises(ValueError, match="a bug after the move") as caught:
        launch_train(path, [], plugins, runs_dir=tmp_path / "runs", quiet=True)
    assert any("was moved or deleted while the run trained" in note for note in caught.value.__notes__)
    assert not (tmp_path / "runs").exists()


class ChangesDirectory:
    """A plugin that moves the process to another working directory when the run starts."""

    def __init__(self, elsewhere: Path) -> None:
        self.elsewhere = elsewhere

    @hookimpl
    def nnframe_run_start(self, run):
        os.chdir(self.elsewhere)


def test_a_plugin_changing_the_working_directory_leaves_the_run_where_it_began(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    plugins = get_plugin_manager()
    plugins.register(ChangesDirectory(elsewhere), name="chdir")
    path = write_config(tmp_path, checkpoint={"every": 4, "best_metric": None}, train={"max_steps": 8})
    monkeypatch.chdir(tmp_path)
    result = launch_train(path, [], plugins, runs_dir=Path("runs"), quiet=True)
    assert result.summary["status"] == "completed"
    (run_dir,) = (tmp_path / "runs").glob("*/*")
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.json")) == ["step-00000004.json",
                                                                                "step-00000008.json"]
    assert (run_dir / "summary.json").is_file() and list(elsewhere.iterdir()) == []


class MovesAndCounts(MovesTheRunsDirectory):
    def __init__(self) -> None:
        self.last = 0

    @hookimpl
    def nnframe_step_end(self, run, metrics):
        super().nnframe_step_end(run, metrics)
        self.last = metrics.step


def test_a_run_whose_directory_moved_stops_soon_with_one_message(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from nnframe import checkpoint
    from nnframe.errors import RunDirectoryGone

    monkeypatch.setattr(checkpoint, "PRESENCE_CHECK_SECONDS", 0.0)
    mover = MovesAndCounts()
    plugins = get_plugin_manager()
    plugins.register(mover, name="mover")
    path = write_config(tmp_path, checkpoint={"every": 0, "best_metric": None}, train={"max_steps": 10**6})
    with pytest.raises(RunDirectoryGone) as caught:
        launch_train(path, [], plugins, runs_dir=tmp_path / "runs", quiet=True)
    assert mover.last == 5  # not the planned million steps
    assert str(caught.value).count("is gone") == 1


@pytest.mark.parametrize("edit", [
    lambda meta: meta["batches"].update(position=meta["batches"]["position"] + 1),
    lambda meta: next(iter(meta["rngs"].values()))["state"].update(state=1),
    lambda meta: meta.update(skipped_steps=3),
], ids=["batch position", "random state", "skipped steps"])
def test_an_edited_newest_checkpoint_is_skipped_for_the_one_before(config_path: Path, ckpt_dir: Path, edit) -> None:
    trainer = make_trainer(config_path, ckpt_dir)
    steps(trainer, 1)
    trainer.checkpointer.save(trainer)
    steps(trainer, 1)
    newest = trainer.checkpointer.save(trainer)
    meta = json.loads(newest.read_text())
    edit(meta)  # a value a resume would take as it is
    newest.write_text(json.dumps(meta))
    warnings: list[str] = []
    resumed = make_trainer(config_path, ckpt_dir)
    resumed.checkpointer._warn = warnings.append
    assert resumed.checkpointer.restore(resumed).step == 1
    assert "its metadata does not match the sha256 recorded in it" in warnings[0]


def test_a_checkpoint_whose_step_is_not_its_names_is_refused(config_path: Path, ckpt_dir: Path) -> None:
    trainer = make_trainer(config_path, ckpt_dir)
    steps(trainer, 1)
    json_path = trainer.checkpointer.save(trainer)
    meta = json.loads(json_path.read_text())
    meta["step"] = 7
    json_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"its metadata says step 7, its name step 1"):
        read_checkpoint(json_path)


def test_a_run_directory_moved_while_a_checkpoint_is_written_is_one_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nnframe import checkpoint
    from nnframe.errors import RunDirectoryGone

    real = checkpoint.atomic_write_bytes

    def move_then_write(path, data):
        runs = tmp_path / "runs"
        if runs.exists():
            runs.rename(tmp_path / "moved")
        return real(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", move_then_write)
    path = write_config(tmp_path, checkpoint={"every": 2, "best_metric": None}, train={"max_steps": 4})
    with pytest.raises(RunDirectoryGone, match="was moved or deleted while the run trained"):
        launch_train(path, [], get_plugin_manager(), runs_dir=tmp_path / "runs", quiet=True)


class MovesThenCtrlCTwice(MovesTheRunsDirectory):
    @hookimpl
    def nnframe_step_end(self, run, metrics):
        super().nnframe_step_end(run, metrics)
        if metrics.step == 5:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)


def test_a_second_ctrl_c_after_the_directory_moved_is_still_an_interruption(tmp_path: Path) -> None:
    plugins = get_plugin_manager()
    plugins.register(MovesThenCtrlCTwice(), name="mover")
    path = write_config(tmp_path, checkpoint={"every": 0, "best_metric": None}, train={"max_steps": 12})
    with pytest.raises(KeyboardInterrupt) as caught:
        launch_train(path, [], plugins, runs_dir=tmp_path / "runs", quiet=True)
    assert "it had no checkpoint here yet" in " ".join(caught.value.__notes__)


class _Sampler:
    """Keeps the generator a node draws from, as the book's UnigramSampler does."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng


class _NoisyNode(Node):
    """Adds noise drawn from a generator held by a helper (``self.sampler.rng``), not ``self.rng``."""

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__()
        self.sampler = _Sampler(rng)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x + 0.1 * self.sampler.rng.standard_normal(x.shape).astype(x.dtype) if self.training else x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout


class _NoisyPlugin:
    @hookimpl
    def nnframe_register_nodes(self) -> list:
        from nnframe.components import Params, node
        return [node("noisy", Params, lambda params, ctx: _NoisyNode(np.random.default_rng(0)))]


def test_a_generator_a_node_keeps_in_a_helper_is_saved_and_restored(tmp_path: Path, ckpt_dir: Path) -> None:
    config_path = write_config(tmp_path, model=[{"type": "affine", "out": 8}, {"type": "noisy"},
                                                {"type": "tanh"}, {"type": "affine", "out": 3}])
    plugins = get_plugin_manager(plugins=[("noisy", _NoisyPlugin())])

    def trainer() -> Trainer:
        experiment = prepare(config_path, [], plugins)
        run = RunContext(name="tiny", config=experiment.config.resolved, run_dir=None, plugin_manager=plugins.pm)
        return Trainer(experiment, run, Checkpointer(ckpt_dir, experiment.settings.checkpoint, experiment.config))

    straight = trainer()
    losses = [straight.train_step().loss for _ in range(10)]
    first = trainer()
    steps(first, 4)
    first.checkpointer.save(first)
    meta = json.loads((ckpt_dir / "step-00000004.json").read_text())
    assert "nodes/noisy1:sampler.rng" in meta["rngs"]
    resumed = trainer()
    resumed.checkpointer.restore(resumed)
    assert [resumed.train_step().loss for _ in range(6)] == losses[4:]


def test_a_checkpoint_from_before_helper_generators_were_saved_still_restores() -> None:
    live = {"nodes/drop": np.random.default_rng(1), "nodes/ns:sampler.rng": np.random.default_rng(2)}
    before = live["nodes/ns:sampler.rng"].bit_generator.state
    _restore_generators({"nodes/drop": np.random.default_rng(5).bit_generator.state}, live, "step 4")
    assert live["nodes/drop"].bit_generator.state == np.random.default_rng(5).bit_generator.state
    assert live["nodes/ns:sampler.rng"].bit_generator.state == before
    with pytest.raises(CheckpointError, match="step 4 has no random state for nodes/drop"):
        _restore_generators({}, live, "step 4")


def test_the_generator_search_does_not_walk_the_items_of_large_data() -> None:
    from nnframe.generators import MAX_ITEMS, generators_in

    class Vocabulary:
        def __init__(self) -> None:
            self.ids = {f"w{i}": np.random.default_rng(i) for i in range(MAX_ITEMS + 1)}  # data, however odd
            self.sampler = _Sampler(np.random.default_rng(0))

    assert [path for path, _ in generators_in(Vocabulary())] == ["sampler.rng"]

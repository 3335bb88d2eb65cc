"""RMSE and MAE of a run that measures no accuracy: computed, logged to TensorBoard, summarised, listed, and
usable for the best checkpoint and early stopping."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

import nnframe
from nnframe.components import loss as loss_component
from nnframe.error_measures import ErrorSums, batch_errors
from nnframe.errors import DataError
from nnframe.launch import train as launch_train
from nnframe.losses import MeanSquaredError, SigmoidWithLoss, SoftmaxWithLoss
from nnframe.plugins import get_plugin_manager
from nnframe.run_listing import format_runs_table, list_runs
from test_run_listing import render
from test_tensorboard import points, read_events

REGRESSION = {
    "name": "reg",
    "seed": 3,
    "data": {"type": "npz", "path": "reg.npz", "task": "regression", "val_fraction": 0.25},
    "model": [{"type": "affine", "out": 8}, {"type": "tanh"}, {"type": "affine", "out": 1}],
    "loss": {"type": "mse"},
    "optimizer": {"type": "adam", "lr": 0.05},
    "train": {"max_steps": 40, "batch_size": 16, "eval_every": 8, "dtype": "float64"},
    "log": {"every": 4},
}


def regression_config(tmp_path: Path, **sections) -> Path:
    x = np.random.default_rng(0).standard_normal((80, 2))
    np.savez(tmp_path / "reg.npz", x=x, y=3 * x[:, 0] - x[:, 1] + 2)
    path = tmp_path / "reg.yaml"
    path.write_text(yaml.safe_dump({**REGRESSION, **sections}), encoding="utf-8")
    return path


def test_rmse_and_mae_are_those_of_the_predictions_in_the_targets_units() -> None:
    out, t = np.array([[1.0], [2.0], [4.0]]), np.array([1.0, 4.0, 0.0])  # errors 0, -2, 4
    assert batch_errors(MeanSquaredError(), out, t) == (math.sqrt(20 / 3), 2.0)
    sums = ErrorSums()
    sums.add(MeanSquaredError(), out[:1], t[:1])
    sums.add(MeanSquaredError(), out[1:], t[1:])
    assert (sums.rmse, sums.mae) == (math.sqrt(20 / 3), 2.0)  # chunks add up to the whole


def test_the_cross_entropies_predict_probabilities() -> None:
    scores = np.array([[0.0, math.log(3.0)]])
    np.testing.assert_allclose(SoftmaxWithLoss().predictions(scores), [[0.25, 0.75]])
    np.testing.assert_allclose(SigmoidWithLoss().predictions(np.array([[0.0]])), [[0.5]])
    assert batch_errors(SigmoidWithLoss(), np.array([[0.0], [0.0]]), np.array([1.0, 0.0])) == (0.5, 0.5)


def test_a_loss_without_predictions_of_the_targets_gives_none() -> None:
    class NoPredictions(MeanSquaredError):
        def predictions(self, x):
            return None

    assert batch_errors(NoPredictions(), np.ones((2, 1)), np.ones(2)) == (None, None)
    assert batch_errors(MeanSquaredError(), np.ones((2, 3)), np.ones(2)) == (None, None)  # not the targets' size
    assert ErrorSums().rmse is None


def test_a_regression_run_logs_summarises_and_lists_its_error_measures(tmp_path: Path) -> None:
    result = launch_train(regression_config(tmp_path), [], get_plugin_manager(), runs_dir=tmp_path / "runs",
                          quiet=True)
    metrics = json.loads((result.run_dir / "summary.json").read_text())["metrics"]
    assert sorted(metrics) == ["train/loss", "train/mae", "train/rmse", "val/loss", "val/mae", "val/rmse"]
    for part in ("train", "val"):  # mse is half the squared error: rmse = sqrt(2 * loss) for one output
        assert metrics[f"{part}/rmse"] == pytest.approx(math.sqrt(2 * metrics[f"{part}/loss"]), rel=1e-12)
        assert 0 < metrics[f"{part}/mae"] <= metrics[f"{part}/rmse"]
    events = read_events(result.run_dir)
    tags = set(events.Tags()["scalars"])
    assert {"train/rmse", "train/mae", "val/rmse", "val/mae", "final/train/rmse", "final/train/mae"} <= tags
    assert not {"train/accuracy", "val/accuracy", "final/train/accuracy"} & tags
    assert [step for step, _ in points(events, "train/rmse")] == list(range(4, 41, 4))
    assert [step for step, _ in points(events, "val/mae")] == [8, 16, 24, 32, 40]
    assert points(events, "val/rmse")[-1][1] == pytest.approx(metrics["val/rmse"])
    for step, rmse in points(events, "train/rmse"):  # each logged batch's own, from its loss
        loss = dict(points(events, "train/loss"))[step]
        assert rmse == pytest.approx(math.sqrt(2 * loss), rel=1e-5)
    table = render(format_runs_table(list_runs(tmp_path / "runs")))
    assert "rmse" in table and "acc" not in table
    assert f"{metrics['val/rmse']:.4f}" in table


def test_the_best_checkpoint_and_early_stopping_go_by_an_error_measure(tmp_path: Path) -> None:
    path = regression_config(tmp_path, checkpoint={"best_metric": "val/mae"},
                             callbacks=[{"type": "early_stopping", "metric": "val/rmse", "patience": 2}])
    result = launch_train(path, ["optimizer.lr=3.0", "train.max_steps=400"], get_plugin_manager(),
                          runs_dir=tmp_path / "runs", quiet=True)
    best = json.loads((result.run_dir / "checkpoints" / "best.json").read_text())
    mae = points(read_events(result.run_dir), "val/mae")
    assert best["metric"] == {"name": "val/mae", "value": pytest.approx(min(value for _, value in mae))}
    assert best["step"] == min(mae, key=lambda point: point[1])[0]
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert "val/rmse has not improved" in summary["stopped_early"]["reason"]


def test_a_classification_run_lists_accuracy_beside_a_regression_runs_rmse(tmp_path: Path) -> None:
    launch_train(regression_config(tmp_path), [], get_plugin_manager(), runs_dir=tmp_path / "runs", quiet=True)
    spiral = Path(__file__).resolve().parents[1] / "experiments" / "spiral.yaml"
    launch_train(spiral, ["train.epochs=1"], get_plugin_manager(), runs_dir=tmp_path / "runs", quiet=True)
    lines = render(format_runs_table(list_runs(tmp_path / "runs"), with_overrides=False)).splitlines()
    assert lines[1].split() == ["train", "train", "train", "val", "val", "val"]
    assert lines[2].split()[3:] == ["loss", "acc", "rmse", "loss", "acc", "rmse"]


def test_an_error_measure_asked_of_a_classification_run_keeps_the_best_by_accuracy(tmp_path: Path) -> None:
    spiral = Path(__file__).resolve().parents[1] / "experiments" / "spiral.yaml"
    result = launch_train(spiral, ["train.epochs=2", "data.val_fraction=0.2", "checkpoint.best_metric=val/mae"],
                          get_plugin_manager(), runs_dir=tmp_path / "runs", quiet=True)
    assert result.notes == ["checkpoint.best_metric is val/mae, which a classification run has not (error measures "
                            "are a regression run's); the best checkpoint is kept by val/accuracy"]
    best = json.loads((result.run_dir / "checkpoints" / "best.json").read_text())
    assert best["metric"]["name"] == "val/accuracy"


class NoPredictionsLoss(MeanSquaredError):
    """A regression loss whose scores are no predictions of the targets (a mean and a spread, say)."""

    def predictions(self, x):
        return None


class NoPredictionsPlugin:
    @nnframe.hookimpl
    def nnframe_register_losses(self):
        return [loss_component("no_predictions", nnframe.Params, lambda params: NoPredictionsLoss(),
                               classification=False)]


def test_a_loss_without_predictions_is_refused_for_error_measures_by_name(tmp_path: Path) -> None:
    plugins = nnframe.get_plugin_manager(plugins=[("no-predictions", NoPredictionsPlugin())])
    config = yaml.safe_load(regression_config(tmp_path).read_text())
    config["data"]["path"] = str(tmp_path / "reg.npz")
    config["loss"] = {"type": "no_predictions"}
    stopper = "callbacks=[{type: early_stopping, metric: val/rmse}]"
    with pytest.raises(nnframe.UserError, match=r"callbacks\[0\].*this run measures no val/rmse: its loss makes "
                                                r"no predictions of the targets' size"):
        nnframe.prepare_experiment(config, [stopper], plugins=plugins)
    notes: list[str] = []
    result = nnframe.run_experiment(config, ["checkpoint.best_metric=val/mae"], runs_dir=tmp_path / "runs",
                                    quiet=True, plugins=plugins, on_note=notes.append)
    assert "the best checkpoint is kept by val/loss" in " ".join(notes)
    best = json.loads((result.run_dir / "checkpoints" / "best.json").read_text())
    assert best["metric"]["name"] == "val/loss"
    assert "val/rmse" not in result.summary["metrics"]


class MeanColumnLoss(nnframe.Loss):
    """Half the squared error of the first score column; the second is a spread it does not use here. Refuses
    scores that are not two columns, as a plugin's loss says what it needs."""

    def forward(self, x, t):
        if x.shape[-1] != 2:
            raise DataError(f"MeanColumnLoss: scores need 2 columns per target, found {x.shape}")
        self.x, self.t = x, t.reshape(len(t))
        return float(np.mean(0.5 * (x[:, 0] - self.t) ** 2))

    def backward(self, dout=1.0):
        dx = np.zeros_like(self.x)
        dx[:, 0] = (self.x[:, 0] - self.t) * dout / len(dx)
        return dx


class MeanColumnPlugin:
    @nnframe.hookimpl
    def nnframe_register_losses(self):
        return [loss_component("mean_column", nnframe.Params, lambda params: MeanColumnLoss(), classification=False)]


def test_a_loss_whose_predictions_are_wider_than_the_targets_gets_a_note_not_nnframes_width_advice(
        tmp_path: Path) -> None:
    plugins = nnframe.get_plugin_manager(plugins=[("mean-column", MeanColumnPlugin())])
    config = yaml.safe_load(regression_config(tmp_path).read_text())
    config["data"]["path"] = str(tmp_path / "reg.npz")
    config["loss"] = {"type": "mean_column"}
    with pytest.raises(nnframe.UserError) as caught:
        nnframe.prepare_experiment(config, ["model.2.out=3"], plugins=plugins)
    assert "scores need 2 columns per target" in str(caught.value)
    assert "set the last node's out" not in str(caught.value)
    result = nnframe.run_experiment(config, ["model.2.out=2"], runs_dir=tmp_path / "runs", quiet=True,
                                    plugins=plugins)
    assert any("loss 'mean_column' predicts 2 value(s) per example from the model's output of shape (2,) per "
               "example, where the targets hold 1: the run measures no rmse or mae" in note for note in result.notes)
    assert "val/rmse" not in result.summary["metrics"]


class ForgotRegressionPlugin:
    @nnframe.hookimpl
    def nnframe_register_losses(self):
        return [loss_component("forgot", nnframe.Params, lambda params: MeanColumnLoss())]


def test_a_plugins_loss_registered_for_classes_on_regression_data_is_told_how_to_register(tmp_path: Path) -> None:
    plugins = nnframe.get_plugin_manager(plugins=[("forgot-plugin", ForgotRegressionPlugin())])
    config = yaml.safe_load(regression_config(tmp_path).read_text())
    config["data"]["path"] = str(tmp_path / "reg.npz")
    config["loss"] = {"type": "forgot"}
    with pytest.raises(nnframe.UserError, match=r"loss 'forgot' needs class labels \(type 'forgot' from plugin "
                                                r"'forgot-plugin'.*a regression loss registers with "
                                                r"loss\(\.\.\., classification=False\)\)"):
        nnframe.prepare_experiment(config, [], plugins=plugins)

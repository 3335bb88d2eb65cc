"""A run trained on standardized inputs keeps its figures: a resume and ``load_run`` scale the data as the run
was trained, also where the data changed since, and a resume that turns ``standardize`` over is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nnframe
from fixtures.experiments import write_experiment
from nnframe.checkpoint import latest_checkpoint
from nnframe.errors import DataError


def _rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> str:
    income, rooms = rng.normal(50000 + shift, 15000, n), rng.normal(3, 1, n)
    return "".join(f"{a:.2f},{b:.3f},{int(a > 50000)}\n" for a, b in zip(income, rooms))


@pytest.fixture
def standardized_run(tmp_path: Path) -> tuple[Path, Path, nnframe.launch.RunResult]:
    rng = np.random.default_rng(3)
    (tmp_path / "train.csv").write_text("income,rooms,label\n" + _rows(rng, 60), encoding="utf-8")
    (tmp_path / "val.csv").write_text("income,rooms,label\n" + _rows(rng, 20), encoding="utf-8")
    config = write_experiment(tmp_path, {
        "name": "incomes", "seed": 1,
        "data": {"type": "csv", "path": "train.csv", "val_path": "val.csv", "standardize": True},
        "model": [{"type": "affine", "out": 2}], "loss": {"type": "softmax_cross_entropy"},
        "optimizer": {"type": "adam", "lr": 0.05}, "train": {"epochs": 5, "batch_size": 10}})
    return tmp_path, config, nnframe.run_experiment(config, runs_dir=tmp_path / "runs", quiet=True)


def test_a_checkpoint_keeps_the_figures_the_run_was_scaled_with(standardized_run):
    _, _, result = standardized_run
    checkpoint = latest_checkpoint(result.run_dir / "checkpoints")
    dataset = nnframe.load_run(result.run_dir).experiment.dataset
    mean, scale = checkpoint.scaling
    np.testing.assert_array_equal(mean, dataset.x_mean)
    np.testing.assert_array_equal(scale, dataset.x_scale)
    assert 40000 < mean[0] < 60000 and scale[0] > 5000


def test_load_run_scales_data_that_changed_with_the_runs_own_figures(standardized_run):
    folder, _, result = standardized_run
    raw_val = np.loadtxt(folder / "val.csv", delimiter=",", skiprows=1)[:, :2]
    before = nnframe.load_run(result.run_dir).experiment.dataset
    with (folder / "train.csv").open("a", encoding="utf-8") as file:
        file.write(_rows(np.random.default_rng(4), 90, shift=30000))  # another size, other figures
    with pytest.warns(UserWarning, match="standardization figures are not the run's"):
        after = nnframe.load_run(result.run_dir).experiment.dataset
    np.testing.assert_array_equal(after.x_mean, before.x_mean)
    np.testing.assert_allclose(after.x_val, before.x_val, rtol=1e-6)
    np.testing.assert_allclose(after.scale_inputs(raw_val), before.x_val, rtol=1e-6)


def test_load_run_with_standardize_turned_off_is_refused_without_a_word_on_the_data(standardized_run, recwarn):
    """The data has not changed: only its digest, taken of the inputs as scaled, differs."""
    _, _, result = standardized_run
    with pytest.raises(DataError, match="trained on standardized inputs; set data.standardize: true"):
        nnframe.load_run(result.run_dir, overrides=["data.standardize=false"])
    assert [str(warning.message) for warning in recwarn] == []


def test_a_resume_that_turns_standardize_off_is_refused(standardized_run):
    _, config, result = standardized_run
    with pytest.raises(DataError, match=r"^override 'data.standardize=false': data: the run was trained on "
                                        r"standardized inputs; set data.standardize: true"):
        nnframe.run_experiment(config, ["data.standardize=false", "train.epochs=6"], resume=result.run_dir,
                               quiet=True)
    resumed = nnframe.run_experiment(config, ["train.epochs=6"], resume=result.run_dir, quiet=True)
    assert resumed.summary["steps"] == 36 and resumed.notes == ["resumed with train.epochs: 5 in the run, 6 now"]

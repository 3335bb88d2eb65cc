"""train.init_from: a new run's parameters copied from a checkpoint of another run (fine-tuning)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

import nnframe
from fixtures.console import NNFRAME
from nnframe.errors import ConfigError
from nnframe.launch import config_notes

CONFIG = {
    "name": "source",
    "seed": 5,
    "data": {"type": "spiral", "points_per_class": 20, "classes": 3, "val_fraction": 0.25},
    "model": [{"type": "affine", "out": 6}, {"type": "tanh"}, {"type": "affine", "out": 3}],
    "loss": {"type": "softmax_cross_entropy"},
    "optimizer": {"type": "sgd", "lr": 0.5},
    "train": {"max_steps": 30, "batch_size": 9, "eval_every": 5, "dtype": "float64"},
    "log": {"tensorboard": False},
    "checkpoint": {"every": 10, "keep": 5},
}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return nnframe.run_experiment(CONFIG, runs_dir=tmp_path / "runs", quiet=True).run_dir


@pytest.mark.parametrize("checkpoint", ["latest", "best", 20])
def test_a_new_run_starts_from_the_chosen_checkpoints_parameters(source: Path, checkpoint) -> None:
    expected = nnframe.load_run(source, checkpoint)
    init = {"run": str(source), "checkpoint": checkpoint}
    experiment = nnframe.prepare_experiment(CONFIG, [f"train.init_from={yaml.safe_dump(init).strip()}"])
    for name, p, q in zip(experiment.model.param_names, experiment.model.params, expected.model.params):
        np.testing.assert_array_equal(p, q, err_msg=name)
    assert experiment.optimizer.step == 0


def test_a_model_that_does_not_fit_is_refused_unless_not_strict(source: Path) -> None:
    wider = [f"train.init_from.run={source}", "model.2.out=4"]
    with pytest.raises(ConfigError, match=r"field train.init_from: checkpoint 'latest' \(step 30\) of run .* does not "
                                          r"fit the model: its shapes differ: affine2/W \(6, 3\) against the "
                                          r"model's \(6, 4\), affine2/b .*set train.init_from.strict: false"):
        nnframe.prepare_experiment(CONFIG, wider)
    notes: list[str] = []
    result = nnframe.run_experiment(CONFIG, [*wider, "train.init_from.strict=false", "train.max_steps=1"],
                                    runs_dir=source.parent.parent, quiet=True, on_note=notes.append)
    wide, *copied = notes  # the 4 scores for 3 classes are a note of their own
    assert wide.startswith("the model gives 4 scores per example, but dataset spiral has 3 classes")
    assert copied[0] == f"parameters from checkpoint 'latest' (step 30) of run '{source}': 2 of 4"
    assert copied[1].startswith("train.init_from is not strict, and its shapes differ: affine2/W (6, 3)")
    assert result.summary["status"] == "completed"


@pytest.mark.parametrize(("init", "message"), [
    ({"checkpoint": 7}, r"it has no checkpoint of step 7; it has steps 10, 20, 30, best \(step \d+\)"),
    ({"run": "nowhere"}, r"field train.init_from.run: '.*/nowhere' is not a run directory"),
])
def test_a_checkpoint_that_cannot_be_read_is_a_config_error(source: Path, init: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        nnframe.prepare_experiment(CONFIG, [f"train.init_from={yaml.safe_dump({'run': str(source), **init})}"])


def test_the_command_line_names_the_run_from_the_working_directory_and_a_resume_needs_it_no_more(
        source: Path, tmp_path: Path) -> None:
    config = tmp_path / "configs" / "tune.yaml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump({**CONFIG, "name": "tuned"}), encoding="utf-8")
    relative = source.relative_to(tmp_path)
    done = subprocess.run([NNFRAME, "train", str(config), f"train.init_from.run={relative}", "train.max_steps=10",
                           "--runs-dir", "runs", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"note: parameters from checkpoint 'latest' (step 30) of run '{source}': 4 of 4" in done.stderr
    (tuned,) = (tmp_path / "runs" / "tuned").iterdir()
    assert yaml.safe_load((tuned / "config.yaml").read_text())["train"]["init_from"]["run"] == str(source)
    shutil.rmtree(source)
    resumed = subprocess.run([NNFRAME, "train", str(config), "--resume", str(tuned), "-q"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr  # its own checkpoint holds the parameters
    assert "note: train.init_from applies when a run starts; this resume keeps the run's" in resumed.stderr
    assert yaml.safe_load((tuned / "config.yaml").read_text())["train"]["init_from"]["run"] == str(source)


class HugeWeightAtTheEnd:
    @nnframe.hookimpl
    def nnframe_step_end(self, run, metrics) -> None:
        if metrics.step == 30:
            run.model.params[0][0, 0] = 1e300  # finite in float64, beyond float32


def test_a_value_beyond_the_new_runs_dtype_is_refused(tmp_path: Path) -> None:
    plugins = nnframe.get_plugin_manager(plugins=[("huge", HugeWeightAtTheEnd())])
    source = nnframe.run_experiment(CONFIG, runs_dir=tmp_path, quiet=True, plugins=plugins).run_dir
    with pytest.raises(ConfigError, match=r"field train.init_from: checkpoint 'latest' \(step 30\) of run .*: "
                                          r"parameter affine1/W is not finite in float32"):
        nnframe.prepare_experiment(CONFIG, [f"train.init_from.run={source}", "train.dtype=float32"])


def test_a_run_whose_init_from_no_longer_validates_is_refused_as_any_such_resume(source: Path,
                                                                                 tmp_path: Path) -> None:
    tuned = nnframe.run_experiment(CONFIG, [f"train.init_from.run={source}", "train.max_steps=10"],
                                   runs_dir=tmp_path / "tuned", quiet=True).run_dir
    written = yaml.safe_load((tuned / "config.yaml").read_text())
    written["train"]["init_from"]["checkpoint"] = "newest"
    (tuned / "config.yaml").write_text(yaml.safe_dump(written))
    with pytest.raises(ConfigError, match=r"cannot resume run .* train.init_from.checkpoint: 'newest' in the run"):
        nnframe.run_experiment(CONFIG, [f"train.init_from.run={source}", "train.max_steps=30"], resume=tuned,
                               quiet=True)


def standardized_config(path: Path) -> dict:
    return {**CONFIG, "name": "scaled", "data": {"type": "npz", "path": str(path), "standardize": True,
                                                 "val_fraction": 0.25}}


def write_data(path: Path, x: np.ndarray) -> Path:
    np.savez(path, x=x, y=(x[:, 0] + x[:, 1] > 50).astype(np.int64))
    return path


def test_a_fine_tuned_run_standardizes_its_inputs_as_the_run_it_starts_from(tmp_path: Path) -> None:
    """Fine-tuning on part of the data: the copied weights see each row scaled as the source run scaled it."""
    x = np.random.default_rng(0).normal(loc=[10.0, 50.0], scale=[2.0, 30.0], size=(200, 2))
    source_run = nnframe.run_experiment(standardized_config(write_data(tmp_path / "all.npz", x)),
                                        runs_dir=tmp_path / "runs", quiet=True).run_dir
    part = write_data(tmp_path / "part.npz", x[x[:, 1] > 50])
    init = f"train.init_from.run={source_run}"
    experiment = nnframe.prepare_experiment(standardized_config(part), [init])
    trained = nnframe.load_run(source_run)
    np.testing.assert_array_equal(experiment.dataset.x_mean, trained.experiment.dataset.x_mean)
    np.testing.assert_array_equal(experiment.dataset.x_scale, trained.experiment.dataset.x_scale)
    rows = experiment.dataset.x[:5].astype(np.float64) * experiment.dataset.x_scale + experiment.dataset.x_mean
    np.testing.assert_allclose(experiment.model.forward(experiment.dataset.x[:5]),
                               trained.model.forward(trained.experiment.dataset.scale_inputs(rows)), rtol=1e-12)
    assert any("standardized with the figures of run" in note for note in experiment.notes)
    again = nnframe.prepare_experiment(standardized_config(write_data(tmp_path / "same.npz", x)), [init])
    assert not any("standardiz" in note for note in again.notes)  # the same figures: nothing to say
    as_read = nnframe.prepare_experiment(standardized_config(part), [init, "data.standardize=false"])
    assert as_read.dataset.x_mean is None
    assert any("trained on inputs standardized, and this run's are as read" in note for note in as_read.notes)


def test_a_fine_tuned_run_keeps_its_source_runs_scaling_when_resumed_and_loaded(tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(loc=[10.0, 50.0], scale=[2.0, 30.0], size=(200, 2))
    source_run = nnframe.run_experiment(standardized_config(write_data(tmp_path / "all.npz", x)),
                                        runs_dir=tmp_path / "runs", quiet=True).run_dir
    config = standardized_config(write_data(tmp_path / "part.npz", x[x[:, 1] > 50]))
    tuned = nnframe.run_experiment(config, [f"train.init_from.run={source_run}"], runs_dir=tmp_path / "runs",
                                   quiet=True).run_dir
    resumed = nnframe.run_experiment(config, ["train.max_steps=40"], resume=tuned, quiet=True)
    assert resumed.summary["steps"] == 40
    assert not any("training data differs" in note for note in resumed.notes)  # its data as built, not as scaled
    figures = nnframe.load_run(source_run).experiment.dataset.x_mean
    with pytest.warns(UserWarning) as warned:
        loaded = nnframe.load_run(tuned)
    assert [str(w.message).split(": ", 2)[-1][:60] for w in warned] == [
        "the data's standardization figures are not the run's (it cha"]
    np.testing.assert_array_equal(loaded.experiment.dataset.x_mean, figures)


def test_inputs_keep_their_own_scaling_where_no_parameter_was_copied_and_far_ones_are_told(tmp_path: Path) -> None:
    x = np.random.default_rng(2).normal(loc=[10.0, 50.0], scale=[2.0, 30.0], size=(200, 2))
    source_run = nnframe.run_experiment(standardized_config(write_data(tmp_path / "all.npz", x)),
                                        runs_dir=tmp_path / "runs", quiet=True).run_dir
    config = standardized_config(write_data(tmp_path / "part.npz", x[x[:, 1] > 50]))
    own = nnframe.prepare_experiment(config).dataset.x_mean
    renamed = {**config, "model": [{"type": "affine", "out": 6, "name": "other"}, {"type": "tanh"},
                                   {"type": "affine", "out": 3, "name": "head"}]}
    untouched = nnframe.prepare_experiment(renamed, [f"train.init_from.run={source_run}",
                                                     "train.init_from.strict=false"])
    np.testing.assert_array_equal(untouched.dataset.x_mean, own)  # 0 of 4 copied: nothing saw the old scaling
    far = x * [1000.0, 1.0]
    experiment = nnframe.prepare_experiment(standardized_config(write_data(tmp_path / "far.npz", far)),
                                            [f"train.init_from.run={source_run}"])
    notes = [note for note in config_notes(experiment) if "far beyond unit scale" in note]
    assert len(notes) == 1 and "this data lies far from the data they were taken from" in notes[0]
    assert "data.standardize: true" not in notes[0]  # it is on already


def test_the_far_input_note_tells_a_runs_own_figures_from_other_ones() -> None:
    """Standardized by its own figures, an input passes 1e3 only where a value is rare among millions of examples
    (an indicator set once in two million: 1414 standard deviations); by other figures, the data is far from
    theirs."""
    from types import SimpleNamespace

    from nnframe.launch import _scale_notes

    x = np.zeros((10, 1))
    x[0, 0] = 1414.0
    own = SimpleNamespace(x=x, x_mean=np.zeros(1), digest_as_built=None)
    other = SimpleNamespace(x=x, x_mean=np.zeros(1), digest_as_built="0f" * 16)
    assert "even standardized: a value rare among the examples" in _scale_notes(own)[0]
    assert "as standardized by the run's figures" in _scale_notes(other)[0]
    assert "data.standardize: true" in _scale_notes(SimpleNamespace(x=x, x_mean=None, digest_as_built=None))[0]

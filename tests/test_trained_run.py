"""A trained run's model loaded back: nnframe.load_run after a run, at its newest, best or a chosen checkpoint."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from fixtures.console import NNFRAME
from fixtures.distributions import Site
from fixtures.experiments import write_experiment
import nnframe
from nnframe.checkpoint import read_checkpoint
from nnframe.errors import CheckpointError, DataError, UserError

CONFIG = {
    "name": "tiny",
    "seed": 5,
    "data": {"type": "spiral", "points_per_class": 30, "classes": 3, "val_fraction": 0.2},
    "model": [{"type": "affine", "out": 8}, {"type": "tanh"}, {"type": "dropout", "ratio": 0.3},
              {"type": "affine", "out": 3}],
    "loss": {"type": "softmax_cross_entropy"},
    "optimizer": {"type": "adam", "lr": 0.05},
    "train": {"max_steps": 30, "batch_size": 8, "eval_every": 4},
    "log": {"every": 5, "tensorboard": False},
    "checkpoint": {"every": 10, "keep": 5, "best_metric": "val/loss"},
}
NPZ = {"type": "npz", "path": "data.npz", "val_fraction": 0.2}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> nnframe.launch.RunResult:
    config = write_experiment(tmp_path_factory.mktemp("run"), CONFIG)
    return nnframe.run_experiment(config, runs_dir=config.parent / "runs", quiet=True)


def saved_params(checkpoint: Path) -> list[np.ndarray]:
    return list(read_checkpoint(checkpoint).params.values())


def files_of(directory: Path) -> dict[Path, tuple[bytes, int]]:
    """Every file's bytes and modification time, by path: what loading must leave as it found."""
    return {path.relative_to(directory): (path.read_bytes(), path.stat().st_mtime_ns)
            for path in directory.rglob("*") if path.is_file()}


def test_the_newest_checkpoint_gives_the_model_training_left(trained) -> None:
    loaded = nnframe.load_run(trained.run_dir)
    assert (loaded.step, loaded.checkpoint.name) == (30, "step-00000030.json")
    assert loaded.summary == json.loads((trained.run_dir / "summary.json").read_text())
    assert not loaded.model.training and loaded.experiment.loss.validate_targets  # as prepare_experiment's
    x = loaded.experiment.dataset.x_val
    assert np.array_equal(loaded.model.forward(x), trained.model.forward(x))  # dropout is off in both
    assert all(np.array_equal(a, b) for a, b in zip(loaded.model.params, trained.model.params))


def test_a_checkpoint_pruned_as_it_is_read_sends_the_load_to_the_newer_one(tmp_path: Path, monkeypatch) -> None:
    """A run still training with checkpoint.keep 1 prunes the checkpoint a load has listed, once it has saved a
    newer one: the load took the older best checkpoint, with a warning that the newest was damaged."""
    from nnframe import checkpoint_files

    config = write_experiment(tmp_path, CONFIG)
    run_dir = nnframe.run_experiment(config, runs_dir=tmp_path / "runs", quiet=True).run_dir
    checkpoints = run_dir / "checkpoints"
    real_candidates, real_read = checkpoint_files.candidates, checkpoint_files.read_checkpoint
    listed_before_30 = [path for path in real_candidates(checkpoints)  # as it stood while step 20 was the newest
                        if path.name in ("step-00000020.json", "step-00000010.json")]
    listings = iter([listed_before_30] * 2)  # as checkpoint_of and latest_checkpoint listed it, before step 30
    monkeypatch.setattr(checkpoint_files, "candidates",
                        lambda directory, warn=None: next(listings, None) or real_candidates(directory, warn))

    def pruned_as_read(path: Path):
        if path.name == "step-00000020.json":
            path.unlink()
            raise CheckpointError(f"{path}: cannot read its arrays file: No such file or directory")
        return real_read(path)

    monkeypatch.setattr(checkpoint_files, "read_checkpoint", pruned_as_read)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nnframe.load_run(run_dir).step == 30


def test_a_newest_checkpoint_that_is_a_link_to_nothing_is_skipped_as_damaged(tmp_path: Path) -> None:
    """It is listed on every look and never exists: taken for one pruned as it was read, it was looked for again
    until the run seemed to have no checkpoint at all."""
    config = write_experiment(tmp_path, CONFIG)
    run_dir = nnframe.run_experiment(config, runs_dir=tmp_path / "runs", quiet=True).run_dir
    newest = run_dir / "checkpoints" / "step-00000030.json"
    newest.unlink()
    newest.symlink_to("gone.json")
    with pytest.warns(UserWarning, match="skipping .*step-00000030.json"):
        assert nnframe.load_run(run_dir).step == 24  # the best checkpoint, at step 24, is the newest valid one
    best = run_dir / "checkpoints" / "best.json"
    best.unlink()
    best.symlink_to("gone-too.json")
    with pytest.warns(UserWarning) as warned:
        assert nnframe.load_run(run_dir).step == 20
    assert any("best.json" in str(warning.message) for warning in warned)  # named, not passed over


def test_the_best_checkpoint_and_one_of_a_step_are_loaded_as_saved(trained) -> None:
    best = nnframe.load_run(trained.run_dir, "best")
    meta = json.loads((trained.run_dir / "checkpoints" / "best.json").read_text())
    assert best.step == meta["step"] and best.checkpoint.name == "best.json"
    assert all(np.array_equal(a, b) for a, b in zip(best.model.params, saved_params(best.checkpoint)))
    tenth = nnframe.load_run(trained.run_dir, "10")
    assert all(np.array_equal(a, b) for a, b in zip(tenth.model.params, saved_params(tenth.checkpoint)))
    assert not all(np.array_equal(a, b) for a, b in zip(tenth.model.params, trained.model.params))


def test_a_step_number_from_numpy_and_the_best_checkpoint_by_its_step_are_found(tmp_path: Path) -> None:
    config = write_experiment(tmp_path, CONFIG, checkpoint={"every": 10, "keep": 1, "best_metric": "val/loss"})
    result = nnframe.run_experiment(config, runs_dir=tmp_path / "runs", quiet=True)
    best_step = json.loads((result.run_dir / "checkpoints" / "best.json").read_text())["step"]
    assert best_step != 30  # keep: 1 left only step 30's, and the best is older
    assert nnframe.load_run(result.run_dir, np.int64(best_step)).checkpoint.name == "best.json"
    with pytest.raises(CheckpointError, match=rf"it has no checkpoint of step 10; it has steps 30, best \(step "
                                              rf"{best_step}\)"):
        nnframe.load_run(result.run_dir, 10)


@pytest.mark.parametrize(("which", "message"), [
    (7, r"it has no checkpoint of step 7; it has steps 10, 20, 30, best \(step \d+\)"),
    ("newest", r"checkpoint 'newest': give 'latest', 'best' or a step number"),
    (True, r"checkpoint True: give 'latest', 'best' or a step number"),
])
def test_a_checkpoint_the_run_lacks_is_named_with_what_it_has(trained, which, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        nnframe.load_run(trained.run_dir, which)


def test_a_run_without_a_best_or_any_checkpoint_says_so(tmp_path: Path) -> None:
    config = write_experiment(tmp_path, CONFIG, checkpoint={"every": 0, "best_metric": None})
    result = nnframe.run_experiment(config, runs_dir=tmp_path / "runs", quiet=True)
    with pytest.raises(CheckpointError, match=r"it has no best checkpoint \(checkpoint.best_metric was null"):
        nnframe.load_run(result.run_dir, "best")
    for path in (result.run_dir / "checkpoints").iterdir():
        path.unlink()
    with pytest.raises(CheckpointError, match="has no checkpoint yet"):
        nnframe.load_run(result.run_dir)
    with pytest.raises(UserError, match="does not exist"):
        nnframe.load_run(tmp_path / "runs" / "elsewhere")


def test_a_checkpoint_file_given_for_the_run_is_named_as_one(trained) -> None:
    checkpoint = trained.run_dir / "checkpoints" / "step-00000030.json"
    with pytest.raises(UserError) as caught:
        nnframe.load_run(checkpoint)
    assert str(caught.value) == (f"{str(checkpoint)!r} is a checkpoint of the run {str(trained.run_dir)!r}: name "
                                 "the run itself; a resume goes on from its newest checkpoint, and load_run and "
                                 "train.init_from take the checkpoint apart (checkpoint=...)")


def test_yaml_text_given_for_a_config_says_to_load_it(tmp_path: Path) -> None:
    text = write_experiment(tmp_path, CONFIG).read_text(encoding="utf-8")
    with pytest.raises(TypeError, match=r"this string holds lines, as YAML text does: give yaml.safe_load\(text\)$"):
        nnframe.prepare_experiment(text)


def test_a_config_yaml_edited_to_another_model_is_refused(tmp_path: Path) -> None:
    config = write_experiment(tmp_path, CONFIG, train={"max_steps": 10})
    result = nnframe.run_experiment(config, runs_dir=tmp_path / "runs", quiet=True)
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    saved["model"][0]["out"] = 9
    (result.run_dir / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(CheckpointError, match="from a different model"):
        nnframe.load_run(result.run_dir)


def test_a_run_trained_by_the_command_line_predicts_in_python(tmp_path: Path) -> None:
    config = write_experiment(tmp_path, CONFIG)
    done = subprocess.run([NNFRAME, "train", str(config), "-q", "--runs-dir", "runs"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    loaded = nnframe.load_run(run_dir)
    dataset = loaded.experiment.dataset
    accuracy = np.mean(loaded.model.forward(dataset.x).argmax(axis=1) == dataset.y)
    assert accuracy == pytest.approx(loaded.summary["metrics"]["train/accuracy"])


def test_the_readme_example_runs_on_a_real_run(trained, capsys: pytest.CaptureFixture) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (block,) = [code for code in (part.split("```")[0] for part in readme.split("```python\n")[1:])
                if "nnframe.load_run(" in code]
    code = block.replace("runs/spiral/20261126-103000", str(trained.run_dir))
    namespace: dict = {"nnframe": nnframe}
    exec(compile(code, "README.md", "exec"), namespace)
    assert capsys.readouterr().out.split() == ["30", "completed"]
    assert namespace["labels"].shape == (len(namespace["run"].experiment.dataset.x),)


def test_data_that_moved_is_found_through_overrides_and_the_error_says_how(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.standard_normal((40, 2)), y=rng.integers(0, 3, 40))
    config = write_experiment(tmp_path, {**CONFIG, "data": NPZ}, train={"max_steps": 10})
    result = nnframe.run_experiment(config, runs_dir=tmp_path / "runs", quiet=True)
    (tmp_path / "moved").mkdir()
    (tmp_path / "data.npz").rename(tmp_path / "moved" / "data.npz")
    with pytest.raises(DataError, match=r"not found; where the data moved, give load_run "
                                        r"overrides=\['data.path=...'\] with the absolute path it has now"):
        nnframe.load_run(result.run_dir)
    loaded = nnframe.load_run(result.run_dir, "latest", [f"data.path={tmp_path / 'moved' / 'data.npz'}"])
    assert all(np.array_equal(a, b) for a, b in zip(loaded.model.params, result.model.params))


def test_a_validation_file_that_moved_is_named_in_the_override_to_give(tmp_path: Path) -> None:
    rows = "\n".join(f"{i % 5},{i % 3},{i % 2}" for i in range(20))
    (tmp_path / "train.csv").write_text(f"a,b,label\n{rows}\n", encoding="utf-8")
    (tmp_path / "val.csv").write_text(f"a,b,label\n{rows}\n", encoding="utf-8")
    data = {"type": "csv", "path": "train.csv", "val_path": "val.csv"}
    config = write_experiment(tmp_path, {**CONFIG, "data": data}, train={"max_steps": 4})
    result = nnframe.run_experiment(config, runs_dir=tmp_path / "runs", quiet=True)
    (tmp_path / "val.csv").rename(tmp_path / "held_out.csv")
    with pytest.raises(DataError, match=r"give load_run overrides=\['data.val_path=...'\] with the absolute path"):
        nnframe.load_run(result.run_dir)
    assert nnframe.load_run(result.run_dir, "latest", [f"data.val_path={tmp_path / 'held_out.csv'}"]).step == 4


def test_loading_writes_nothing_and_tells_what_it_could_not_trust(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 2)), rng.integers(0, 3, 40)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    config = write_experiment(tmp_path, {**CONFIG, "data": NPZ}, train={"max_steps": 10})
    result = nnframe.run_experiment(config, runs_dir=tmp_path / "runs", quiet=True)
    np.savez(tmp_path / "data.npz", x=x[::-1], y=y[::-1])  # rewritten in place, as large as before
    (result.run_dir / "summary.json").write_text('{"status": ')
    before = files_of(result.run_dir)
    with pytest.warns(UserWarning) as warned:
        loaded = nnframe.load_run(result.run_dir)
    assert [str(w.message) for w in warned] == [
        f"nnframe: the data of run {str(result.run_dir)!r} is not what it trained on (its digest differs, its size "
        "is the same): experiment.dataset holds the data as it is now",
        f"nnframe: {str(result.run_dir / 'summary.json')!r} is not valid JSON: Expecting value: line 1 column 12 "
        "(char 11); the summary is left empty"]
    assert all(w.filename == __file__ for w in warned)
    assert loaded.summary == {} and loaded.step == 10
    assert files_of(result.run_dir) == before
    for path in (result.run_dir / "checkpoints").iterdir():
        path.unlink()
    (result.run_dir / "checkpoints").rmdir()
    with pytest.raises(CheckpointError, match="has no checkpoint yet"):
        nnframe.load_run(result.run_dir)
    assert not (result.run_dir / "checkpoints").exists()


def test_a_config_yaml_edited_to_another_dtype_is_refused_with_the_override_that_loads_it(tmp_path: Path) -> None:
    config = write_experiment(tmp_path, CONFIG, train={"max_steps": 10, "dtype": "float64"})
    result = nnframe.run_experiment(config, runs_dir=tmp_path / "runs", quiet=True)
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    saved["train"]["dtype"] = "float32"
    (result.run_dir / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(CheckpointError, match=r"was saved with train.dtype float64, but this run uses float32; "
                                              r"load it with the override train.dtype=float64"):
        nnframe.load_run(result.run_dir)
    assert nnframe.load_run(result.run_dir, overrides=["train.dtype=float64"]).step == 10


def test_data_rewritten_with_another_width_is_named_as_a_possible_cause(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.standard_normal((40, 2)), y=rng.integers(0, 3, 40))
    config = write_experiment(tmp_path, {**CONFIG, "data": NPZ}, train={"max_steps": 10})
    result = nnframe.run_experiment(config, runs_dir=tmp_path / "runs", quiet=True)
    np.savez(tmp_path / "data.npz", x=rng.standard_normal((40, 3)), y=rng.integers(0, 3, 40))
    with pytest.raises(CheckpointError, match=r"parameter 'affine1/W' has shape \(2, 8\) in the checkpoint but "
                                              r"\(3, 8\) in this model: the run's config.yaml, or the shape of its "
                                              r"data, changed since it trained"):
        nnframe.load_run(result.run_dir)


def test_a_plugin_the_run_was_trained_with_and_that_is_missing_is_named(site: Site, tmp_path: Path) -> None:
    info = site.add("my-nodes", {"my_nodes": """
        import nnframe
        from nnframe.components import node
        from nnframe.nodes import Tanh

        class NoParams(nnframe.Params):
            pass

        @nnframe.hookimpl
        def nnframe_register_nodes():
            return [node("my_tanh", NoParams, lambda params, ctx: Tanh())]
        """}, entry_points={"my_nodes": "my_nodes"}, version="0.3")
    model = [{"type": "affine", "out": 8}, {"type": "my_tanh"}, {"type": "affine", "out": 3}]
    config = write_experiment(tmp_path, {**CONFIG, "model": model}, train={"max_steps": 5})
    done = subprocess.run([NNFRAME, "train", str(config), "-q", "--runs-dir", "runs"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=site.env())
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    shutil.rmtree(info)  # uninstalled since
    (site.root / "my_nodes.py").unlink()
    site.forget_modules()
    importlib.invalidate_caches()
    with pytest.raises(UserError, match=r"The run was trained with my-nodes 0.3, not installed now: install it to "
                                        r"load the run"):
        nnframe.load_run(run_dir)


def test_a_run_trained_with_a_notebooks_components_says_how_to_pass_them_again(tmp_path: Path) -> None:
    from nnframe.components import Params, node
    from nnframe.hookspecs import hookimpl
    from nnframe.nodes import Tanh

    class Notebook:
        @hookimpl
        def nnframe_register_nodes(self) -> list:
            return [node("my_tanh", Params, lambda params, ctx: Tanh())]

    mine = nnframe.get_plugin_manager(plugins=[("notebook", Notebook())])
    model = [{"type": "affine", "out": 8}, {"type": "my_tanh"}, {"type": "affine", "out": 3}]
    config = write_experiment(tmp_path, {**CONFIG, "model": model}, train={"max_steps": 5})
    result = nnframe.run_experiment(config, runs_dir=tmp_path / "runs", quiet=True, plugins=mine)
    with pytest.raises(UserError, match=r"The run was trained with components defined in the process that trained "
                                        r"it \(\(local\)\): to load the run, define them again and pass "
                                        r"plugins=nnframe.get_plugin_manager"):
        nnframe.load_run(result.run_dir)
    assert nnframe.load_run(result.run_dir, plugins=mine).step == 5

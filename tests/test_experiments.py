"""Every shipped experiment validates, builds and trains a few steps; the headline ones reach their targets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nnframe.launch import prepare, train
from nnframe.plugins import get_plugin_manager

EXPERIMENTS = sorted((Path(__file__).resolve().parent.parent / "experiments").glob("*.yaml"))


def test_there_are_experiments():
    assert {path.stem for path in EXPERIMENTS} >= {"spiral", "digits"}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda path: path.stem)
def test_experiment_validates_and_trains_a_few_steps(path, tmp_path):
    plugins = get_plugin_manager()
    experiment = prepare(path, [], plugins)
    assert experiment.config.resolved["name"] == path.stem
    result = train(path, ["train.max_steps=5", "train.epochs=null"], plugins, runs_dir=tmp_path, quiet=True)
    assert result.summary["status"] == "completed"
    assert result.summary["steps"] == 5
    assert (result.run_dir / "config.yaml").is_file()
    assert (result.run_dir / "summary.json").is_file()


def test_digits_reaches_97_percent_validation_accuracy(tmp_path):
    path = next(p for p in EXPERIMENTS if p.stem == "digits")
    result = train(path, [], get_plugin_manager(), runs_dir=tmp_path, quiet=True)
    assert result.summary["metrics"]["val/accuracy"] >= 0.97


def test_the_readme_shows_the_spiral_experiment_as_shipped():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Experiments"):]
    shown = section[section.index("```yaml\n") + len("```yaml\n"):section.index("```\n", section.index("```yaml"))]
    spiral = next(p for p in EXPERIMENTS if p.stem == "spiral")
    assert yaml.safe_load(shown) == yaml.safe_load(spiral.read_text(encoding="utf-8"))

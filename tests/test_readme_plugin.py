"""The plugin README.md walks through, and docs/plugins.md goes on with, built from their own code blocks: installed,
listed, checked, trained.

If the walkthrough stops working as written, this fails: the node and the
component (steps 1 and 2) become the module the ``pyproject.toml`` of step 3
names, installed as a distribution with that entry point, and step 4's tests
run against it.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import textwrap
import tomllib
from pathlib import Path

import pytest
import yaml

from fixtures.console import NNFRAME
from fixtures.distributions import Site
from nnframe.plugins import get_plugin_manager
from nnframe.testing import check_gradients, check_optimizer

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Write a layer plugin"
GUIDE = README.parent / "docs" / "plugins.md"
SPIRAL = README.parent / "experiments" / "spiral.yaml"


def code_blocks(language: str) -> list[str]:
    """The fenced ``language`` blocks of the README's plugin section, then of the plugin guide, dedented, in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", 1)]
    section += "\n" + GUIDE.read_text(encoding="utf-8")
    return [textwrap.dedent(block) for block in
            re.findall(rf"^ *```{language}\n(.*?)^ *```$", section, flags=re.MULTILINE | re.DOTALL)]


def install_the_readme_plugin(site: Site) -> dict:
    """Steps 1-3 as a distribution in ``site``; returns its ``pyproject.toml``."""
    node_code, component_code = code_blocks("python")[:2]
    (pyproject_text,) = code_blocks("toml")
    pyproject = tomllib.loads(pyproject_text)
    (target,) = pyproject["project"]["entry-points"]["nnframe"].values()
    package, module = target.split(".")
    (site.root / package).mkdir()
    (site.root / package / "__init__.py").write_text("", encoding="utf-8")
    (site.root / package / f"{module}.py").write_text(node_code + "\n" + component_code, encoding="utf-8")
    site.modules += [package, target]
    site.add(pyproject["project"]["name"], {}, entry_points=pyproject["project"]["entry-points"]["nnframe"],
             version=pyproject["project"]["version"])
    return pyproject


def test_the_readme_plugin_installs_and_passes_its_own_tests(site: Site) -> None:
    pyproject = install_the_readme_plugin(site)
    plugins = get_plugin_manager()
    assert not plugins.broken
    assert plugins.nodes.plugin_of("scale").dist == pyproject["project"]["name"]
    (tests,) = [block for block in code_blocks("python") if "def test_" in block]
    namespace: dict = {}
    exec(compile(tests, "README.md", "exec"), namespace)  # as the README gives it: its own imports
    namespace["test_scale_gradients"](check_gradients)
    namespace["test_registered"](plugins)


def train_spiral_with(site: Site, tmp_path: Path, change) -> dict:
    """``nnframe train`` on the spiral experiment changed by ``change(config)``, in ``site``; its summary."""
    config = yaml.safe_load(SPIRAL.read_text(encoding="utf-8"))
    change(config)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    done = subprocess.run([NNFRAME, "train", str(path), "--runs-dir", str(tmp_path / "runs"), "-q"],
                          capture_output=True, text=True, timeout=120, env=site.env())
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "runs" / "spiral").iterdir()
    return json.loads((run_dir / "summary.json").read_text())


def test_a_config_trains_with_the_readme_plugin(site: Site, tmp_path: Path) -> None:
    install_the_readme_plugin(site)

    def add_scale(config: dict) -> None:
        config["model"].insert(1, {"type": "scale", "init": 0.5})
        config["train"]["epochs"] = 20

    summary = train_spiral_with(site, tmp_path, add_scale)
    assert summary["status"] == "completed" and summary["steps"] == 200
    assert "my-package" in summary["versions"]["plugins"]


def test_the_readme_optimizer_registers_and_trains(site: Site, tmp_path: Path) -> None:
    (code,) = [block for block in code_blocks("python") if "nnframe_register_optimizers" in block]
    site.add("my-optimizer", {"my_optimizer": code}, entry_points={"sign_sgd": "my_optimizer"}, version="0.1")
    assert get_plugin_manager().optimizers.plugin_of("sign_sgd").dist == "my-optimizer"
    sign_sgd = importlib.import_module("my_optimizer").SignSGD
    check_optimizer(lambda: sign_sgd(lr=0.1))

    def use_sign_sgd(config: dict) -> None:
        config["optimizer"] = {"type": "sign_sgd", "lr": 0.05}
        config["train"]["epochs"] = 30

    summary = train_spiral_with(site, tmp_path, use_sign_sgd)
    assert summary["status"] == "completed"
    assert summary["metrics"]["train/loss"] < 1.0  # from log(3) = 1.0986 at the start


@pytest.mark.parametrize("split", [150, 152])
def test_the_readme_callback_stops_a_resumed_run_where_an_uninterrupted_one_stops(site: Site, tmp_path: Path,
                                                                                   split: int) -> None:
    """Installed, it acts only where a config lists it. Its streak lives in ``run.state``, so a checkpoint keeps
    it: val/accuracy is at least 0.5 from step 145 on, evaluated every 5 steps, so the straight run stops at 155,
    and so does one resumed at step 150 or 152, where a streak started afresh would stop at 165. The evaluation
    the first part adds at step 152 is not counted."""
    (code,) = [block for block in code_blocks("python") if "nnframe_register_callbacks" in block]
    site.add("my-target", {"my_target": code}, entry_points={"stop_at_target": "my_target"}, version="0.1")
    assert get_plugin_manager().callbacks.plugin_of("stop_at_target").dist == "my-target"
    config = yaml.safe_load(SPIRAL.read_text(encoding="utf-8"))
    config["data"]["val_fraction"] = 0.2
    config["train"].update(epochs=None, max_steps=400, eval_every=5)
    config["log"]["tensorboard"] = False
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")

    def train(*args: str) -> dict:
        done = subprocess.run([NNFRAME, "train", str(path), "-q", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env=site.env())
        assert done.returncode == 0, done.stderr
        (run_dir,) = (tmp_path / args[args.index("--runs-dir") + 1] / "spiral").iterdir()
        return run_dir

    unasked = train("--runs-dir", "unasked", "train.max_steps=160")
    assert "stopped_early" not in json.loads((unasked / "summary.json").read_text())
    listed = ["callbacks=[{type: stop_at_target, accuracy: 0.5, evaluations: 3}]"]
    straight = train("--runs-dir", "straight", *listed)
    parts = train("--runs-dir", "parts", *listed, f"train.max_steps={split}")
    checkpoint = json.loads((parts / "checkpoints" / f"step-{split:08d}.json").read_text())
    assert checkpoint["plugin_state"]["stop_at_target"] == 2
    train("--runs-dir", "parts", "--resume", str(parts), *listed)
    straight, resumed = (json.loads((d / "summary.json").read_text()) for d in (straight, parts))
    assert straight["stopped_early"]["step"] == 155
    assert resumed["stopped_early"] == straight["stopped_early"]
    assert resumed["steps"] == 155 and resumed["metrics"] == straight["metrics"]


def test_a_wrong_entry_for_the_readme_callback_names_the_field(site: Site, tmp_path: Path) -> None:
    (code,) = [block for block in code_blocks("python") if "nnframe_register_callbacks" in block]
    site.add("my-target", {"my_target": code}, entry_points={"stop_at_target": "my_target"}, version="0.1")
    for entry, field in [("{type: stop_at_target, acuracy: 0.9}", "callbacks[0].acuracy"),
                         ("{type: stop_at_target, accuracy: 0.9}", "callbacks[0]")]:
        done = subprocess.run([NNFRAME, "train", str(SPIRAL), "-q", f"callbacks=[{entry}]"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, env=site.env())
        assert done.returncode == 2 and field in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_the_readme_schedule_registers_and_sets_the_rate_of_every_step(site: Site, tmp_path: Path) -> None:
    (code,) = [block for block in code_blocks("python") if "nnframe_register_schedules" in block]
    site.add("my-schedule", {"my_schedule": code}, entry_points={"exponential": "my_schedule"}, version="0.1")
    assert get_plugin_manager().schedules.plugin_of("exponential").dist == "my-schedule"

    def use_exponential(config: dict) -> None:
        config["optimizer"]["schedule"] = {"type": "exponential", "gamma": 0.99, "warmup_steps": 2}
        config["train"]["epochs"] = 1
        config["log"]["every"] = 1

    summary = train_spiral_with(site, tmp_path, use_exponential)
    assert summary["status"] == "completed"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run_dir,) = (tmp_path / "runs" / "spiral").iterdir()
    events = EventAccumulator(str(run_dir))
    events.Reload()
    rates = [(event.step, event.value) for event in events.Scalars("train/lr")]
    expected = [(1, 0.5), (2, 1.0)] + [(step, 0.99 ** (step - 3)) for step in range(3, 11)]
    assert [step for step, _ in rates] == [step for step, _ in expected]
    assert [rate for _, rate in rates] == pytest.approx([rate for _, rate in expected], rel=1e-6)


def test_the_guides_logger_writes_each_logged_step_once_across_a_kill_and_a_resume(site: Site, tmp_path: Path) -> None:
    """A run killed after its checkpoint at step 60 left lines beyond it, the last one cut short; the resume
    keeps the lines up to the checkpoint and logs the rest again."""
    (code,) = [block for block in code_blocks("python") if "class CsvLog" in block]
    site.add("my-csv-log", {"my_csv_log": code}, entry_points={"csv_log": "my_csv_log"}, version="0.1")
    config = yaml.safe_load(SPIRAL.read_text(encoding="utf-8"))
    config["train"].update(epochs=None, max_steps=60)
    config["log"].update(every=10, tensorboard=False)
    path = tmp_path / "logged.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")

    def train(*args: str) -> None:
        done = subprocess.run([NNFRAME, "train", str(path), "-q", "--runs-dir", "runs", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, env=site.env())
        assert done.returncode == 0, done.stderr

    train()
    (run_dir,) = (tmp_path / "runs" / "spiral").iterdir()
    table = run_dir / "metrics.csv"
    first = table.read_text().splitlines()
    assert first[0] == "step,loss,accuracy" and [int(line.split(",")[0]) for line in first[1:]] == [10, 20, 30,
                                                                                                      40, 50, 60]
    with table.open("a") as killed:
        killed.write("70,0.5,0.5\n8")
    train("--resume", str(run_dir), "train.max_steps=90")
    lines = table.read_text().splitlines()
    assert lines[:7] == first
    assert [int(line.split(",")[0]) for line in lines[7:]] == [70, 80, 90]
    assert all(float(line.split(",")[1]) > 0 and 0 <= float(line.split(",")[2]) <= 1 for line in lines[1:])

"""The command line, through typer's CliRunner and through the installed ``nnframe`` console script.

A config mistake is exit code 2 with one message naming the file (or override)
and the field path, and no traceback; success prints the run directory and metrics.
"""

from __future__ import annotations

import errno
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from fixtures.console import NNFRAME
from fixtures.distributions import Site
from fixtures.sources import node_plugin
from nnframe.cli import app, reports_errors
from nnframe.errors import NNFrameError, NonFiniteError, Terminated, UserError
from nnframe.tracking import RunDirectory

ROOT = Path(__file__).resolve().parents[1]
SPIRAL = ROOT / "experiments" / "spiral.yaml"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def console(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([NNFRAME, *map(str, args)], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def spiral_with(tmp_path: Path, change: Any) -> Path:
    config = yaml.safe_load(SPIRAL.read_text(encoding="utf-8"))
    change(config)
    path = tmp_path / "mistake.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def check_run_dir(output: str, runs: Path) -> Path:
    lines = output.splitlines()
    run_lines = [line for line in lines if line.startswith("run: ")]
    assert len(run_lines) == 1, output
    run_dir = Path(run_lines[0].removeprefix("run: "))
    assert run_dir.parent == runs / "spiral"
    assert (run_dir / "config.yaml").is_file() and (run_dir / "summary.json").is_file()
    metrics = dict(line.split(": ") for line in lines if line.startswith("train/"))
    assert set(metrics) == {"train/loss", "train/accuracy"}
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert float(metrics["train/loss"]) == pytest.approx(summary["metrics"]["train/loss"], abs=1e-4)
    return run_dir


def test_train_through_clirunner(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = invoke("train", SPIRAL, "train.epochs=3", "--runs-dir", runs, "--quiet")
    assert result.exit_code == 0, result.output
    run_dir = check_run_dir(result.output, runs)
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    assert config["train"]["epochs"] == 3


def test_train_through_the_console_script(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    done = console("train", SPIRAL, "train.epochs=3", "--runs-dir", runs)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = check_run_dir(done.stdout, runs)
    # findable while it trains, and what it trains on
    assert done.stdout.startswith(f"training spiral in {run_dir}: 30 steps on 300 training examples of 2 features, "
                                  "3 classes\n")
    # the run's config.yaml is the resolved config: validating it prints it back unchanged
    again = invoke("validate", run_dir / "config.yaml")
    assert again.exit_code == 0, again.output
    assert again.stderr == ""  # no note about what the file only writes out
    assert yaml.safe_load(again.stdout) == yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))


def test_validate_prints_the_resolved_config_which_round_trips(tmp_path: Path) -> None:
    first = invoke("validate", SPIRAL, "optimizer.lr=0.1", "model.0.out=20")
    assert first.exit_code == 0, first.output
    resolved = yaml.safe_load(first.output)
    assert resolved["optimizer"] == {"type": "sgd", "lr": 0.1, "weight_decay": 0.0,
                                     "schedule": {"type": "constant", "warmup_steps": 0}}
    assert resolved["model"][0]["out"] == 20
    assert resolved["checkpoint"]["keep"] == 3
    printed = tmp_path / "resolved.yaml"
    printed.write_text(first.output, encoding="utf-8")
    second = invoke("validate", printed)
    assert second.exit_code == 0, second.output
    assert second.output == first.output


def test_validate_gives_the_notes_training_would_give_on_stderr(tmp_path: Path) -> None:
    cosine = "optimizer.schedule={type: cosine, min_lr: 2.0, total_steps: 10}"
    done = console("validate", SPIRAL, cosine)
    assert done.returncode == 0, done.stderr
    trained = console("train", SPIRAL, cosine, "train.max_steps=1", "--runs-dir", tmp_path, "-q")
    notes = [line for line in done.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 2 and "min_lr (2) is above optimizer.lr (1)" in notes[0]
    assert "the run takes 3000 steps" in notes[1]
    assert [line for line in trained.stderr.splitlines() if line.startswith("note: ")][0] == notes[0]
    assert yaml.safe_load(done.stdout)["optimizer"]["schedule"]["min_lr"] == 2.0


def test_schema_is_json_schema_of_the_builtins() -> None:
    result = invoke("schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert schema["title"] == "nnframe experiment"
    assert set(schema["required"]) >= {"name", "data", "model", "loss", "optimizer", "train"}
    assert {"AffineNode", "SpiralData", "SgdOptimizer", "MseLoss"} <= set(schema["$defs"])


def test_schema_of_the_console_script_includes_an_installed_plugins_component(site: Site) -> None:
    site.add("nnframe-scaler", {"nnframe_scaler": node_plugin("scale_by", 3.0)})
    done = console("schema", env=site.env())
    assert done.returncode == 0, done.stderr
    scale = json.loads(done.stdout)["$defs"]["ScaleByNode"]
    assert scale["properties"]["type"]["const"] == "scale_by"
    assert scale["properties"]["factor"]["default"] == 3.0


def set_in(path: list[Any], value: Any) -> Any:
    def change(config: dict[str, Any]) -> None:
        target = config
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def delete(path: list[Any]) -> Any:
    def change(config: dict[str, Any]) -> None:
        target = config
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


def rename(old: str, new: str) -> Any:
    return lambda config: config.__setitem__(new, config.pop(old))


MISTAKES = {
    "misspelled top-level key": (rename("optimizer", "optimiser"), [], "field optimiser",
                                 "did you mean 'optimizer'?"),
    "misspelled node type": (set_in(["model", 0, "type"], "afine"), [], "field model[0].type",
                             "did you mean 'affine'?"),
    "negative out": (set_in(["model", 2, "out"], -3), [], "field model[2].out", "found -3"),
    "string lr": (set_in(["optimizer", "lr"], "fast"), [], "field optimizer.lr", "found 'fast'"),
    "unknown optimizer key": (set_in(["optimizer"], {"type": "momentum", "lr": 0.1, "momentun": 0.9}), [],
                              "field optimizer.momentun", "did you mean 'momentum'?"),
    "no epochs or max_steps": (delete(["train", "epochs"]), [], "field train", "train.epochs or train.max_steps"),
    "wrong dtype": (set_in(["train", "dtype"], "float16"), [], "field train.dtype", "found 'float16'"),
    "missing name": (delete(["name"]), [], "field name", "missing required field"),
    "extra key in a node": (set_in(["model", 1, "out"], 3), [], "field model[1].out", "unknown key 'out'"),
    "unknown override path": (None, ["optimizer.lrr=0.1"], "override 'optimizer.lrr=0.1': field optimizer.lrr",
                              "did you mean 'lr'?"),
    "override index out of range": (None, ["model.5.out=3"], "override 'model.5.out=3'",
                                     "model is a list of 3 entries"),
    "bad value type in an override": (None, ["train.epochs=many"], "override 'train.epochs=many': field train.epochs",
                                      "found 'many'"),
    "override of an unknown section": (None, ["foo.bar=1"], "override 'foo.bar=1': field foo", "unknown key 'foo'"),
    "node without type": (set_in(["model", 1], {"name": "s"}), [], "field model[1].type",
                          "missing required key 'type'"),
    "batch_size zero": (set_in(["train", "batch_size"], 0), [], "field train.batch_size", "greater than 0"),
    "graph with a cycle": (set_in(["model"], {"inputs": ["x"], "output": "y", "nodes": [
        {"name": "h", "type": "affine", "out": 4, "inputs": ["y"]},
        {"name": "y", "type": "affine", "out": 3, "inputs": ["h"]}]}), [], "field model.nodes[0].inputs",
        "node 'h' is in a cycle: h -> y -> h"),
    "graph with an unknown input": (set_in(["model"], {"output": "y", "nodes": [
        {"name": "h", "type": "affine", "out": 4, "inputs": ["xx"]},
        {"name": "y", "type": "affine", "out": 3, "inputs": ["h"]}]}), [], "field model.nodes[0].inputs",
        "did you mean 'x'?"),
    "graph with an unreachable node": (set_in(["model"], {"output": "y", "nodes": [
        {"name": "h", "type": "affine", "out": 4, "inputs": ["x"]},
        {"name": "dead", "type": "tanh", "inputs": ["h"]},
        {"name": "y", "type": "affine", "out": 3, "inputs": ["h"]}]}), [], "field model.nodes[1]",
        "node 'dead' does not lead to the output 'y'"),
    "graph with two inputs": (set_in(["model"], {"inputs": ["x", "z"], "output": "y", "nodes": [
        {"name": "h", "type": "affine", "out": 2, "inputs": ["x"]},
        {"name": "s", "type": "add", "inputs": ["h", "z"]},
        {"name": "y", "type": "affine", "out": 3, "inputs": ["s"]}]}), [], "field model.inputs",
        "a dataset gives one array x per example"),
}


@pytest.mark.parametrize("name", MISTAKES)
def test_config_mistakes_exit_2_with_the_field_path(tmp_path: Path, name: str) -> None:
    change, overrides, where, words = MISTAKES[name]
    config = spiral_with(tmp_path, change) if change else SPIRAL
    runs = tmp_path / "runs"
    result = invoke("train", config, *overrides, "--runs-dir", runs, "--quiet")
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert message.startswith("error: ")
    assert where in message and words in message
    if change:
        assert f"{config}: {where}" in message
    assert "Traceback" not in result.output
    assert not runs.exists()


@pytest.mark.parametrize("name", ["misspelled node type", "unknown override path"])
def test_config_mistakes_through_the_console_script(tmp_path: Path, name: str) -> None:
    change, overrides, where, words = MISTAKES[name]
    config = spiral_with(tmp_path, change) if change else SPIRAL
    done = console("validate", config, *overrides)
    assert done.returncode == 2
    assert done.stdout == ""
    assert where in done.stderr and words in done.stderr
    assert "Traceback" not in done.stderr


def test_no_arguments_shows_help() -> None:
    result = invoke()
    assert result.exit_code == 2  # click's convention: a missing command is a usage error
    for command in ("train", "validate", "schema", "plugins", "gradcheck", "runs", "board"):
        assert command in result.output


def test_runs_lists_a_trained_run_with_its_status_and_metrics(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert invoke("train", SPIRAL, "train.epochs=2", "--runs-dir", runs, "--quiet").exit_code == 0
    (run_dir,) = (runs / "spiral").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    result = invoke("runs", runs)
    assert result.exit_code == 0, result.output
    assert "spiral" in result.output and "completed" in result.output
    assert f"{summary['metrics']['train/loss']:.4f}" in result.output


def test_runs_as_json_gives_each_run_for_scripts(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert invoke("train", SPIRAL, "train.epochs=2", "--runs-dir", runs, "--quiet").exit_code == 0
    (run_dir,) = (runs / "spiral").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    done = console("runs", runs, "--json")
    assert done.returncode == 0, done.stderr
    (listed,) = json.loads(done.stdout)
    assert listed["run"] == f"spiral/{run_dir.name}" and Path(listed["path"]) == run_dir
    assert (listed["status"], listed["steps"], listed["skipped_steps"], listed["stopped_early"]) == (
        "completed", 20, 0, False)
    assert listed["metrics"]["train/loss"] == summary["metrics"]["train/loss"]
    assert listed["metrics"]["val/loss"] is None


def test_tables_written_to_a_pipe_are_not_cut_to_80_columns(tmp_path: Path) -> None:
    from datetime import datetime

    run = RunDirectory.create(tmp_path / "runs", "a_rather_long_experiment_name_for_a_sweep", now=datetime(2026, 1, 2))
    run.write_config({"name": "x"})
    run.write_overrides(["optimizer.lr=0.5"])
    run.write_summary({"status": "completed", "steps": 123456, "skipped_steps": 386,
                       "metrics": {"train/loss": 0.123456, "train/accuracy": 0.9876}})
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    done = console("runs", tmp_path / "runs", env=env)
    assert done.returncode == 0, done.stderr
    assert "a_rather_long_experiment_name_for_a_sweep/20260102-000000" in done.stdout
    assert "completed (386 skipped)" in done.stdout and "…" not in done.stdout and "optimizer.lr=0.5" in done.stdout
    listing = console("plugins", env=env)
    assert "…" not in listing.stdout and len(listing.stdout.splitlines()) < 80
    for width in ("60", "30"):  # a narrow terminal wraps the lines; no run name or number is cut to 0.…
        narrow = console("runs", tmp_path / "runs", env={**env, "COLUMNS": width})
        assert "…" not in narrow.stdout, narrow.stdout
        assert "a_rather_long_experiment_name_for_a_sweep/20260102-000000" in narrow.stdout
        assert " 123456 " in narrow.stdout and "98.76%" in narrow.stdout
        assert "optimizer.lr" not in narrow.stdout  # the overrides column goes first (they are in --json)


def test_a_tilde_the_shell_left_alone_is_the_home_directory(tmp_path: Path) -> None:
    """``--runs-dir=~/runs`` reaches nnframe unexpanded (the shell expands ``~`` only at a word's start)."""
    home = tmp_path / "home"
    (home / "configs").mkdir(parents=True)
    (home / "configs" / "spiral.yaml").write_text(SPIRAL.read_text(encoding="utf-8"), encoding="utf-8")
    env = {**os.environ, "HOME": str(home)}
    done = subprocess.run([NNFRAME, "train", "~/configs/spiral.yaml", "train.epochs=1", "--runs-dir=~/runs", "-q"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (home / "runs" / "spiral").iterdir()
    assert not (tmp_path / "~").exists()
    listed = subprocess.run([NNFRAME, "runs", "~/runs"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env=env)
    assert listed.returncode == 0 and run_dir.name in listed.stdout, listed.stderr
    assert all(line == line.rstrip() for line in listed.stdout.splitlines())  # a pipe gets no padding
    resumed = subprocess.run([NNFRAME, "train", "~/configs/spiral.yaml", "train.epochs=2", "-q",
                              f"--resume=~/runs/spiral/{run_dir.name}"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["steps"] == 20


def test_runs_on_a_missing_directory_exits_2_with_one_message(tmp_path: Path) -> None:
    done = console("runs", tmp_path / "nowhere")
    assert done.returncode == 2
    assert done.stderr.count("error: ") == 1 and "nowhere" in done.stderr
    assert "Traceback" not in done.stderr


def test_summary_records_versions_wall_time_and_start(tmp_path: Path) -> None:
    import nnframe

    runs = tmp_path / "runs"
    done = console("train", SPIRAL, "train.epochs=2", "--runs-dir", "runs", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run_dir,) = (runs / "spiral").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    recorded = Path(summary["run_dir"])  # absolute, though the command named it relative to where it ran
    assert recorded.is_absolute() and recorded.resolve() == run_dir.resolve()
    assert summary["versions"]["nnframe"] == nnframe.__version__
    assert summary["versions"]["plugins"]["nnframe"] == nnframe.__version__
    assert summary["wall_time_s"] > 0 and summary["status"] == "completed" and summary["steps"] == 20
    assert summary["started"][:10] == run_dir.name[:4] + "-" + run_dir.name[4:6] + "-" + run_dir.name[6:8]


def test_a_bug_in_a_plugin_is_an_internal_error_exit_1_with_its_traceback(site: Site, tmp_path: Path) -> None:
    buggy = node_plugin("scale").replace("return x * self.factor", "raise ZeroDivisionError('a bug in the plugin')")
    site.add("nnframe-buggy", {"nnframe_buggy": buggy}, entry_points={"buggy": "nnframe_buggy"})
    path = spiral_with(tmp_path, lambda config: config["model"].insert(1, {"type": "scale"}))
    done = console("train", path, "--runs-dir", tmp_path / "runs", env=site.env())
    assert done.returncode == 1
    assert "ZeroDivisionError: a bug in the plugin" in done.stderr and "Traceback" in done.stderr
    assert "(raised in the forward of node 'scale1', type 'scale' from plugin 'buggy' (nnframe-buggy" in done.stderr


def test_an_unknown_type_names_the_plugin_that_failed_to_load(site: Site, tmp_path: Path) -> None:
    broken = "import not_installed_here\n" + node_plugin("scale")
    site.add("nnframe-scale", {"nnframe_scale": broken}, entry_points={"scale": "nnframe_scale"}, version="0.2.0")
    path = spiral_with(tmp_path, lambda config: config["model"].insert(1, {"type": "scale"}))
    for command in (["train", path, "--runs-dir", tmp_path / "runs"], ["validate", path], ["gradcheck", path]):
        done = console(*command, env=site.env())
        assert done.returncode == 2 and "Traceback" not in done.stderr
        error = done.stderr[done.stderr.index("error: "):]
        assert "field model[1].type: unknown type 'scale'" in error
        assert "a plugin that failed to load may register it: 'scale' from nnframe-scale 0.2.0" in error
        assert "No module named 'not_installed_here'" in done.stderr
    assert not (tmp_path / "runs").exists()



def test_an_unknown_type_names_only_the_failed_plugins_that_register_its_kind(site: Site, tmp_path: Path) -> None:
    """Of two plugins left out for a wrong hook argument, the one with a node hook may hold the node; the
    logger cannot."""
    wrong_argument = "\n@hookimpl\ndef nnframe_run_start(runn):\n    pass\n"
    site.add("nnframe-scale", {"nnframe_scale": node_plugin("scale") + wrong_argument},
             entry_points={"scale": "nnframe_scale"}, version="0.2.0")
    logger = "from nnframe import hookimpl\n\n@hookimpl\ndef nnframe_log_metrics(run, metric):\n    pass\n"
    site.add("nnframe-logbug", {"nnframe_logbug": logger}, entry_points={"logbug": "nnframe_logbug"}, version="1.0")
    losses = ("from nnframe import hookimpl\n\n@hookimpl\ndef nnframe_register_losses():\n    raise ValueError('x')\n"
              "\n@hookimpl\ndef nnframe_run_end(run, status, summary):\n    pass\n")  # a hook near node's in name
    site.add("nnframe-lossbug", {"nnframe_lossbug": losses}, entry_points={"lossbug": "nnframe_lossbug"})
    misspelled = node_plugin("typo").replace("def nnframe_register_nodes", "def nnframe_register_node")
    site.add("nnframe-typo", {"nnframe_typo": misspelled}, entry_points={"typo": "nnframe_typo"})
    path = spiral_with(tmp_path, lambda config: config["model"].insert(1, {"type": "scale"}))
    done = console("validate", path, env=site.env())
    error = done.stderr[done.stderr.index("error: "):]
    assert done.returncode == 2
    assert "plugins that failed to load may register it: " in error
    assert "'scale' from nnframe-scale 0.2.0" in error and "'typo' from nnframe-typo" in error  # a misspelt hook
    assert "logbug" not in error and "lossbug" not in error
    done = console("validate", path, "model.1={type: sigmoid}", "loss={type: cross}", env=site.env())
    error = done.stderr[done.stderr.index("error: "):]
    assert "unknown type 'cross'" in error and "may register it: 'lossbug' from nnframe-lossbug" in error
    assert "logbug" not in error and "'scale'" not in error


def test_an_unknown_type_that_a_plugin_offered_says_why_it_was_left_out(site: Site, tmp_path: Path) -> None:
    offered = node_plugin("scale").replace("    factor: float = 2.0", "    factor: float = 2.0\n    inputs: int = 1")
    offered = offered.replace("return [node('scale', ScaleParams, build_scale)]",
                              "return [node(name, ScaleParams, build_scale) for name in ('scale', 'shift', 'tilt')]")
    site.add("nnframe-scale", {"nnframe_scale": offered}, entry_points={"scale": "nnframe_scale"}, version="0.2.0")
    def scale_and_stretch(config: dict) -> None:
        config["model"][1:1] = [{"type": "scale"}, {"type": "stretch"}]
    path = spiral_with(tmp_path, scale_and_stretch)
    done = console("validate", path, env=site.env())
    assert done.returncode == 2 and "Traceback" not in done.stderr
    first, second = done.stderr[done.stderr.index("error: "):].splitlines()[:2]
    assert "field model[1].type: unknown type 'scale'; available: " in first
    assert ("; the node 'scale' of plugin 'scale' from nnframe-scale 0.2.0 was left out: node 'scale' declares the "
            "parameter(s) 'inputs', which nnframe reserves in a node section; rename them") in first
    assert second.endswith("a plugin that failed to load may register it: 'scale' from nnframe-scale 0.2.0 (see "
                           "`nnframe plugins` for its error)")  # each of its three components left out, named once
    done = console("validate", path, "model.1={type: sigmoid}", "model.2={type: sigmoid}", "loss={type: scale}",
                   env=site.env())
    assert "field loss.type: unknown type 'scale'" in done.stderr
    assert "was left out" not in done.stderr  # a node of that name is no loss

EXITS = """
import os
import sys

from nnframe import hookimpl


@hookimpl
def nnframe_step_end(run, metrics):
    if metrics.step == 25:
        sys.exit(int(os.environ["EXIT_CODE"]))
"""


@pytest.mark.parametrize("code", [0, 4])
def test_a_plugins_sys_exit_keeps_its_code_and_says_what_became_of_the_run(site: Site, tmp_path: Path,
                                                                           code: int) -> None:
    site.add("nnframe-exits", {"nnframe_exits": EXITS}, entry_points={"exits": "nnframe_exits"})
    done = console("train", SPIRAL, "--runs-dir", tmp_path / "runs", "-q",
                   env={**site.env(), "EXIT_CODE": str(code)})
    assert done.returncode == code
    (run_dir,) = (tmp_path / "runs" / "spiral").iterdir()
    status = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["status"]
    if code == 0:
        assert status == "interrupted"
        assert done.stderr.endswith(f"note: a plugin stopped the run with sys.exit(0) after step 25; the run is in "
                                    f"{run_dir}; continue it with: nnframe train {SPIRAL} --resume {run_dir}\n")
    else:
        assert status == "failed"
        assert done.stderr.endswith(f"note: a plugin ended the run with sys.exit(4) after step 25; the run is in "
                                    f"{run_dir} (it has no checkpoint yet)\n")


def test_a_bug_in_a_plugins_build_names_the_plugin_under_its_traceback(site: Site, tmp_path: Path) -> None:
    buggy = node_plugin("scale").replace("return Scale(params.factor)", "return Scale(params.factr)")
    site.add("nnframe-buggy", {"nnframe_buggy": buggy}, entry_points={"buggy": "nnframe_buggy"}, version="0.2")
    path = spiral_with(tmp_path, lambda config: config["model"].insert(1, {"type": "scale"}))
    done = console("validate", path, env=site.env())
    assert done.returncode == 1
    assert "AttributeError: 'ScaleParams' object has no attribute 'factr'" in done.stderr
    assert ("(raised by the build of node 'scale1', type 'scale' from plugin 'buggy' (nnframe-buggy 0.2))"
            in done.stderr)


BUGGY_LOSS_AND_LOGGER = """
from nnframe import Params, hookimpl
from nnframe.components import loss
from nnframe.losses import SoftmaxWithLoss


class NoParams(Params):
    \"\"\"Nothing to set.\"\"\"


class Buggy(SoftmaxWithLoss):
    def backward(self, dout=1.0):
        raise IndexError("a bug in the loss")


@hookimpl
def nnframe_register_losses():
    return [loss("buggy_ce", NoParams, lambda params: Buggy())]


class Logger:
    @hookimpl
    def nnframe_log_metrics(self, run, metrics):
        raise RuntimeError("a bug in the logger")


@hookimpl
def nnframe_configure_run(run):
    if run.config.get("loss", {}).get("type") != "buggy_ce":
        run.register(Logger())
"""


@pytest.mark.parametrize("loss, raised", [("buggy_ce", "IndexError: a bug in the loss"),
                                          ("softmax_cross_entropy", "RuntimeError: a bug in the logger")])
def test_a_bug_in_a_plugins_loss_or_hook_names_the_distribution_under_its_traceback(site: Site, tmp_path: Path,
                                                                                    loss: str, raised: str) -> None:
    site.add("nnframe-buggy", {"nnframe_buggy_parts": BUGGY_LOSS_AND_LOGGER},
             entry_points={"buggy": "nnframe_buggy_parts"}, version="0.3")
    done = console("train", SPIRAL, f"loss.type={loss}", "--runs-dir", tmp_path / "runs", env=site.env())
    assert done.returncode == 1 and "Traceback" in done.stderr and raised in done.stderr
    assert done.stderr.rstrip().splitlines()[-1].startswith("(raised in nnframe_buggy_parts, line ")
    assert done.stderr.rstrip().endswith("of the plugin distribution nnframe-buggy 0.3)")


def test_resuming_without_a_plugin_the_run_used_names_the_missing_distribution(site: Site, tmp_path: Path) -> None:
    site.add("nnframe-scale", {"nnframe_scale": node_plugin("scale")}, entry_points={"scale": "nnframe_scale"},
             version="0.4")
    path = spiral_with(tmp_path, lambda config: config["model"].insert(1, {"type": "scale"}))
    done = console("train", path, "train.epochs=2", "--runs-dir", tmp_path / "runs", "-q", env=site.env())
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "runs" / "spiral").iterdir()
    without = {key: value for key, value in site.env().items() if key != "PYTHONPATH"}
    resumed = console("train", path, "train.epochs=3", "--resume", run_dir, "-q", env=without)
    assert resumed.returncode == 2 and "Traceback" not in resumed.stderr
    assert "field model[1].type: unknown type 'scale'" in resumed.stderr
    assert resumed.stderr.rstrip().endswith("The run was trained with nnframe-scale 0.4, not installed now: install "
                                            "it to resume the run")
    typo = console("train", SPIRAL, "train.epochz=3", "--resume", run_dir, "-q", env=without)
    assert typo.returncode == 2 and "epochz" in typo.stderr
    assert "The run was trained with" not in typo.stderr  # an error about no missing type gets no such note
    (site.root / "nnframe_scale.py").write_text("import a_module_that_is_not_there\n", encoding="utf-8")
    broken = console("train", path, "train.epochs=3", "--resume", run_dir, "-q", env=site.env())
    assert broken.stderr.rstrip().endswith("The run was trained with nnframe-scale 0.4, which fails to load now "
                                           "(see `nnframe plugins`)")


def exit_code_reporting(error: BaseException) -> int:
    """The exit code of a command that raises ``error``, through the CLI's ``reports_errors``."""
    @reports_errors
    def command() -> None:
        raise error

    with pytest.raises(typer.Exit) as caught:
        command()
    return caught.value.exit_code


@pytest.mark.parametrize("error, code", [
    (UserError("bad input"), 2),
    (NonFiniteError("loss is nan"), 3),
    (NNFrameError("something internal"), 1),
    (KeyboardInterrupt(), 130),
])
def test_reports_errors_maps_errors_to_exit_codes(error: BaseException, code: int,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code_reporting(error) == code
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize(("error", "code", "message"), [
    (KeyboardInterrupt(), 130, "interrupted"),
    (Terminated(), 143, "interrupted by SIGTERM"),
    (OSError(errno.ENOSPC, "No space left on device", "summary.json"), 1, "No space left on device: summary.json"),
    (PermissionError(errno.EACCES, "Permission denied", "runs/a/.step.tmp"), 1, "Permission denied: runs/a/.step.tmp"),
])
def test_an_interruption_or_a_full_disk_names_what_the_run_noted_on_it(error: BaseException, code: int, message: str,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    error.add_note("(a plugin's nnframe_run_end failed too: RuntimeError('x'))")
    assert exit_code_reporting(error) == code
    assert capsys.readouterr().err == f"error: {message} (a plugin's nnframe_run_end failed too: RuntimeError('x'))\n"


def test_a_permission_error_without_a_file_keeps_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing to say where to look: it may be a bug."""
    with pytest.raises(PermissionError):
        exit_code_reporting(PermissionError(errno.EACCES, "Permission denied"))


def test_runs_dir_with_resume_must_be_the_runs_own(tmp_path: Path) -> None:
    (tmp_path / "runs" / "spiral" / "x").mkdir(parents=True)
    (tmp_path / "runs" / "spiral" / "x" / "config.yaml").write_text("name: spiral\n", encoding="utf-8")
    (tmp_path / "other").mkdir()
    done = console("train", SPIRAL, "--resume", tmp_path / "runs" / "spiral" / "x", "--runs-dir", tmp_path / "other")
    assert done.returncode == 2
    assert done.stderr == (f"error: --runs-dir {tmp_path / 'other'} is not where run "
                           f"{tmp_path / 'runs' / 'spiral' / 'x'} lies; a resume stays in the run's directory, so "
                           "leave --runs-dir out\n")
    same = console("train", SPIRAL, "--resume", tmp_path / "runs" / "spiral" / "x", "--runs-dir", tmp_path / "runs")
    assert same.returncode == 2 and "cannot resume run" in same.stderr  # past the check, to the run itself
    (tmp_path / "disk" / "run1").mkdir(parents=True)
    (tmp_path / "disk" / "run1" / "config.yaml").write_text("name: spiral\n", encoding="utf-8")
    (tmp_path / "runs" / "spiral" / "y").symlink_to(tmp_path / "disk" / "run1")
    linked = console("train", SPIRAL, "--resume", tmp_path / "runs" / "spiral" / "y", "--runs-dir", tmp_path / "runs")
    assert linked.returncode == 2 and "cannot resume run" in linked.stderr  # a linked run lies where its link is


@pytest.mark.parametrize("given", ["mistyped", "a file", "no run"])
def test_a_resume_of_no_run_says_so_whatever_runs_dir_says(tmp_path: Path, given: str) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "a file").write_text("", encoding="utf-8")
    (tmp_path / "no run").mkdir()
    done = console("train", SPIRAL, "--resume", tmp_path / given, "--runs-dir", tmp_path / "runs")
    problem = {"mistyped": "does not exist", "a file": "is not a directory", "no run": "has no config.yaml"}[given]
    assert done.returncode == 2 and problem in done.stderr and "--runs-dir" not in done.stderr, done.stderr



def test_a_reader_that_quit_changes_no_outcome(tmp_path: Path) -> None:
    """``nnframe train ... 2>&1 | head -1``: the run completes and the command exits as it would have."""
    def run(*args: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        reader, writer = os.pipe()
        os.close(reader)  # every write to the pipe now fails with EPIPE
        try:
            return subprocess.run([NNFRAME, *map(str, args)], stdout=writer, stderr=writer, timeout=120,
                                  env={**os.environ, **(env or {})})
        finally:
            os.close(writer)

    runs = tmp_path / "runs"
    trained = run("train", SPIRAL, "train.epochs=2", "--runs-dir", runs, "optimizer.schedule.warmup_steps=100")
    assert trained.returncode == 0  # its progress lines, its note and its metrics all went to a broken pipe
    (run_dir,) = (runs / "spiral").iterdir()
    assert json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["status"] == "completed"
    assert run("runs", runs).returncode == 0
    assert run("validate", SPIRAL).returncode == 0
    assert run("validate", SPIRAL, env={"PYTHONIOENCODING": "ascii"}).returncode == 0  # click writes bytes then
    assert run("train", SPIRAL, "train.epochs=two").returncode == 2
    assert run("gradcheck", SPIRAL, "--tolerance", "1e-30").returncode == 1


def test_a_stderr_open_for_reading_only_changes_no_outcome(tmp_path: Path) -> None:
    """As ``2>&-`` leaves it under a launcher script that keeps its own file there (a pyenv shim)."""
    with SPIRAL.open("rb") as read_only:
        done = subprocess.run([NNFRAME, "train", SPIRAL, "train.epochs=two"], stdout=subprocess.PIPE,
                              stderr=read_only, text=True, timeout=120)
    assert done.returncode == 2


def test_a_closed_stdout_is_no_output_not_a_failure(tmp_path: Path) -> None:
    def close_stdout() -> None:
        os.close(1)

    def run(*args: Any) -> subprocess.CompletedProcess:
        return subprocess.run([NNFRAME, *map(str, args)], stderr=subprocess.PIPE, text=True, timeout=120,
                              preexec_fn=close_stdout)

    trained = run("train", SPIRAL, "train.epochs=2", "--runs-dir", tmp_path / "runs")
    assert trained.returncode == 0, trained.stderr
    (run_dir,) = (tmp_path / "runs" / "spiral").iterdir()
    assert json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["status"] == "completed"
    assert run("runs", tmp_path / "runs").returncode == 0
    assert run("plugins").returncode == 0


def test_evaluations_asked_for_without_a_validation_set_get_a_note() -> None:
    done = console("validate", SPIRAL, "train.eval_every=50")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ("note: train.eval_every is 50, but the run has no validation set, so nothing is "
                           "evaluated; set data.val_fraction, a csv dataset's data.val_path, or give x_val and y_val\n")
    assert console("validate", SPIRAL, "train.eval_every=50", "data.val_fraction=0.2").stderr == ""


def test_a_character_a_terminals_encoding_lacks_is_written_as_a_question_mark_and_a_pipe_keeps_it() -> None:
    """rich's ellipsis on an ASCII terminal (``PYTHONIOENCODING=ascii``) failed a finished run with exit 1; a
    pipe, which a script may read a path from, gets the exact text or an error."""
    script = "from nnframe.output_streams import guard_output_streams; guard_output_streams(); print('a…b')"
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    piped = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60, env=env)
    assert piped.returncode == 1 and b"UnicodeEncodeError" in piped.stderr
    leader, follower = pty.openpty()
    try:
        on_a_terminal = subprocess.run([sys.executable, "-c", script], stdout=follower, stderr=subprocess.PIPE,
                                       timeout=60, env=env)
        assert on_a_terminal.returncode == 0, on_a_terminal.stderr
        assert os.read(leader, 100).replace(b"\r", b"") == b"a?b\n"
    finally:
        os.close(leader)
        os.close(follower)


def test_a_tilde_naming_no_user_is_a_usage_error() -> None:
    done = console("runs", "~nosuchuser-nnframe/runs", env={**os.environ, "COLUMNS": "300"})
    assert done.returncode == 2
    assert "no home directory is known for '~nosuchuser-nnframe'" in done.stderr and "Traceback" not in done.stderr


def test_version_and_the_short_help_option() -> None:
    import nnframe

    assert console("--version").stdout == f"nnframe {nnframe.__version__}\n"
    short = console("train", "-h")
    assert short.returncode == 0 and "--runs-dir" in short.stdout
    for command in (["train", "-h"], ["-h"], ["runs", "--help"]):  # a flag takes no value, the help option too
        assert "<bool>" not in console(*command).stdout, command


@pytest.mark.parametrize("args", [["train", str(SPIRAL), "--runs-dir", ""], ["train", str(SPIRAL), "--resume", " "],
                                  ["validate", ""], ["runs", ""]])
def test_an_empty_path_is_refused_rather_than_read_as_the_working_directory(tmp_path: Path, args: list[str]) -> None:
    done = console(*args, cwd=tmp_path)
    assert done.returncode == 2 and "is empty; give a path" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["runs", "board"])
def test_runs_and_board_default_to_the_runs_directory_here(tmp_path: Path, command: str) -> None:
    done = console(command, cwd=tmp_path)  # no directory named: typer passes the default through the path parser
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "runs directory 'runs' does not exist" in done.stderr
    (tmp_path / "runs").mkdir()
    if command == "runs":
        listed = console(command, cwd=tmp_path)
        assert listed.returncode == 0 and "no runs found" in listed.stdout, listed.stderr

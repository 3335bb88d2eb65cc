"""Resuming a run: bit-identical to an uninterrupted run, in process, through the CLI, and after SIGKILL."""

from __future__ import annotations

import hashlib
import json
import random
import re
import resource
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pydantic import TypeAdapter

from fixtures.experiments import assert_same_arrays, write_experiment
from fixtures.console import NNFRAME
from nnframe.checkpoint import latest_checkpoint, step_name
from nnframe.errors import ConfigError
from nnframe.hookspecs import hookimpl
from nnframe.launch import train as launch_train
from nnframe.plugins import get_plugin_manager
from nnframe.run_listing import list_runs

CONFIG = {
    "name": "tiny",
    "seed": 11,
    "data": {"type": "spiral", "points_per_class": 30, "classes": 3, "val_fraction": 0.2},
    "model": [{"type": "affine", "out": 8}, {"type": "tanh"}, {"type": "dropout", "ratio": 0.1},
              {"type": "affine", "out": 3}],
    "loss": {"type": "softmax_cross_entropy"},
    "optimizer": {"type": "adam", "lr": 0.02},
    "train": {"max_steps": 60, "batch_size": 10},
    "log": {"every": 1, "tensorboard": False},
    "checkpoint": {"every": 7, "keep": 2},
}


def write_config(tmp_path: Path, **sections: Any) -> Path:
    return write_experiment(tmp_path, CONFIG, **sections)


class LossRecorder:
    """A per-test logger plugin: every step's exact loss and learning rate."""

    def __init__(self) -> None:
        self.series: list[tuple[int, float, float]] = []
        self.resumed: list[bool] = []

    @hookimpl
    def nnframe_run_start(self, run) -> None:
        self.resumed.append(run.resumed)

    @hookimpl
    def nnframe_step_end(self, run, metrics) -> None:
        self.series.append((metrics.step, metrics.loss, metrics.lr))


def run_in_process(config: Path, runs_dir: Path, overrides: list[str], recorder: LossRecorder,
                   resume: Path | None = None) -> Path:
    plugins = get_plugin_manager()
    plugins.pm.register(recorder)
    return launch_train(config, overrides, plugins, runs_dir=runs_dir, resume=resume, quiet=True).run_dir


def final_arrays(run_dir: Path) -> dict[str, np.ndarray]:
    return latest_checkpoint(run_dir / "checkpoints").arrays


def nnframe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([NNFRAME, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------------- in process


@pytest.mark.parametrize("first_steps", [23, 24])  # 23: mid-epoch; 24: the end of epoch 3 (8 batches each)
def test_resume_in_process_is_bit_identical(tmp_path: Path, first_steps: int) -> None:
    config = write_config(tmp_path)
    straight = LossRecorder()
    straight_dir = run_in_process(config, tmp_path / "a", [], straight)
    parts = LossRecorder()
    run_dir = run_in_process(config, tmp_path / "b", [f"train.max_steps={first_steps}"], parts)
    assert run_in_process(config, tmp_path / "b", [], parts, resume=run_dir) == run_dir
    assert parts.resumed == [False, True]
    assert [s for s, _, _ in parts.series] == list(range(1, 61))
    assert parts.series == straight.series
    assert_same_arrays(final_arrays(run_dir), final_arrays(straight_dir))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["steps"]) == ("completed", 60)


def test_a_run_written_before_a_field_was_added_resumes_with_it_at_its_default(tmp_path: Path) -> None:
    """A run's config.yaml from before adam took eps: the field's default is what the run had, no change, and a
    note says which default it took."""
    config = write_config(tmp_path)
    straight = LossRecorder()
    run_in_process(config, tmp_path / "a", [], straight)
    parts = LossRecorder()
    run_dir = run_in_process(config, tmp_path / "b", ["train.max_steps=30"], parts)
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert written["optimizer"].pop("eps") == 1e-7
    (run_dir / "config.yaml").write_text(yaml.safe_dump(written, sort_keys=False))
    plugins = get_plugin_manager()
    plugins.pm.register(parts)
    resumed = launch_train(config, [], plugins, resume=run_dir, quiet=True)
    assert parts.series == straight.series
    assert ("the run's config has no optimizer.eps, added since it was written: it resumes with the default, 1e-07"
            in resumed.notes)
    edited = write_config(tmp_path, optimizer={"type": "adam", "lr": 0.02, "eps": 0.001})
    with pytest.raises(ConfigError, match=r"optimizer.eps: 1e-07 in the run, 0.001 now"):
        run_in_process(edited, tmp_path / "b", [], parts, resume=run_dir)  # a value it did not have is a change


def test_resume_of_a_finished_run_changes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    run_dir = run_in_process(config, tmp_path / "runs", [], LossRecorder())
    before = final_arrays(run_dir)
    recorder = LossRecorder()
    run_in_process(config, tmp_path / "runs", [], recorder, resume=run_dir)
    assert recorder.series == []
    assert_same_arrays(final_arrays(run_dir), before)


# --------------------------------------------------------------------------- the CLI


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def test_resume_through_the_cli_continues_the_same_run_and_log(tmp_path: Path) -> None:
    config = write_config(tmp_path, log={"tensorboard": True})
    straight = nnframe("train", str(config), "--runs-dir", "a", "-q", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr
    first = nnframe("train", str(config), "--runs-dir", "b", "-q", "train.max_steps=30", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "b" / "tiny").iterdir()
    resumed = nnframe("train", str(config), "--resume", str(run_dir), "-q", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert list((tmp_path / "b" / "tiny").iterdir()) == [run_dir]
    (straight_dir,) = (tmp_path / "a" / "tiny").iterdir()
    assert_same_arrays(final_arrays(run_dir), final_arrays(straight_dir))
    losses = scalars(run_dir, "train/loss")
    assert [step for step, _ in losses] == list(range(1, 61))
    assert losses == scalars(straight_dir, "train/loss")
    overrides = yaml.safe_load((run_dir / "overrides.yaml").read_text())
    assert [entry["resumed"] for entry in overrides] == [False, True]


def _wait_for_checkpoint_after(directory: Path, step: int, process: subprocess.Popen) -> bool:
    """Wait until a checkpoint newer than ``step`` is complete; False if the process ended first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if any(int(p.stem[5:]) > step for p in directory.glob("step-*.json")):
            return True
        time.sleep(0.005)
    return False


def _wait_for_run_dir(runs_dir: Path, process: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        found = list(runs_dir.glob("tiny/*/checkpoints"))
        if found:
            return found[0].parent
        time.sleep(0.005)
    raise AssertionError(f"no run directory appeared; the process said: {process.communicate()[1]}")


def test_sigkill_at_random_moments_then_resume_reaches_the_same_parameters(tmp_path: Path) -> None:
    # the killed runs are set to train far longer than they get to, so a kill never comes too late
    config = write_config(tmp_path, train={"max_steps": 100_000}, log={"every": 100},
                          checkpoint={"every": 10, "keep": 3})
    delays = random.Random(1234).sample(range(100), 3)  # ms after a new checkpoint appears
    run_dir = None
    resumed_from = 0
    for delay in delays:
        args = ["train", str(config), "-q"] + (["--resume", str(run_dir)] if run_dir else ["--runs-dir", "runs"])
        process = subprocess.Popen([NNFRAME, *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        if run_dir is None:
            run_dir = _wait_for_run_dir(tmp_path / "runs", process)
        started = _wait_for_checkpoint_after(run_dir / "checkpoints", resumed_from, process)
        assert started, process.communicate()[1]
        time.sleep(delay / 1000)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        process.stderr.close()
        resumed_from = latest_checkpoint(run_dir / "checkpoints").step
        assert 0 < resumed_from < 100_000
    total = f"train.max_steps={resumed_from + 200}"
    final = nnframe("train", str(config), total, "--resume", str(run_dir), "-q", cwd=tmp_path)
    assert final.returncode == 0, final.stderr
    straight_dir = run_in_process(config, tmp_path / "a", [total], LossRecorder())
    assert_same_arrays(final_arrays(run_dir), final_arrays(straight_dir))
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == resumed_from + 200
    newest = sorted(p.name for p in (run_dir / "checkpoints").glob("step-*.json"))[-1]
    assert newest == f"{step_name(resumed_from + 200)}.json"


# ------------------------------------------------------------------ refusals through the CLI


@pytest.mark.parametrize(("damage", "message"), [
    ("model.0.out=9", r"model\[0\].out: 8 in the run, 9 now\. A run keeps its name, seed, model, train.dtype, "
                      r"train.batch_size, train.drop_last and optimizer.type"),
    ("truncate", r"no valid checkpoint in .*checkpoints.*sha256"),
    ("pickle", r"no valid checkpoint in .*pickled Python objects"),
])
def test_cli_refuses_a_bad_resume_with_exit_2(tmp_path: Path, damage: str, message: str) -> None:
    config = write_config(tmp_path, train={"max_steps": 5}, checkpoint={"every": 0, "best_metric": None})
    run_dir = run_in_process(config, tmp_path / "runs", [], LossRecorder())
    npz = run_dir / "checkpoints" / f"{step_name(5)}.npz"
    overrides = []
    if damage == "truncate":
        npz.write_bytes(npz.read_bytes()[:-40])
    elif damage == "pickle":
        np.savez(npz, x=np.array([{"a": 1}], dtype=object))
        _rehash(run_dir / "checkpoints" / f"{step_name(5)}.json", npz)
    else:
        overrides = [damage]
    result = nnframe("train", str(config), *overrides, "--resume", str(run_dir), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr


def _rehash(json_path: Path, npz: Path) -> None:
    meta = json.loads(json_path.read_text())
    meta["sha256"] = hashlib.sha256(npz.read_bytes()).hexdigest()
    json_path.write_text(json.dumps(meta))


def diverging_config(tmp_path: Path, checkpoint_every: int) -> Path:
    """A run whose loss is NaN at step 3 (lr 1e38, no dropout, seed 3)."""
    config = write_config(tmp_path, optimizer={"type": "sgd", "lr": 1e38}, checkpoint={"every": checkpoint_every})
    text = yaml.safe_load(config.read_text())
    text["seed"], text["model"] = 3, [m for m in text["model"] if m["type"] != "dropout"]
    config.write_text(yaml.safe_dump(text))
    return config


def test_cli_divergence_exits_3_naming_step_and_parameter(tmp_path: Path) -> None:
    config = diverging_config(tmp_path, checkpoint_every=1)
    result = nnframe("train", str(config), "--runs-dir", "runs", "-q", cwd=tmp_path)
    assert result.returncode == 3
    assert "error: training diverged at step 3" in result.stderr
    assert "affine1/W" in result.stderr
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    assert f"the run is in runs/tiny/{run_dir.name} (its last good checkpoint is kept)" in result.stderr
    assert latest_checkpoint(run_dir / "checkpoints").step == 2
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "diverged"


def test_a_run_that_diverges_before_any_checkpoint_says_none_is_kept(tmp_path: Path) -> None:
    config = diverging_config(tmp_path, checkpoint_every=0)
    result = nnframe("train", str(config), "--runs-dir", "runs", "-q", cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.rstrip().endswith("(it diverged before its first checkpoint, so none is kept)")


def test_cli_resume_of_a_missing_directory_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = nnframe("train", str(config), "--resume", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert result.returncode == 2
    assert "nowhere" in result.stderr


# ------------------------------------------------------------- the config a run resumes with


def test_resume_refuses_a_config_that_lost_the_runs_overrides_and_names_them(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"max_steps": 5}, checkpoint={"every": 0, "best_metric": None})
    first = nnframe("train", str(config), "--runs-dir", "runs", "-q", "optimizer.lr=0.005", "model.0.out=6",
                    cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    before = {name: (run_dir / name).read_bytes() for name in ("config.yaml", "overrides.yaml", "summary.json")}
    result = nnframe("train", str(config), "--resume", str(run_dir), "train.max_steps=9", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {config}: cannot resume run {run_dir} with this config: ")
    assert "model[0].out: 6 in the run, 8 now; optimizer.lr: 0.005 in the run, 0.02 now" in result.stderr
    assert "To continue the run as it was, add: model.0.out=6 optimizer.lr=0.005" in result.stderr
    assert {name: (run_dir / name).read_bytes() for name in before} == before


def test_resume_takes_a_deliberate_override_and_records_the_change(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"max_steps": 5}, checkpoint={"every": 0, "best_metric": None})
    run_dir = run_in_process(config, tmp_path / "runs", [], LossRecorder())
    recorder = LossRecorder()
    run_in_process(config, tmp_path / "runs", ["optimizer.lr=0.001", "train.max_steps=8"], recorder, resume=run_dir)
    assert [(step, lr) for step, _, lr in recorder.series] == [(6, 0.001), (7, 0.001), (8, 0.001)]
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (saved["optimizer"]["lr"], saved["train"]["max_steps"]) == (0.001, 8)
    entries = yaml.safe_load((run_dir / "overrides.yaml").read_text())
    assert entries[-1]["changed"] == {"optimizer.lr": [0.02, 0.001], "train.max_steps": [5, 8]}
    assert "changed" not in entries[0]


def test_resume_accepts_a_longer_run_from_the_file_and_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"max_steps": 5}, checkpoint={"every": 0, "best_metric": None})
    run_dir = run_in_process(config, tmp_path / "runs", [], LossRecorder())
    longer = write_config(tmp_path, train={"max_steps": 7}, checkpoint={"every": 0, "best_metric": None})
    result = nnframe("train", str(longer), "--resume", str(run_dir), "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "note: resumed with train.max_steps: 5 in the run, 7 now" in result.stderr
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 7


def test_resume_never_renames_a_run(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"max_steps": 3}, checkpoint={"every": 0, "best_metric": None})
    run_dir = run_in_process(config, tmp_path / "runs", [], LossRecorder())
    result = nnframe("train", str(config), "--resume", str(run_dir), "name=other", cwd=tmp_path)
    assert result.returncode == 2
    assert "name: 'tiny' in the run, 'other' now. A run keeps its name" in result.stderr


def test_resume_of_a_finished_run_says_there_is_nothing_to_train(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"max_steps": 3}, checkpoint={"every": 0, "best_metric": None})
    run_dir = run_in_process(config, tmp_path / "runs", [], LossRecorder())
    before = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file() and path.name != ".lock"}
    result = nnframe("train", str(config), "--resume", str(run_dir), "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ("note: the run had already trained all 3 steps; nothing changed. Raise train.epochs or "
            "train.max_steps") in result.stderr
    assert f"run: {run_dir}" in result.stdout and "train/loss: " in result.stdout
    after = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file() and path.name != ".lock"}
    assert after == before


def test_the_resume_command_printed_on_an_interrupt_carries_the_runs_overrides(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"max_steps": 100_000}, checkpoint={"every": 50, "best_metric": None})
    process = subprocess.Popen([NNFRAME, "train", str(config), "--runs-dir", "runs", "-q", "optimizer.lr=0.005",
                                "train.max_steps=90000"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    run_dir = _wait_for_run_dir(tmp_path / "runs", process)
    assert _wait_for_checkpoint_after(run_dir / "checkpoints", 0, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    command = stderr.split("continue it with: ")[1].strip()
    assert command.endswith(" optimizer.lr=0.005 train.max_steps=90000")
    stopped = json.loads((run_dir / "summary.json").read_text())["steps"]
    args = shlex.split(command)[1:] + [f"train.max_steps={stopped + 3}", "-q"]
    resumed = subprocess.run([NNFRAME, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == stopped + 3


def test_a_refused_write_mid_run_is_one_message_and_leaves_the_saved_state(tmp_path: Path) -> None:
    """A file-size limit makes the checkpoint write fail as a full disk would (Python ignores SIGXFSZ)."""
    wide = [{"type": "affine", "out": 200}, {"type": "tanh"}, {"type": "affine", "out": 200}, {"type": "tanh"},
            {"type": "affine", "out": 3}]
    config = write_config(tmp_path, model=wide, train={"max_steps": 10}, checkpoint={"every": 4, "best_metric": None})

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # a checkpoint holds about 0.5 MB

    result = subprocess.run([NNFRAME, "train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, preexec_fn=limit_file_size)
    assert result.returncode == 1, result.stderr
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    assert result.stderr == f"error: File too large: {run_dir / 'checkpoints' / step_name(4)}.npz\n"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["steps"]) == ("failed", 4)
    assert not [path.name for path in (run_dir / "checkpoints").iterdir()]  # no partial file left behind


def test_a_refused_write_to_the_event_file_names_the_event_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"max_steps": 200}, checkpoint={"every": 0, "best_metric": None},
                          log={"every": 1, "tensorboard": True, "histograms_every": 1})

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # the events outgrow it, nothing else does

    result = subprocess.run([NNFRAME, "train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, preexec_fn=limit_file_size)
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    (events,) = run_dir.glob("events.out.tfevents.*")
    assert (result.returncode, result.stderr) == (1, f"error: File too large: {events}\n")


@pytest.mark.parametrize("damage", [b"x: [\n", b"just text\n"])
def test_a_damaged_overrides_yaml_refuses_the_resume_before_anything_is_replaced(tmp_path: Path,
                                                                                damage: bytes) -> None:
    config = write_config(tmp_path, train={"max_steps": 3}, checkpoint={"every": 0, "best_metric": None})
    run_dir = run_in_process(config, tmp_path / "runs", [], LossRecorder())
    (run_dir / "overrides.yaml").write_bytes(damage)
    saved = (run_dir / "config.yaml").read_bytes()
    result = nnframe("train", str(config), "--resume", str(run_dir), "train.max_steps=5", "-q", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"error: {run_dir / 'overrides.yaml'} is damaged" in result.stderr and "Traceback" not in result.stderr
    assert (run_dir / "config.yaml").read_bytes() == saved
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 3


def test_a_config_yaml_that_is_not_text_refuses_the_resume_in_one_message(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"max_steps": 3}, checkpoint={"every": 0, "best_metric": None})
    run_dir = run_in_process(config, tmp_path / "runs", [], LossRecorder())
    (run_dir / ".lock").write_bytes(b"\xff\xfe garbage")  # a damaged lock is read as it is
    result = nnframe("train", str(config), "--resume", str(run_dir), "train.max_steps=4", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir / "config.yaml").write_bytes(b"name: \xe9\xff\x00\n")
    result = nnframe("train", str(config), "--resume", str(run_dir), "train.max_steps=5", "-q", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"error: cannot read {str(run_dir / 'config.yaml')!r}: it is not UTF-8 text, as nnframe "
                             "writes it; the file was damaged or replaced: restore it\n")


@pytest.mark.parametrize("damage", [b'{"wall_time_s": null, "started": 5}', b'{"wall_time_s": "abc"}'])
def test_resume_survives_a_damaged_summary(tmp_path: Path, damage: bytes) -> None:
    config = write_config(tmp_path, train={"max_steps": 3}, checkpoint={"every": 0, "best_metric": None})
    run_dir = run_in_process(config, tmp_path / "runs", [], LossRecorder())
    (run_dir / "summary.json").write_bytes(damage)
    run_in_process(config, tmp_path / "runs", ["train.max_steps=5"], LossRecorder(), resume=run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["steps"]) == ("completed", 5)
    assert isinstance(summary["started"], str) and summary["wall_time_s"] >= 0


def test_a_run_being_trained_cannot_be_resumed_by_a_second_process(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"max_steps": 100_000}, checkpoint={"every": 50, "best_metric": None})
    first = subprocess.Popen([NNFRAME, "train", str(config), "--runs-dir", "runs", "-q"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_dir = _wait_for_run_dir(tmp_path / "runs", first)
        assert _wait_for_checkpoint_after(run_dir / "checkpoints", 0, first)
        second = nnframe("train", str(config), "--resume", str(run_dir), "-q", cwd=tmp_path)
        assert second.returncode == 2
        assert second.stderr == (f"error: run '{run_dir}' is being trained by process {first.pid}; wait for it "
                                 "to end, or stop it, before resuming this run\n")
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130
    assert (run_dir / ".lock").read_text() == ""  # names no process once nobody holds it
    stopped = json.loads((run_dir / "summary.json").read_text())["steps"]
    resumed = nnframe("train", str(config), "--resume", str(run_dir), "-q", f"train.max_steps={stopped + 3}",
                      cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr  # the lock went with the process that held it
    assert (run_dir / ".lock").read_text() == ""


def interrupted(args: list[str], cwd: Path, runs_dir: Path) -> tuple[Path, str]:
    """``nnframe train`` with ``args``, stopped by SIGINT after its first checkpoint; the run and its message."""
    process = subprocess.Popen([NNFRAME, "train", *args, "-q"], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    run_dir = _wait_for_run_dir(runs_dir, process)
    done = json.loads((run_dir / "summary.json").read_text())["steps"] if (run_dir / "summary.json").exists() else 0
    assert _wait_for_checkpoint_after(run_dir / "checkpoints", done, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    return run_dir, stderr


def test_the_printed_command_follows_the_file_where_the_file_changed_a_length(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"max_steps": 100_000}, checkpoint={"every": 50, "best_metric": None})
    run_dir, _ = interrupted([str(config), "--runs-dir", "runs", "train.max_steps=90000"], tmp_path,
                             tmp_path / "runs")
    write_config(tmp_path, train={"max_steps": 80_000}, checkpoint={"every": 50, "best_metric": None})
    _, stderr = interrupted([str(config), "--resume", str(run_dir)], tmp_path, tmp_path / "runs")
    command = stderr.split("continue it with: ")[1].strip()
    assert command == shlex.join(["nnframe", "train", str(config), "--resume", str(run_dir)])  # 80000 is the file's
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["max_steps"] == 80_000


def test_the_printed_command_sets_a_field_of_a_schedule_the_file_leaves_out(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"max_steps": 100_000}, checkpoint={"every": 50, "best_metric": None})
    schedule = "optimizer.schedule={type: constant, warmup_steps: 5}"
    run_dir, stderr = interrupted([str(config), "--runs-dir", "runs", schedule], tmp_path, tmp_path / "runs")
    command = shlex.split(stderr.split("continue it with: ")[1].strip())
    assert command[-1] == "optimizer.schedule.warmup_steps=5"  # set in the default constant schedule
    stopped = json.loads((run_dir / "summary.json").read_text())["steps"]
    resumed = subprocess.run([NNFRAME, *command[1:], f"train.max_steps={stopped + 2}", "-q"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr


def test_the_printed_command_repeats_overrides_as_typed_where_they_are_shorter(tmp_path: Path) -> None:
    """A changed type resolves to its whole section; the override that changed it says the same in fewer words."""
    config = write_config(tmp_path, train={"max_steps": 100_000}, checkpoint={"every": 50, "best_metric": None})
    typed = ["optimizer.type=adam", "model.1.type=relu"]
    run_dir, stderr = interrupted([str(config), "--runs-dir", "runs", *typed], tmp_path, tmp_path / "runs")
    command = shlex.split(stderr.split("continue it with: ")[1].strip())
    assert command[-2:] == typed


def test_a_refusals_advice_for_a_schedule_the_file_dropped_resumes_the_run(tmp_path: Path) -> None:
    config = write_config(tmp_path, optimizer={"type": "adam", "lr": 0.02, "schedule": {"type": "constant",
                                                                                        "warmup_steps": 5}},
                          train={"max_steps": 5}, checkpoint={"every": 0, "best_metric": None})
    run_dir = run_in_process(config, tmp_path / "runs", [], LossRecorder())
    text = yaml.safe_load(config.read_text())
    del text["optimizer"]["schedule"]
    config.write_text(yaml.safe_dump(text))
    with pytest.raises(ConfigError) as caught:
        run_in_process(config, tmp_path / "runs", ["train.max_steps=8"], LossRecorder(), resume=run_dir)
    advice = str(caught.value).split("add: ")[1].split("; to change")[0]
    assert advice == "optimizer.schedule.warmup_steps=5"
    run_in_process(config, tmp_path / "runs", ["train.max_steps=8", *shlex.split(advice)], LossRecorder(),
                   resume=run_dir)
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 8


def test_a_longer_resume_of_a_cosine_run_says_where_the_learning_rate_moves(tmp_path: Path) -> None:
    config = write_config(tmp_path, optimizer={"type": "sgd", "lr": 0.1, "schedule": {"type": "cosine"}})
    run_dir = run_in_process(config, tmp_path / "runs", [], LossRecorder())
    seen: list[str] = []
    plugins = get_plugin_manager()
    result = launch_train(config, ["train.max_steps=90"], plugins, resume=run_dir, quiet=True, on_note=seen.append)
    assert seen == result.notes
    assert seen[0] == "resumed with train.max_steps: 60 in the run, 90 now"
    assert seen[1] == ("the cosine schedule spans the run's steps, now 90 (60 before), so the learning rate at "
                       "step 61 is 0.025 where the run's schedule was at 0; optimizer.schedule.total_steps sets "
                       "the span")
    faster = launch_train(config, ["train.max_steps=120", "optimizer.lr=0.2"], get_plugin_manager(), resume=run_dir,
                          quiet=True)
    assert "step 91 is 0.02929 where the run's schedule was at 0;" in faster.notes[-1]


def test_the_rate_a_run_had_comes_from_its_own_schedule_and_learning_rate() -> None:
    from types import SimpleNamespace

    from nnframe.launch import _rescheduled
    from nnframe.schedules import CosineSchedule

    trainer = SimpleNamespace(step=30, total_steps=90, base_lr=0.5, schedule=CosineSchedule(),
                              batches=SimpleNamespace(batches_per_epoch=10))
    saved = {"train": {"max_steps": 60}, "optimizer": {"lr": 0.1, "schedule": {"type": "cosine", "min_lr": 0.0}}}
    (text,) = _rescheduled(trainer, saved, get_plugin_manager())
    assert text.endswith("is 0.375 where the run's schedule was at 0.05; optimizer.schedule.total_steps sets the span")
    own_span = {"type": "cosine", "total_steps": 200}
    trainer.schedule = CosineSchedule(**own_span)
    assert _rescheduled(trainer, {**saved, "optimizer": {"lr": 0.5, "schedule": own_span}}, get_plugin_manager()) == []


@pytest.mark.parametrize("schedule", [{"type": "step", "step_size": 7, "gamma": 0.7}, {"type": "constant"},
                                      {"type": "cosine", "total_steps": 200}])
def test_a_schedule_the_length_does_not_move_gets_no_span_note_whatever_else_changed(schedule: dict) -> None:
    from types import SimpleNamespace

    from nnframe.config import ConfigModels
    from nnframe.launch import _rescheduled

    schedules = TypeAdapter(ConfigModels(get_plugin_manager()).schedule)
    trainer = SimpleNamespace(step=10, total_steps=20, base_lr=0.02, schedule=schedules.validate_python(schedule),
                              batches=SimpleNamespace(batches_per_epoch=10))
    saved = {"train": {"max_steps": 10}, "optimizer": {"lr": 0.05, "schedule": schedule}}
    # the rate moved from 0.035 to 0.014 through optimizer.lr alone
    assert _rescheduled(trainer, saved, get_plugin_manager()) == []


def test_a_resumes_notes_come_before_its_training_and_stay_when_it_fails(tmp_path: Path) -> None:
    config = write_config(tmp_path, checkpoint={"every": 5, "keep": 2, "best_metric": None})
    first = nnframe("train", str(config), "--runs-dir", "runs", "train.max_steps=10", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    diverging = nnframe("train", str(config), "--resume", str(run_dir), "optimizer.lr=1e300", cwd=tmp_path)
    assert diverging.returncode == 3
    assert diverging.stderr.startswith("note: resumed with optimizer.lr: 0.02 in the run, 1e+300 now\n")
    assert "error: " in diverging.stderr
    longer = nnframe("train", str(config), "--resume", str(run_dir), "optimizer.lr=0.02", "train.max_steps=20",
                     cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr
    assert longer.stderr.startswith("note: resumed with optimizer.lr: 1e+300 in the run, 0.02 now\n"
                                    "note: resumed with train.max_steps: 60 in the run, 20 now\n")
    assert f"resuming tiny in {run_dir} from step 10: 20 steps" in longer.stdout


class EvalRecorder:
    def __init__(self) -> None:
        self.evaluations: list[tuple[int, float]] = []

    @hookimpl
    def nnframe_evaluation_end(self, run, metrics) -> None:
        self.evaluations.append((metrics.step, metrics.loss))


def test_a_resume_keeps_the_last_evaluation_and_does_not_repeat_it(tmp_path: Path) -> None:
    """Stopped right after the checkpoint of an evaluated step: the resume neither evaluates that step again
    (a second TensorBoard point) nor loses its metrics from the summary."""
    config = write_config(tmp_path, train={"max_steps": 10, "batch_size": 10, "eval_every": 5},
                          checkpoint={"every": 5, "keep": 5})
    first = EvalRecorder()
    plugins = get_plugin_manager()
    plugins.pm.register(first)
    run_dir = launch_train(config, [], plugins, runs_dir=tmp_path / "runs", quiet=True).run_dir
    assert [step for step, _ in first.evaluations] == [5, 10]
    for path in (run_dir / "checkpoints").glob(f"{step_name(10)}.*"):
        path.unlink()  # as if stopped between the checkpoint at step 5 and the next one
    summary_path = run_dir / "summary.json"
    summary_path.write_text(json.dumps({**json.loads(summary_path.read_text()), "status": "interrupted"}))
    again = EvalRecorder()
    plugins = get_plugin_manager()
    plugins.pm.register(again)
    result = launch_train(config, ["train.max_steps=5"], plugins, resume=run_dir, quiet=True)
    assert again.evaluations == []
    assert result.summary["metrics"]["val/loss"] == first.evaluations[0][1]


def test_a_runs_config_yaml_trains_and_resumes_from_the_run_directory(tmp_path: Path) -> None:
    """Data paths relative to the experiment file are absolute in config.yaml, which lies elsewhere."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "blobs.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    experiment = tmp_path / "experiments" / "blobs.yaml"
    experiment.parent.mkdir()
    experiment.write_text(yaml.safe_dump({
        "name": "blobs", "data": {"type": "npz", "path": "../data/blobs.npz"},
        "model": [{"type": "affine", "out": 2}], "loss": {"type": "softmax_cross_entropy"},
        "optimizer": {"type": "sgd", "lr": 0.1}, "train": {"max_steps": 6, "batch_size": 10},
        "checkpoint": {"every": 3}}), encoding="utf-8")
    first = nnframe("train", str(experiment), "--runs-dir", "runs", "-q", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "runs" / "blobs").iterdir()
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["data"]["path"] == str(tmp_path / "experiments" / "../data/blobs.npz")  # as the system reads it
    resumed = nnframe("train", "config.yaml", "--resume", ".", "train.max_steps=9", "-q", cwd=run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 9
    again = nnframe("train", str(experiment), "--resume", str(run_dir), "train.max_steps=12", "-q", cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # the experiment file resolves to the same absolute path


def test_a_run_killed_before_its_first_summary_keeps_its_start_time(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    run_dir = run_in_process(config, tmp_path / "runs", ["train.max_steps=14"], LossRecorder())
    entries = yaml.safe_load((run_dir / "overrides.yaml").read_text())
    first_start = entries[0]["started"] = "2026-01-02T03:04:05+00:00"  # long before the resume
    (run_dir / "overrides.yaml").write_text(yaml.safe_dump(entries))
    (run_dir / "summary.json").unlink()  # as after a SIGKILL: checkpoints, but no summary yet
    (run_dir / "checkpoints" / f"{step_name(14)}.json").unlink()
    run_in_process(config, tmp_path / "runs", ["train.max_steps=20"], LossRecorder(), resume=run_dir)
    assert json.loads((run_dir / "summary.json").read_text())["started"] == first_start


def test_a_resume_compares_data_paths_as_files(tmp_path: Path) -> None:
    """A run from before config.yaml held paths absolute resumes; a moved project's data path is a change."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    np.savez(project / "data" / "blobs.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    experiment = project / "blobs.yaml"
    experiment.write_text(yaml.safe_dump({
        "name": "blobs", "data": {"type": "npz", "path": "data/blobs.npz"},
        "model": [{"type": "affine", "out": 2}], "loss": {"type": "softmax_cross_entropy"},
        "optimizer": {"type": "sgd", "lr": 0.1}, "train": {"max_steps": 6, "batch_size": 10},
        "checkpoint": {"every": 3}}), encoding="utf-8")
    run_dir = launch_train(experiment, [], get_plugin_manager(), runs_dir=tmp_path / "runs", quiet=True).run_dir
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    saved["data"]["path"] = "data/blobs.npz"  # as runs wrote it before
    (run_dir / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    older = launch_train(experiment, ["train.max_steps=9"], get_plugin_manager(), resume=run_dir, quiet=True)
    assert older.notes == ["resumed with train.max_steps: 6 in the run, 9 now"]

    moved = tmp_path / "moved"
    project.rename(moved)
    with pytest.raises(ConfigError, match=rf"data.path: '{project}/data/blobs.npz' in the run, "
                                          rf"'{moved}/data/blobs.npz' now"):
        launch_train(moved / "blobs.yaml", ["train.max_steps=12"], get_plugin_manager(), resume=run_dir, quiet=True)
    new_path = str(moved / "data" / "blobs.npz")
    result = launch_train(moved / "blobs.yaml", ["train.max_steps=12", f"data.path={new_path}"],
                          get_plugin_manager(), resume=run_dir, quiet=True)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["path"] == new_path
    assert result.summary["steps"] == 12


def test_the_last_checkpoint_records_the_evaluation_after_the_last_step(tmp_path: Path) -> None:
    """The checkpoint of the last step is written before the run's closing evaluation; it is written again."""
    config = write_config(tmp_path, train={"max_steps": 10, "batch_size": 10}, checkpoint={"every": 5, "keep": 5})
    recorder = EvalRecorder()
    plugins = get_plugin_manager()
    plugins.pm.register(recorder)
    run_dir = launch_train(config, [], plugins, runs_dir=tmp_path / "runs", quiet=True).run_dir
    assert [step for step, _ in recorder.evaluations] == [8, 10]  # the end of epoch 1, then the last step
    meta = json.loads((run_dir / "checkpoints" / f"{step_name(10)}.json").read_text())
    assert meta["last_eval"]["step"] == 10 and meta["last_eval"]["loss"] == recorder.evaluations[-1][1]


def test_a_resume_on_other_data_of_the_same_size_says_so(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((60, 2)), rng.integers(0, 3, 60)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    config = write_experiment(tmp_path, {**CONFIG, "data": {"type": "npz", "path": "data.npz"}},
                              train={"max_steps": 12, "batch_size": 10})
    first = nnframe("train", str(config), "--runs-dir", "runs", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    np.savez(tmp_path / "data.npz", x=x[::-1], y=y[::-1])  # the same examples, in another order
    changed = nnframe("train", str(config), "--resume", str(run_dir), "train.max_steps=18", cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert "note: the training data differs from the run's, though the data section does not" in changed.stderr
    same = nnframe("train", str(config), "--resume", str(run_dir), "train.max_steps=24", cwd=tmp_path)
    assert same.returncode == 0, same.stderr
    assert "training data differs" not in same.stderr  # the checkpoint of step 18 holds the data as it is now
    np.savez(tmp_path / "other.npz", x=x, y=y)
    moved = nnframe("train", str(config), "--resume", str(run_dir), "train.max_steps=30", "data.path=other.npz",
                    cwd=tmp_path)
    assert moved.returncode == 0, moved.stderr
    assert "note: resumed with data.path" in moved.stderr  # that note says it already
    assert "training data differs" not in moved.stderr


def _write_features_csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    header = [f"f{i}" for i in range(x.shape[1])] + ["label"]
    rows = [",".join([*(f"{v:.6f}" for v in features), str(label)]) for features, label in zip(x, y)]
    path.write_text("\n".join([",".join(header), *rows]) + "\n", encoding="utf-8")


def test_a_resume_on_data_with_fewer_features_says_the_data_changed_first(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    _write_features_csv(tmp_path / "data.csv", x, y)
    config = write_experiment(tmp_path, {**CONFIG, "data": {"type": "csv", "path": "data.csv"}},
                              model=[{"type": "affine", "out": 16}, {"type": "relu"}, {"type": "affine", "out": 3}],
                              train={"max_steps": 8, "batch_size": 10})
    first = nnframe("train", str(config), "--runs-dir", "runs", "-q", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    _write_features_csv(tmp_path / "data.csv", x[:, 1:], y)
    result = nnframe("train", str(config), "--resume", str(run_dir), "train.max_steps=12", "-q", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        "error: the data now has 3 features per example, where the run's model was built for 4: the data "
        f"({tmp_path / 'data.csv'}) changed since the run started; ")
    assert "parameter 'affine1/W' has shape (4, 16) in the checkpoint but (3, 16) in this model" in result.stderr
    assert result.stderr.count("error: ") == 1 and "Traceback" not in result.stderr


def test_a_resume_goes_on_past_an_unreadable_summary_and_writes_it_anew(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"max_steps": 10})
    first = nnframe("train", str(config), "--runs-dir", "runs", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    (run_dir / "summary.json").write_text("garbage", encoding="utf-8")
    resumed = nnframe("train", str(config), "--resume", str(run_dir), "train.max_steps=20", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "summary.json' is not valid JSON" in resumed.stderr and "it is written anew" in resumed.stderr
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert (summary["status"], summary["steps"]) == ("completed", 20)


def test_a_full_disk_that_refuses_the_checkpoint_and_the_summary_reports_the_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from nnframe import checkpoint, tracking

    def full(path: Path, *args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    config = write_config(tmp_path, train={"max_steps": 10}, checkpoint={"every": 4, "best_metric": None})
    monkeypatch.setattr(checkpoint, "atomic_write_bytes", full)
    monkeypatch.setattr(tracking.RunDirectory, "write_summary", lambda run_dir, summary: full(run_dir.summary_path))
    with pytest.raises(OSError) as caught:
        run_in_process(config, tmp_path / "runs", [], LossRecorder())
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    assert caught.value.filename == str(run_dir / "checkpoints" / f"{step_name(4)}.npz")
    assert caught.value.__notes__ == ["(summary.json was not written either: No space left on device)"]


class FailsToStart:
    @hookimpl
    def nnframe_run_start(self, run) -> None:
        raise RuntimeError("a plugin's bug")


def test_a_resume_that_fails_before_its_first_step_leaves_the_summary_as_it_was(tmp_path: Path) -> None:
    config = write_config(tmp_path, train={"max_steps": 20})
    run_dir = run_in_process(config, tmp_path / "runs", [], LossRecorder())
    before = (run_dir / "summary.json").read_bytes()
    plugins = get_plugin_manager()
    plugins.pm.register(FailsToStart())
    with pytest.raises(RuntimeError, match="a plugin's bug"):
        launch_train(config, ["train.max_steps=40"], plugins, resume=run_dir, quiet=True)
    assert (run_dir / "summary.json").read_bytes() == before
    assert [record.status for record in list_runs(tmp_path / "runs")] == ["completed"]


KILLS = {
    "while it reads the run": "from nnframe.checkpoint import Checkpointer as Owner\nname = 'restore'\n"
                              "def kill(*args, **kwargs):\n    os.kill(os.getpid(), signal.SIGKILL)\n",
    "as it starts to train": "from nnframe.train import Trainer as Owner\nname = 'fit'\n"
                             "def kill(*args, **kwargs):\n    os.kill(os.getpid(), signal.SIGKILL)\n",
    "past a checkpoint beyond the summary": "from nnframe.train import Trainer as Owner\nname = 'train_step'\n"
                                            "step = Owner.train_step\n"
                                            "def kill(self):\n    metrics = step(self)\n"
                                            "    if self.step == 75:\n        os.kill(os.getpid(), signal.SIGKILL)\n"
                                            "    return metrics\n",
}


def resume_killed(config: Path, run_dir: Path, kill: str) -> None:
    """A resume to 90 steps, in a process of its own, SIGKILLed where ``KILLS[kill]`` says."""
    import sys

    script = (f"import os, signal\n{KILLS[kill]}setattr(Owner, name, kill)\n"
              f"from nnframe.launch import train\n"
              f"from nnframe.plugins import get_plugin_manager\n"
              f"train({str(config)!r}, ['train.max_steps=90'], get_plugin_manager(), resume={str(run_dir)!r}, "
              f"quiet=True)\n")
    killed = subprocess.run([sys.executable, "-c", script], cwd=run_dir, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr


@pytest.mark.parametrize("kill, listed, after_a_resume_with_nothing_to_do", [
    ("while it reads the run", "completed", "completed"),
    ("as it starts to train", "killed", "completed"),
    ("past a checkpoint beyond the summary", "killed", "killed"),
])
def test_a_resume_killed_before_it_changes_the_run_leaves_it_listed_as_its_summary_says(
        tmp_path: Path, kill: str, listed: str, after_a_resume_with_nothing_to_do: str) -> None:
    """A SIGKILL while a resume reads the run (its checkpoint, here) changes nothing, and one while it trains
    leaves it ``killed``; a resume with nothing to do then settles it, unless the killed one had saved steps
    past the summary. Before, a completed run killed in a no-op resume was listed ``killed`` for good: the next
    no-op resume put the dead process's lock back as it was. The lock is dated after the summary here, as a
    slower disk would date it, so that the listing cannot lean on the two falling in one tick."""
    import os

    config = write_config(tmp_path)
    run_dir = run_in_process(config, tmp_path / "runs", [], LossRecorder())
    summary_at = (run_dir / "summary.json").stat().st_mtime
    os.utime(run_dir / ".lock", (summary_at + 5, summary_at + 5))
    resume_killed(config, run_dir, kill)
    assert [record.status for record in list_runs(tmp_path / "runs")] == [listed]
    again = nnframe("train", str(config), "--resume", str(run_dir), "-q", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stderr
    assert [record.status for record in list_runs(tmp_path / "runs")] == [after_a_resume_with_nothing_to_do]


@pytest.mark.parametrize("summary", [True, False])
def test_a_resume_killed_while_it_reads_a_killed_run_leaves_it_killed(tmp_path: Path, summary: bool) -> None:
    """Its lock, taken over the dead writer's, says it was reading: the kill before must not be lost with it (a
    run killed before its first summary read ``running?`` after)."""
    config = write_config(tmp_path)
    run_dir = run_in_process(config, tmp_path / "runs", [], LossRecorder())
    if not summary:
        (run_dir / "summary.json").unlink()
    resume_killed(config, run_dir, "past a checkpoint beyond the summary")
    resume_killed(config, run_dir, "while it reads the run")
    assert [(record.status, record.steps) for record in list_runs(tmp_path / "runs")] == [("killed", 70)]


def test_a_resume_removes_the_temporary_files_a_killed_writer_left_in_the_run(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    run_dir = run_in_process(config, tmp_path / "runs", ["train.max_steps=14"], LossRecorder())
    left = [run_dir / ".summary.json.4242.0a1b2c3d.tmp", run_dir / ".overrides.yaml.4242.deadbeef.tmp"]
    for path in left:
        path.write_text("half", encoding="utf-8")
    (run_dir / ".notes.tmp").write_text("the user's", encoding="utf-8")
    run_in_process(config, tmp_path / "runs", ["train.max_steps=20"], LossRecorder(), resume=run_dir)
    assert not any(path.exists() for path in left)
    assert (run_dir / ".notes.tmp").exists()


NOT_A_RUN = r"is not a run directory: it has no config.yaml; expected one made by `nnframe train`"


@pytest.mark.parametrize("made, expected", [
    (["checkpoints/", ".lock", ".config.yaml.4242.0a1b2c3d.tmp"],
     r"has no config.yaml: its run was killed as it started, before it wrote one, and trained nothing; start the "
     r"experiment again without --resume"),
    ([], NOT_A_RUN),
    (["checkpoints/", "summary.json"], NOT_A_RUN),  # a run whose config was moved aside: nothing to delete
    (["checkpoints/step-00000010.json"], NOT_A_RUN),
])
def test_resuming_a_directory_without_its_config_says_what_it_is(tmp_path: Path, made: list[str],
                                                                  expected: str) -> None:
    """A SIGKILL between making a run's directory and writing its config leaves one with an empty checkpoints/."""
    config = write_config(tmp_path)
    run_dir = tmp_path / "runs" / "tiny" / "20261127-120000"
    run_dir.mkdir(parents=True)
    for name in made:
        if name.endswith("/"):
            (run_dir / name).mkdir()
        else:
            (run_dir / name).parent.mkdir(exist_ok=True)
            (run_dir / name).write_text("{}", encoding="utf-8")
    refused = nnframe("train", str(config), "--resume", str(run_dir), "-q", cwd=tmp_path)
    assert refused.returncode == 2
    assert re.search(expected, refused.stderr), refused.stderr
    assert "Traceback" not in refused.stderr

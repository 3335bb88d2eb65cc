from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from nnframe.errors import UserError
from nnframe.tracking import (
    RunDirectory,
    atomic_write_bytes,
    config_yaml,
    environment_versions,
)

NOW = datetime(2026, 11, 26, 10, 30, 0)


# --------------------------------------------------------------------------
# Creating and opening
# --------------------------------------------------------------------------


def test_create_makes_name_timestamp_and_checkpoints(tmp_path):
    run = RunDirectory.create(tmp_path / "runs", "spiral", now=NOW)

    assert run.path == tmp_path / "runs" / "spiral" / "20261126-103000"
    assert run.checkpoints.is_dir() and run.checkpoints.parent == run.path
    assert run.events_dir == run.path
    assert run.name == "spiral"


def test_runs_started_in_the_same_second_get_distinct_directories(tmp_path):
    paths = [RunDirectory.create(tmp_path, "spiral", now=NOW).path.name for _ in range(3)]

    assert paths == ["20261126-103000", "20261126-103000-1", "20261126-103000-2"]


def test_concurrent_runs_in_the_same_second_never_share_a_directory(tmp_path):
    made: list[Path] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        made.append(RunDirectory.create(tmp_path, "spiral", now=NOW).path)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(made)) == 8
    assert all((path / "checkpoints").is_dir() for path in made)


def test_unwritable_runs_dir_is_a_user_error_naming_it(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    runs_dir = blocker / "runs"

    with pytest.raises(UserError) as info:
        RunDirectory.create(runs_dir, "spiral")

    message = str(info.value)
    assert str(runs_dir) in message
    assert "Not a directory" in message
    assert "--runs-dir" in message


@pytest.mark.parametrize("name", ["", "a/b", "..", ".", "a\\b"])
def test_names_that_cannot_be_a_directory_are_refused(tmp_path, name):
    with pytest.raises(UserError, match="experiment name"):
        RunDirectory.create(tmp_path, name)


def test_open_needs_a_config(tmp_path):
    run = RunDirectory.create(tmp_path, "spiral", now=NOW)

    with pytest.raises(UserError, match="no config.yaml"):
        RunDirectory.open(run.path)
    with pytest.raises(UserError, match="does not exist"):
        RunDirectory.open(tmp_path / "nowhere")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(UserError, match="'.*a-file' is not a directory"):
        RunDirectory.open(tmp_path / "a-file")
    run.write_config({"name": "spiral"})
    run.checkpoints.rmdir()
    run.checkpoints.write_text("not a directory")
    with pytest.raises(UserError, match=r"checkpoints' is not a directory, so the run's checkpoints cannot be read"):
        RunDirectory.open(run.path)
    run.checkpoints.unlink()

    run.write_config({"name": "spiral"})
    assert RunDirectory.open(run.path).path == run.path


# --------------------------------------------------------------------------
# Files inside a run
# --------------------------------------------------------------------------


def test_config_is_replaced_atomically_when_a_resume_changes_it(tmp_path):
    run = RunDirectory.create(tmp_path, "spiral", now=NOW)
    run.write_config({"name": "spiral", "train": {"epochs": 300}})
    run.replace_config({"name": "spiral", "train": {"epochs": 400}})
    assert run.read_config() == {"name": "spiral", "train": {"epochs": 400}}
    assert sorted(os.listdir(run.path)) == ["checkpoints", "config.yaml"]


def test_a_damaged_config_is_one_line_naming_the_file_and_where_yaml_gave_up(tmp_path):
    run = RunDirectory.create(tmp_path, "spiral", now=NOW)
    run.write_config("name: spiral\nseed: [1\n")
    with pytest.raises(UserError) as caught:
        run.read_config()
    assert str(caught.value) == (f"cannot read {str(run.config_path)!r}: it is not YAML as nnframe writes it "
                                 "(expected ',' or ']', but got '<stream end>' at line 3, column 1); the file was "
                                 "damaged or edited: restore it")


def test_config_is_written_once_and_never_overwritten(tmp_path):
    run = RunDirectory.create(tmp_path, "spiral", now=NOW)

    assert run.write_config({"name": "spiral", "optimizer": {"type": "sgd", "lr": 1.0}}) is True
    assert run.write_config({"name": "other"}) is False
    assert run.write_config("name: text\n") is False

    text = run.config_path.read_text()
    assert text == "name: spiral\noptimizer:\n  type: sgd\n  lr: 1.0\n"  # key order kept
    assert RunDirectory.open(run.path).read_config() == {"name": "spiral", "optimizer": {"type": "sgd", "lr": 1.0}}


def test_resume_appends_its_overrides(tmp_path):
    run = RunDirectory.create(tmp_path, "spiral", now=NOW)
    run.write_overrides(["optimizer.lr=0.5"], now=NOW)
    run.write_overrides(["train.epochs=400", "log.every=5"], now=datetime(2026, 11, 26, 11, 0, 0))

    run.write_overrides([], now=datetime(2026, 11, 26, 12, 0, 0), changed={"train.epochs": (400, 500)})

    entries = yaml.safe_load(run.overrides_path.read_text())
    assert entries == [
        {"started": "2026-11-26T10:30:00", "resumed": False, "overrides": ["optimizer.lr=0.5"]},
        {"started": "2026-11-26T11:00:00", "resumed": True, "overrides": ["train.epochs=400", "log.every=5"]},
        {"started": "2026-11-26T12:00:00", "resumed": True, "overrides": [],
         "changed": {"train.epochs": [400, 500]}},
    ]


def test_summary_round_trips_and_leaves_no_temporary_files(tmp_path):
    run = RunDirectory.create(tmp_path, "spiral", now=NOW)
    assert run.read_summary() is None

    run.write_summary({"status": "running", "steps": 0})
    run.write_summary({"status": "completed", "steps": 3000, "metrics": {"train/loss": np.float32(0.5)}})

    assert run.read_summary() == {"status": "completed", "steps": 3000, "metrics": {"train/loss": 0.5}}
    assert sorted(os.listdir(run.path)) == ["checkpoints", "summary.json"]


def test_a_diverged_runs_summary_is_strict_json_with_null_for_non_finite_numbers(tmp_path):
    run = RunDirectory.create(tmp_path, "spiral", now=NOW)
    run.write_summary({"status": "diverged", "metrics": {"train/loss": float("inf"), "val/loss": np.float64("nan"),
                                                          "train/accuracy": 0.25}, "history": [float("-inf"), 1.0]})
    strict = json.loads(run.summary_path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert strict["metrics"] == {"train/loss": None, "val/loss": None, "train/accuracy": 0.25}
    assert strict["history"] == [None, 1.0]


def test_failed_atomic_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    atomic_write_bytes(target, b"old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")

    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["summary.json"]


def test_unreadable_summary_is_a_user_error(tmp_path):
    run = RunDirectory.create(tmp_path, "spiral", now=NOW)
    run.summary_path.write_text('{"status": "compl')

    with pytest.raises(UserError, match="not valid JSON"):
        run.read_summary()
    run.summary_path.write_bytes(b'{"status": "\xff"}')
    with pytest.raises(UserError, match="cannot read .*summary.json.*utf-8"):
        run.read_summary()
    run.summary_path.unlink()
    run.summary_path.mkdir()
    with pytest.raises(UserError, match="cannot read .*summary.json.*Is a directory"):
        run.read_summary()


def test_config_yaml_turns_paths_and_numpy_scalars_into_plain_values():
    text = config_yaml({"data": {"path": Path("data/x.npz"), "noise": np.float32(0.25)}, "shape": (2, 3)})

    assert yaml.safe_load(text) == {"data": {"path": "data/x.npz", "noise": 0.25}, "shape": [2, 3]}


def test_environment_versions_name_python_numpy_nnframe_and_plugins():
    import nnframe

    versions = environment_versions({"nnframe-swish": "0.2.0", "nnframe": "0.1.0"})

    assert versions["numpy"] == np.__version__
    assert versions["nnframe"] == nnframe.__version__
    assert versions["python"].count(".") == 2
    assert versions["plugins"] == {"nnframe": "0.1.0", "nnframe-swish": "0.2.0"}
    json.dumps(versions)


def test_a_config_the_disk_had_no_room_for_leaves_no_half_file(tmp_path, monkeypatch):
    """The file is made, then nothing fits in it: neither it nor its temporary stays."""
    import errno

    def no_room(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    run = RunDirectory.create(tmp_path, "full")
    monkeypatch.setattr(os, "fsync", no_room)
    with pytest.raises(OSError, match="No space left on device") as caught:
        run.write_config({"name": "full"})
    assert caught.value.filename == str(run.config_path)
    assert not run.config_path.exists()
    assert sorted(os.listdir(run.path)) == ["checkpoints"]


def test_a_config_is_written_once_and_whole(tmp_path):
    run = RunDirectory.create(tmp_path, "once")
    assert run.write_config({"name": "first"}) is True
    assert run.write_config({"name": "second"}) is False
    assert yaml.safe_load(run.config_path.read_text(encoding="utf-8")) == {"name": "first"}

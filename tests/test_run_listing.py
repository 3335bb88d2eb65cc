"""Listing runs: newest first, with status and final metrics from each ``summary.json``."""

from __future__ import annotations

import io
import json
import os
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console

from nnframe.errors import UserError
from nnframe.formatting import format_metric
from nnframe.run_listing import format_runs_table, list_runs, runs_json
from nnframe.tracking import RunDirectory

NOW = datetime(2026, 11, 26, 10, 30, 0)


def make_run(runs_dir: Path, name: str, now: datetime, summary: dict | None = None) -> RunDirectory:
    run = RunDirectory.create(runs_dir, name, now=now)
    run.write_config({"name": name})
    if summary is not None:
        run.write_summary(summary)
    return run


def render(table) -> str:
    out = io.StringIO()
    Console(file=out, width=250, color_system=None).print(table)
    return out.getvalue()


def completed(steps: int, train_loss: float, train_acc: float, val_loss: float, val_acc: float) -> dict:
    return {"status": "completed", "steps": steps,
            "metrics": {"train/loss": train_loss, "train/accuracy": train_acc,
                        "val/loss": val_loss, "val/accuracy": val_acc}}


def test_list_runs_newest_first_with_final_metrics(tmp_path):
    make_run(tmp_path, "spiral", datetime(2026, 11, 26, 9, 0, 0), completed(3000, 0.1, 0.9733, 0.12, 0.95))
    make_run(tmp_path, "spiral", datetime(2026, 11, 26, 10, 0, 0))
    make_run(tmp_path, "xor", datetime(2026, 11, 26, 10, 0, 0), {"status": "completed", "steps": 12,
                                                                 "skipped_steps": 9})
    broken = make_run(tmp_path, "moons", datetime(2026, 11, 25, 23, 59, 59))
    broken.summary_path.write_text("{")
    make_run(tmp_path, "latin", datetime(2026, 11, 25, 23, 0, 0)).summary_path.write_bytes(b'{"s": "\xff"}')
    (tmp_path / "spiral" / "not-a-run").mkdir()
    (tmp_path / "notes.txt").write_text("ignored")

    records = list_runs(tmp_path)

    assert [record.run for record in records] == [
        "xor/20261126-100000",  # same second as the next one: ties broken by run name, newest first
        "spiral/20261126-100000",
        "spiral/20261126-090000",
        "moons/20261125-235959",
        "latin/20261125-230000",
    ]
    assert [record.status_text for record in records] == ["completed (9 skipped)", "running?", "completed", "unknown",
                                                      "unknown"]
    oldest_spiral = records[2]
    assert (oldest_spiral.steps, oldest_spiral.train_loss, oldest_spiral.train_accuracy) == (3000, 0.1, 0.9733)
    assert (oldest_spiral.val_loss, oldest_spiral.val_accuracy) == (0.12, 0.95)
    assert oldest_spiral.started == datetime(2026, 11, 26, 9, 0, 0).astimezone()  # the name's local time
    assert records[1].steps is None and records[1].train_loss is None


def test_same_second_suffixes_sort_by_number_not_text(tmp_path):
    for _ in range(12):
        make_run(tmp_path, "spiral", NOW)

    names = [record.path.name for record in list_runs(tmp_path)]

    assert names[:3] == ["20261126-103000-11", "20261126-103000-10", "20261126-103000-9"]
    assert names[-1] == "20261126-103000"


def test_runs_started_in_other_time_zones_sort_by_the_moment_they_started(tmp_path):
    make_run(tmp_path, "tokyo", datetime(2026, 11, 27, 8, 27, 35),
             {"status": "completed", "started": "2026-11-27T08:27:35+09:00"})  # 23:27:35 UTC
    make_run(tmp_path, "new_york", datetime(2026, 11, 26, 18, 27, 37),
             {"status": "completed", "started": "2026-11-26T18:27:37-05:00"})  # 23:27:37 UTC

    assert [record.name for record in list_runs(tmp_path)] == ["new_york", "tokyo"]


def test_a_folder_with_an_impossible_date_or_a_status_that_is_no_word_is_listed_not_a_crash(tmp_path):
    odd = tmp_path / "x" / "20261399-000000"
    odd.mkdir(parents=True)
    (odd / "config.yaml").write_text("name: x\n")
    make_run(tmp_path, "spiral", NOW, {"status": "completed"})

    make_run(tmp_path, "nulled", NOW, {"status": None})
    make_run(tmp_path, "numbered", NOW, {"status": 5})

    records = list_runs(tmp_path)

    assert {record.name: record.status for record in records}["nulled"] == "unknown"
    assert {record.name: record.status for record in records}["numbered"] == "unknown"
    records = [record for record in records if record.name not in ("nulled", "numbered")]
    assert [(record.run, record.started is None) for record in records] == [
        ("spiral/20261126-103000", False), ("x/20261399-000000", True)]


def test_list_runs_of_a_missing_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        list_runs(tmp_path / "runs")
    (tmp_path / "runs").write_text("x")
    with pytest.raises(UserError, match="is not a directory"):
        list_runs(tmp_path / "runs")


def test_runs_table_shows_each_run_and_its_numbers(tmp_path):
    make_run(tmp_path, "spiral", datetime(2026, 11, 26, 9, 0, 0), completed(3000, 0.1, 0.9733, 0.12, 0.95))
    make_run(tmp_path, "spiral", datetime(2026, 11, 26, 10, 0, 0))

    text = render(format_runs_table(list_runs(tmp_path)))
    rows = [line for line in text.splitlines() if "spiral/" in line]

    assert len(rows) == 2
    assert "spiral/20261126-100000" in rows[0] and "running?" in rows[0]
    assert rows[1].split() == ["spiral/20261126-090000", "completed", "3000",
                               "0.1000", "97.33%", "0.1200", "95.00%"]  # 0.9733 -> 97.33%


def test_empty_runs_table_says_so():
    assert "no runs found" in render(format_runs_table([]))


@pytest.mark.parametrize(("value", "shown"), [(0.10849, "0.1085"), (12.5, "12.5000"), (-3.0, "-3.0000"),
                                              (1e300, "1.0000e+300"), (float("nan"), "nan"), (float("inf"), "inf")])
def test_metrics_stay_short_however_large(value: float, shown: str) -> None:
    assert format_metric(value) == shown


def test_the_listing_shows_running_and_killed_runs_over_their_summaries(tmp_path):
    """How the lock tells them is tested in test_run_lock.py."""
    from test_run_lock import ended_process, lock_text

    interrupted = {"status": "interrupted", "steps": 5}
    cases = [(lock_text(os.getpid()), interrupted, "running"),  # a resume under way
             (lock_text(ended_process(), started="12345"), None, "killed"),
             ("", interrupted, "interrupted"),
             ("", None, "failed"),  # let go without a summary (a full disk)
             ("moved away while it trained\n", interrupted, "failed"),  # a resume whose directory moved
             (None, None, "running?")]
    runs = []
    for hour, (lock, summary, _) in enumerate(cases):
        run = make_run(tmp_path, "spiral", datetime(2026, 11, 26, 10 + hour, 0, 0), summary)
        if lock is not None:
            (run.path / ".lock").write_text(lock)
            if summary is not None:
                stamp = os.stat(run.path / ".lock").st_mtime - 5
                os.utime(run.summary_path, (stamp, stamp))
        runs.append(run.path)
    statuses = {record.path: record.status for record in list_runs(tmp_path)}
    assert [statuses[path] for path in runs] == [case[-1] for case in cases]


def test_the_lock_of_a_finished_training_names_nobody(tmp_path):
    run = RunDirectory.create(tmp_path, "spiral")
    with run.lock():
        assert run.training_state() == "running"
    assert run.training_state() is None


def test_one_experiments_folder_or_one_run_lists_those_runs(tmp_path, monkeypatch):
    first = make_run(tmp_path, "spiral", datetime(2026, 1, 2, 3, 4, 5), completed(10, 0.5, 0.8, 0.6, 0.7))
    second = make_run(tmp_path, "spiral", datetime(2026, 1, 3, 3, 4, 5), completed(20, 0.4, 0.9, 0.5, 0.8))
    make_run(tmp_path, "digits", datetime(2026, 1, 4, 3, 4, 5), completed(30, 0.3, 0.9, 0.4, 0.9))
    assert [r.path for r in list_runs(tmp_path / "spiral")] == [second.path, first.path]
    assert [r.path for r in list_runs(first.path)] == [first.path]
    assert len(list_runs(tmp_path)) == 3
    monkeypatch.chdir(tmp_path / "spiral")  # `nnframe runs .` in an experiment's folder: still named after it
    assert [r.run for r in list_runs(Path("."))] == [f"spiral/{second.path.name}", f"spiral/{first.path.name}"]
    monkeypatch.chdir(first.path / "checkpoints")  # or given as `..`, or through a link
    assert [r.run for r in list_runs(Path(".."))] == [f"spiral/{first.path.name}"]
    (tmp_path / "link").symlink_to(first.path)
    assert [r.run for r in list_runs(tmp_path / "link")] == [f"spiral/{first.path.name}"]
    (tmp_path / "linked_runs").mkdir()  # a runs folder whose experiment folder links to another disk keeps its name
    (tmp_path / "linked_runs" / "mlp").symlink_to(tmp_path / "spiral")
    assert {r.run for r in list_runs(tmp_path / "linked_runs")} == {f"mlp/{first.path.name}", f"mlp/{second.path.name}"}


def test_a_link_to_a_run_beside_it_is_not_listed_again(tmp_path, monkeypatch):
    from nnframe import run_listing

    real = run_listing._subdirectories
    monkeypatch.setattr(run_listing, "_subdirectories", lambda folder: sorted(real(folder)))  # links met first
    run = make_run(tmp_path, "spiral", datetime(2026, 1, 2, 3, 4, 5), completed(10, 0.5, 0.8, 0.6, 0.7))
    (tmp_path / "spiral" / "latest").symlink_to(run.path.name)  # one link named after the run, one before it
    (tmp_path / "spiral" / "0-first").symlink_to(run.path)
    assert [r.run for r in list_runs(tmp_path)] == [f"spiral/{run.path.name}"]
    assert [r.run for r in list_runs(tmp_path / "spiral" / "latest")] == [f"spiral/{run.path.name}"]
    (tmp_path / "0-spiral").symlink_to(tmp_path / "spiral")  # the experiment's folder linked, met before it
    assert [r.run for r in list_runs(tmp_path)] == [f"spiral/{run.path.name}"]


def test_a_run_without_a_summary_shows_the_step_of_its_newest_checkpoint(tmp_path):
    run = make_run(tmp_path, "spiral", datetime(2026, 11, 26, 10, 0, 0), None)
    for name in ("step-00000040.json", "step-00000040.npz", "step-00000080.npz", "best.json"):
        (run.checkpoints / name).write_text("{}", encoding="utf-8")
    (record,) = list_runs(tmp_path)
    assert record.steps == 40  # step 80's arrays without their metadata are no checkpoint


def best_meta(step: int) -> str:
    """A ``best.json`` as a checkpoint writes it, as far as a resume reads it to pick the newest."""
    return json.dumps({"format": "nnframe-checkpoint", "version": 1, "arrays": f"best-{step:08d}.npz", "sha256": "0",
                       "step": step, "epoch": 1, "skipped_steps": 0, "config_hash": "0", "fingerprint": {"params": []},
                       "batches": {}, "rngs": {}})


@pytest.mark.parametrize("best, shown", [(120, 120), (20, 40)])
def test_a_best_checkpoint_newer_than_the_step_files_gives_the_step(tmp_path, best: int, shown: int) -> None:
    """A resume goes on from the newest of them, best.json included (the only one where checkpoint.every is 0)."""
    from test_run_lock import ended_process, lock_text

    killed = make_run(tmp_path, "spiral", datetime(2026, 11, 26, 10, 0, 0), None)
    resumed = make_run(tmp_path, "spiral", datetime(2026, 11, 26, 11, 0, 0), {"status": "interrupted", "steps": 30})
    (resumed.path / ".lock").write_text(lock_text(ended_process(), started="12345"), encoding="utf-8")
    for run in (killed, resumed):
        (run.checkpoints / "step-00000040.json").write_text("{}", encoding="utf-8")
        (run.checkpoints / "best.json").write_text(best_meta(best), encoding="utf-8")
    assert [record.steps for record in list_runs(tmp_path)] == [shown, shown]


def test_a_killed_resume_shows_the_step_its_checkpoints_reached_past_its_summary(tmp_path):
    from test_run_lock import ended_process, lock_text

    summary = {"status": "interrupted", "steps": 454, "metrics": {"train/loss": 0.25, "train/accuracy": 0.9}}
    run = make_run(tmp_path, "spiral", datetime(2026, 11, 26, 10, 0, 0), summary)
    (run.path / ".lock").write_text(lock_text(ended_process(), started="12345"), encoding="utf-8")
    (record,) = list_runs(tmp_path)
    assert (record.status, record.steps, record.train_loss) == ("killed", 454, 0.25)  # no checkpoint past it
    (run.checkpoints / "step-00001780.json").write_text("{}", encoding="utf-8")
    (record,) = list_runs(tmp_path)
    assert (record.status, record.steps) == ("killed", 1780)
    assert record.metrics == (None,) * len(record.metrics)  # the summary's were measured at step 454


def test_a_resume_training_past_an_early_stop_is_not_listed_as_stopped_early(tmp_path):
    """The summary's stop is the leg before it: while a longer resume trains, or after it was killed, it is not
    how the run stands."""
    from test_run_lock import ended_process, lock_text

    stopped = {"status": "completed", "steps": 80, "stopped_early": {"step": 80, "planned_steps": 480,
                                                                      "reason": "no improvement"}}
    runs = []
    for hour, lock in enumerate([None, lock_text(os.getpid()), lock_text(ended_process(), started="12345")]):
        run = make_run(tmp_path, "spiral", datetime(2026, 11, 26, 10 + hour, 0, 0), stopped)
        if lock is not None:
            (run.path / ".lock").write_text(lock)
            stamp = os.stat(run.path / ".lock").st_mtime - 5
            os.utime(run.summary_path, (stamp, stamp))
        runs.append(run.path)
    shown = {record.path: record.status_text for record in list_runs(tmp_path)}
    assert [shown[path] for path in runs] == ["completed (stopped early)", "running", "killed"]


def test_a_sweeps_runs_are_told_apart_by_their_overrides(tmp_path):
    first = make_run(tmp_path, "spiral", datetime(2026, 11, 26, 9, 0, 0), completed(300, 0.2, 0.9, 0.3, 0.8))
    first.write_overrides(["optimizer.lr=0.3", "train.epochs=20"])
    first.write_overrides(["optimizer.lr=0.3", "train.epochs=40"])  # a resume, which repeats the start's
    make_run(tmp_path, "spiral", datetime(2026, 11, 26, 9, 0, 0), completed(300, 0.2, 0.9, 0.3, 0.8))
    (tmp_path / "spiral" / "20261126-090000-1" / "overrides.yaml").write_text("- [")  # damaged: none shown

    records = list_runs(tmp_path)
    assert [record.overrides for record in records] == [(), ("optimizer.lr=0.3", "train.epochs=40")]
    rows = [line for line in render(format_runs_table(records)).splitlines() if "spiral/" in line]
    assert rows[1].rstrip().endswith("80.00%  optimizer.lr=0.3 train.epochs=40")
    assert runs_json(records)[1]["overrides"] == ["optimizer.lr=0.3", "train.epochs=40"]
    assert "overrides" not in render(format_runs_table(records[:1]))
    first.write_overrides(["optimizer={type: momentum, lr: 0.5}", "train.epochs=40", "optimizer.momentum=0.8"])
    assert list_runs(tmp_path)[1].overrides == ("optimizer={type: momentum, lr: 0.5}", "train.epochs=40",
                                               "optimizer.momentum=0.8")  # optimizer.lr=0.3 is replaced
    first.write_overrides(["train.epochs=50"])  # a resume that leaves the others out runs without them
    assert list_runs(tmp_path)[1].overrides == ("train.epochs=50",)


def test_a_fine_tuned_runs_init_from_stays_listed_through_a_resume_that_leaves_it_out(tmp_path):
    run = make_run(tmp_path, "spiral", datetime(2026, 11, 26, 9, 0, 0), completed(300, 0.2, 0.9, 0.3, 0.8))
    run.write_overrides(["train.init_from={run: runs/spiral/a}", "optimizer.lr=0.1"])
    run.write_overrides(["train.epochs=40", "train.init_from={run: runs/spiral/b}"])  # kept from the start
    assert list_runs(tmp_path)[0].overrides == ("train.epochs=40", "train.init_from={run: runs/spiral/a}")


def test_overrides_with_brackets_are_shown_as_given_not_read_as_markup(tmp_path):
    run = make_run(tmp_path, "spiral", datetime(2026, 11, 26, 9, 0, 0), completed(300, 0.2, 0.9, 0.3, 0.8))
    run.write_overrides(["data.drop=[id]", "name=[bold]x"])
    shown = render(format_runs_table(list_runs(tmp_path)))
    assert "data.drop=[id] name=[bold]x" in shown


def test_a_run_directory_that_cannot_be_read_is_listed_not_fatal(tmp_path, monkeypatch):
    readable = make_run(tmp_path, "spiral", datetime(2026, 11, 26, 9, 0, 0), completed(300, 0.2, 0.9, 0.3, 0.8))
    locked = make_run(tmp_path, "spiral", datetime(2026, 11, 26, 10, 0, 0), completed(300, 0.2, 0.9, 0.3, 0.8))
    real_stat = os.stat

    def stat(path, *args, **kwargs):  # as chmod 000 makes it for a user other than root
        if locked.path in Path(path).parents:
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    records = list_runs(tmp_path)
    assert [record.path for record in records] == [locked.path, readable.path]
    assert records[1].status == "completed"

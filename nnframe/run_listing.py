"""``nnframe runs``: every run under a runs directory, newest first, from its ``summary.json``."""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnframe.errors import CheckpointError, UserError
from nnframe.formatting import format_metric
from nnframe.tracking import (CONFIG_FILE, FINAL_METRICS, RUN_DIR_NAME, SUMMARY_FILE, TIMESTAMP_FORMAT, RunDirectory,
                              run_identity)

if TYPE_CHECKING:
    from rich.table import Table


EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
"""Where a run with no known start sorts: last."""


@dataclass(frozen=True)
class RunRecord:
    """One run as ``nnframe runs`` lists it, read from its directory and ``summary.json``.

    ``status`` is ``"running"`` while a process trains it (a resume too),
    ``"killed"`` when that process died without a word (a SIGKILL), else the
    summary's status: ``"failed"`` for a run whose directory was moved away
    while it trained (its lock says so) or that ended without a summary,
    ``"running?"`` for a run without a summary from before runs were locked,
    and ``"unknown"`` for an unreadable summary.
    :attr:`status_text` adds the steps ``skip_step`` dropped and an early stop.
    """

    name: str
    path: Path
    started: datetime | None
    status: str
    steps: int | None = None
    train_loss: float | None = None
    train_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    train_rmse: float | None = None
    train_mae: float | None = None
    val_rmse: float | None = None
    val_mae: float | None = None
    """A run that measures no accuracy has these error measures (see :mod:`nnframe.error_measures`)."""
    skipped_steps: int | None = None
    stopped_early: bool = False
    saved: bool = True
    """False for a run a second Ctrl-C ended at once: ``steps`` is then its newest checkpoint's, where a resume
    goes on from, and the final metrics, measured later, are left out."""
    overrides: tuple[str, ...] = ()
    """The command-line overrides in effect (see :func:`_overrides`): what sets a sweep's runs apart."""

    @property
    def status_text(self) -> str:
        """The status as the table shows it: ``completed (386 skipped) (stopped early)``, ``interrupted (not
        saved)``."""
        text = self.status + ("" if self.saved else " (not saved)")
        if self.skipped_steps:  # train.on_nonfinite: skip_step dropped these updates; most skips learn little
            text += f" ({self.skipped_steps} skipped)"
        return text + (" (stopped early)" if self.stopped_early else "")

    @property
    def run(self) -> str:
        """The run's name in TensorBoard: ``<name>/<timestamp>``, however the run's path was given (``.``, a link)."""
        return f"{self.name}/{run_identity(self.path).name}"

    @classmethod
    def from_dir(cls, path: Path) -> RunRecord:
        return replace(cls._from_summary(path), overrides=_overrides(RunDirectory(path)))

    @classmethod
    def _from_summary(cls, path: Path) -> RunRecord:
        run_dir = RunDirectory(path)
        training = run_dir.training_state()
        try:
            summary = run_dir.read_summary()
        except (UserError, OSError):
            return cls(run_dir.name, path, _started_from_dir_name(path.name), training or "unknown")
        if run_dir.moved_away():
            training = "failed"
        if summary is None:  # killed, or moved away, before its first summary: its checkpoints tell its steps
            ended = "failed" if run_dir.released() else "running?"
            return cls(run_dir.name, path, _started_from_dir_name(path.name), training or ended,
                       _newest_checkpoint_step(run_dir.checkpoints))
        metrics = {tag.replace("/", "_"): _final_metric(summary, tag) for tag in FINAL_METRICS}
        recorded = summary.get("status")
        status = training or (recorded if isinstance(recorded, str) and recorded else "unknown")
        steps = _int_or_none(summary.get("steps"))
        unsaved = summary.get("saved") is False  # stopped at once: a resume goes on from its newest checkpoint
        if unsaved or training in ("killed", "failed"):  # a killed or failed run's may have gone past its summary
            newest = _newest_checkpoint_step(run_dir.checkpoints)
            if unsaved or (newest is not None and (steps is None or newest > steps)):
                steps = newest
                metrics = dict.fromkeys(metrics)  # measured at the summary's step, not at this one
        return cls(run_dir.name, path, _started(summary, path), status, steps, **metrics,
                   skipped_steps=_int_or_none(summary.get("skipped_steps")),
                   stopped_early=training is None and isinstance(summary.get("stopped_early"), dict),
                   saved=training is not None or summary.get("saved") is not False)

    @property
    def metrics(self) -> tuple[float | None, ...]:
        """The final metrics, in the order of ``FINAL_METRICS`` (``"train/loss"`` is the field ``train_loss``)."""
        return tuple(getattr(self, tag.replace("/", "_")) for tag in FINAL_METRICS)

    def sort_key(self) -> tuple[datetime, int, str]:
        match = RUN_DIR_NAME.match(self.path.name)
        suffix = int(match.group(2)) if match and match.group(2) else 0
        return (self.started or EARLIEST, suffix, self.run)


def runs_json(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """``nnframe runs --json``: each run as the table shows it, with its absolute path, the start as ISO 8601 and
    the final metrics by tag (``null`` where there is none), for scripts."""
    return [{"run": record.run, "name": record.name, "path": os.path.abspath(record.path),
             "started": record.started.isoformat() if record.started else None, "status": record.status,
             "saved": record.saved, "steps": record.steps, "skipped_steps": record.skipped_steps,
             "stopped_early": record.stopped_early,
             "overrides": list(record.overrides),
             "metrics": {tag: value if value is not None and math.isfinite(value) else None
                         for tag, value in zip(FINAL_METRICS, record.metrics)}}
            for record in records]


def _overrides(run_dir: RunDirectory) -> tuple[str, ...]:
    """The overrides in effect, from ``overrides.yaml``: the last start's or resume's (a resume reads the config
    file with its own alone, so one that leaves out the start's runs without them), but ``train.init_from``'s from
    the start, which a resume keeps; each field's last value in the order given, a section's dropping those of its
    fields given before it; none where the file is damaged."""
    try:
        entries = run_dir.read_overrides()
    except (UserError, OSError):
        return ()
    first, last = (_given(entries[0]), _given(entries[-1])) if entries else ([], [])
    kept = [item for item in last if not _sets_init_from(item)] + [item for item in first if _sets_init_from(item)]
    latest: dict[str, str] = {}
    for item in kept:
        key = _key(item)
        for earlier in [k for k in latest if k == key or k.startswith(f"{key}.")]:  # a section replaces its fields
            del latest[earlier]
        latest[key] = item
    return tuple(latest.values())


def _given(entry: Any) -> list[str]:
    given = entry.get("overrides") if isinstance(entry, dict) else None
    return [str(item) for item in given] if isinstance(given, list) else []


def _key(item: str) -> str:
    return item.partition("=")[0].strip()


def _sets_init_from(item: str) -> bool:
    """``train.init_from=...`` or one of its fields: a run's start, which a resume keeps (see ``launch``)."""
    return _key(item) == "train.init_from" or _key(item).startswith("train.init_from.")


def list_runs(runs_dir: Path) -> list[RunRecord]:
    """Every run under ``runs_dir`` (``<name>/<timestamp>/`` with a config or summary), newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        problem = "is not a directory" if runs_dir.exists() else "does not exist"
        raise UserError(f"runs directory {str(runs_dir)!r} {problem}; "
                        "train a run first (`nnframe train CONFIG`) or name the directory to list")
    records = [RunRecord.from_dir(path) for path in _run_dirs(runs_dir)]
    return sorted(records, key=RunRecord.sort_key, reverse=True)


def _run_dirs(runs_dir: Path) -> list[Path]:
    """Every ``<name>/<timestamp>/`` holding a config or summary; directories that cannot be read are passed over.

    Given one experiment's folder (``runs/spiral``) or one run, those runs.
    """
    if _is_run(runs_dir):
        return [runs_dir]
    children = _subdirectories(runs_dir)
    return _once_each([path for name_dir in children for path in _subdirectories(name_dir) if _is_run(path)] + [
        path for path in children if _is_run(path)])


def _once_each(paths: list[Path]) -> list[Path]:
    """``paths`` with each directory once: a link to a run beside it (``latest``), or to its experiment's folder,
    is left out for the run's own name, whatever the order of the folder."""
    kept: dict[Path, Path] = {}
    for path in sorted(paths, key=lambda path: path.is_symlink() + path.parent.is_symlink()):
        kept.setdefault(_real(path), path)
    chosen = set(map(id, kept.values()))
    return [path for path in paths if id(path) in chosen]


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


def _is_run(path: Path) -> bool:
    """A directory with a config or summary; one that cannot be read is a run where it is named like one, listed
    with what can be told of it."""
    try:
        return any(_present(path / name) for name in (CONFIG_FILE, SUMMARY_FILE))
    except OSError:
        return RUN_DIR_NAME.fullmatch(path.name) is not None


def _present(path: Path) -> bool:
    """Whether ``path`` exists; an ``OSError`` other than its absence (permissions) is raised, not taken for it."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return False
        raise
    return True


def _subdirectories(directory: Path) -> list[Path]:
    try:
        return [path for path in directory.iterdir() if path.is_dir()]
    except OSError:
        return []


def _final_metric(summary: Mapping[str, Any], tag: str) -> float | None:
    """``summary["metrics"][tag]``; also accepts ``final`` for ``metrics`` and ``train_loss`` for ``train/loss``."""
    for container in (summary.get("metrics"), summary.get("final"), summary):
        if not isinstance(container, Mapping):
            continue
        for key in (tag, tag.replace("/", "_")):
            if isinstance(container.get(key), (int, float)) and not isinstance(container.get(key), bool):
                return float(container[key])
    return None


def _started(summary: Mapping[str, Any], path: Path) -> datetime | None:
    """When the run started, as an aware time, so that runs started in other time zones sort by the moment."""
    value = summary.get("started")
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).astimezone()
        except (ValueError, OverflowError, OSError):
            pass
    return _started_from_dir_name(path.name)


def _started_from_dir_name(dir_name: str) -> datetime | None:
    """The local time in a run directory's name; None for a name that only looks like one (month 13)."""
    match = RUN_DIR_NAME.match(dir_name)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), TIMESTAMP_FORMAT).astimezone()
    except (ValueError, OverflowError, OSError):
        return None


def _newest_checkpoint_step(directory: Path) -> int | None:
    """The step of the newest checkpoint in ``directory``, where a resume goes on from: the newest
    ``step-<step>.json`` by its name alone, or ``best.json`` by the step it records where that is newer (a run
    saving no scheduled checkpoints has only it); None where there is none."""
    from nnframe.checkpoint_files import BEST, STEP_FILE, read_meta  # numpy with it: only for runs without a summary

    try:
        names = [entry.name for entry in os.scandir(directory)]
    except OSError:
        return None
    steps = [int(match.group(1)) for match in map(STEP_FILE.match, names) if match and match.group(2) == "json"]
    if f"{BEST}.json" in names:
        try:
            steps.append(read_meta(directory / f"{BEST}.json")["step"])
        except CheckpointError:  # a resume skips it too
            pass
    return max(steps, default=None)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def format_runs_table(records: Sequence[RunRecord], with_overrides: bool = True) -> Table:
    """A rich table of runs, newest first: run (``<name>/<timestamp>``), status, steps, final losses and accuracies
    (RMSEs where a run measures them), and the overrides where any run has some (and ``with_overrides``). No cell
    is cut short: the run names and numbers keep their width, the status and the overrides wrap."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                  caption=None if records else "no runs found")
    with_overrides = with_overrides and any(record.overrides for record in records)
    columns = _metric_columns(records)
    rows = [_row(record, columns, with_overrides) for record in records]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3 + len(columns))]
    table.add_column("run", no_wrap=True, min_width=widths[0])  # whole: the timestamp tells runs apart
    table.add_column("status", overflow="fold", min_width=min(widths[1], len("interrupted")))
    headers = ["steps", *(header for header, _, _ in columns)]
    for i, header in enumerate(headers, start=2):
        table.add_column(header, justify="right", no_wrap=True, min_width=max(widths[i], len(header.split()[0])))
    if with_overrides:
        table.add_column("overrides", overflow="fold", min_width=len("overrides"))
    for row in rows:
        table.add_row(*map(Text, row))  # as text: an override such as 'data.drop=[id]' is not rich markup
    return table


MetricColumn = tuple[str, str, Callable[[float | None], str]]


def _metric_columns(records: Sequence[RunRecord]) -> list[MetricColumn]:
    """Loss columns, then accuracy columns unless every run measures error measures instead, and RMSE columns
    where some run measures them."""
    errors = any(r.train_rmse is not None or r.val_rmse is not None for r in records)
    accuracy = not errors or any(r.train_accuracy is not None or r.val_accuracy is not None for r in records)
    columns: list[MetricColumn] = []
    for part in ("train", "val"):
        columns.append((f"{part}\nloss", f"{part}_loss", _format_loss))
        if accuracy:
            columns.append((f"{part}\nacc", f"{part}_accuracy", _format_accuracy))
        if errors:
            columns.append((f"{part}\nrmse", f"{part}_rmse", _format_loss))
    return columns


def _row(record: RunRecord, columns: list[MetricColumn], with_overrides: bool) -> list[str]:
    return [
        record.run,
        record.status_text,
        "-" if record.steps is None else str(record.steps),
        *(shown(getattr(record, field)) for _, field, shown in columns),
        *([" ".join(record.overrides)] if with_overrides else []),
    ]


def _format_loss(value: float | None) -> str:
    return "-" if value is None else format_metric(value)


def _format_accuracy(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"

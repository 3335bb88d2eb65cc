"""The built-in TensorBoard logger: a plugin that writes a run's events with tensorboardX.

Written exactly as a third-party logger would be: ``nnframe_configure_run``
registers a :class:`TensorBoardLogger` object for the run, and that object's
hook implementations receive the run's events. ``log.tensorboard: false``
turns it off; a run without a directory writes nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from itertools import groupby
from typing import TYPE_CHECKING, Any

import numpy as np

from nnframe.event_file import EVENT_FILE_MARK, FLUSH_SECS, EventFile, drop_earlier_ends, trim_for_resume
from nnframe.hookspecs import hookimpl
from nnframe.tracking import config_yaml

if TYPE_CHECKING:
    from nnframe.run import EvalMetrics, RunContext, StepMetrics

MAX_PENDING = 100
"""Logged steps kept before they are written (also written every ``FLUSH_SECS`` and on every other event)."""
FINAL_TAGS = ("train/loss", "train/accuracy", "train/rmse", "train/mae")
"""The summary's measures over the whole training set, logged as ``final/<tag>`` when a run completes: the
``train/`` points are mini-batches, which can rank the runs of a sweep otherwise."""



@hookimpl
def nnframe_configure_run(run: RunContext) -> None:
    if run.run_dir is not None and run.config.get("log", {}).get("tensorboard", True):
        logger = TensorBoardLogger(run)
        run.register(logger)
        if logger.histograms_every > 0:
            run.register(HistogramLogger(logger))


class TensorBoardLogger:
    """Writes one run's scalars, histograms, config and hparams as TensorBoard events in its run directory.

    Scalars (step = optimizer step): ``train/loss``, ``train/accuracy``,
    ``train/lr``, ``grad_norm/global`` and ``grad_norm/<node>/<param>`` on the
    steps that fall on ``log.every`` and on the last step (an interrupted run's too); ``val/loss`` and
    ``val/accuracy`` after each evaluation; ``final/train/loss`` and
    ``final/train/accuracy``, over the whole training set, at the last step of a
    completed run. A run that measures no accuracy has ``rmse`` and ``mae`` in
    its place in each (see :mod:`nnframe.error_measures`). Histograms ``weights/<name>`` and
    ``grads/<name>`` every ``log.histograms_every`` steps (0 turns them off).
    The resolved config is the text ``config`` (tag ``config/text_summary``), at step 0 and again at each
    resume. The HParams tab gets the flattened config when a run starts and a
    session end when it completes; TensorBoard takes its metric columns from
    the scalar tags, each run's value being its last logged point.

    On a resume the points a killed run logged after its last checkpoint are taken out of its earlier files
    (see :func:`~nnframe.event_file.trim_for_resume`), and so is a completed run's end once it has ended again
    (:func:`~nnframe.event_file.drop_earlier_ends`); the writer starts with
    ``purge_step = run.step + 1`` for readers that act on it, and every writer
    gets its own event file (tensorboardX names files by the second, and a
    second writer in the same second would otherwise truncate the first file), numbered with six digits, since
    TensorBoard reads a run's files in the order of their names.
    """

    def __init__(self, run: RunContext) -> None:
        self.logdir = run.run_dir
        self.histograms_every = int(run.config.get("log", {}).get("histograms_every", 0) or 0)
        self.writer: EventFile | None = None
        self.pending: list[tuple[StepMetrics, float]] = []
        self._tag_sets: dict[tuple[bool, bool, tuple[str, ...]], tuple[str, ...]] = {}
        self.written_at = time.monotonic()

    @hookimpl
    def nnframe_run_start(self, run: RunContext) -> None:
        if run.resumed:
            trim_for_resume(self.logdir, run.step + 1)
        earlier_files = _count_event_files(self.logdir)
        self.writer = EventFile(self.logdir, purge_step=run.step + 1 if run.resumed else None,
                                suffix=f".{earlier_files:06d}")  # read in name order: .000010 after .000009
        self.writer.text("config", f"```yaml\n{config_yaml(run.config)}```", step=run.step)
        if not run.resumed or not earlier_files:  # a run begun with log.tensorboard off starts its log here
            self.writer.session_start(flatten_config(run.config))
        self.writer.flush()

    @hookimpl
    def nnframe_log_metrics(self, run: RunContext, metrics: StepMetrics) -> None:
        """Keep the step's metrics; they are written in a burst (see :meth:`_write_pending`)."""
        if self.writer is None:
            return
        self.pending.append((metrics, time.time()))
        if len(self.pending) >= MAX_PENDING or time.monotonic() - self.written_at > FLUSH_SECS:
            self._write_pending()

    @hookimpl
    def nnframe_evaluation_end(self, run: RunContext, metrics: EvalMetrics) -> None:
        if self.writer is None:
            return
        self._write_pending()
        self._scalars({"val/loss": metrics.loss, "val/accuracy": metrics.accuracy, "val/rmse": metrics.rmse,
                       "val/mae": metrics.mae}, metrics.step)
        self.writer.flush()

    @hookimpl
    def nnframe_checkpoint(self, run: RunContext) -> None:
        """Write out the kept metrics and flush, so the log reaches the checkpoint a resume starts from."""
        if self.writer is None:
            return
        self._write_pending()
        self.writer.flush()

    @hookimpl
    def nnframe_run_end(self, run: RunContext, status: str, summary: dict[str, Any]) -> None:
        """Write out the kept metrics and close; a completed run also gets its final measures and its HParams
        session end.

        TensorBoard keeps the first session end it finds in a run, so an
        interrupted, diverged or failed run, which may be resumed, gets none.
        """
        if self.writer is None:
            return
        ended = False
        try:
            self._write_pending()
            if status == "completed":
                self._scalars({f"final/{tag}": summary.get("metrics", {}).get(tag) for tag in FINAL_TAGS}, run.step)
                self.writer.session_end(run.step)
                ended = True
        finally:
            path = self.writer.path
            self.writer.close()
            self.writer = None
        if ended and run.resumed:  # a completed run trained further: its end is this one, now on disk
            drop_earlier_ends(self.logdir, path)

    def _write_pending(self) -> None:
        """Write the kept training metrics, oldest first, each as one event.

        Written one at a time between training steps, the event code ran cold:
        a logged spiral step cost 31 us against 9 us in a burst. Any other
        event, an evaluation and the end of the run write the pending ones
        first, so the file stays in step order and nothing is lost on an
        exception.
        """
        if self.pending:
            for tags, group in groupby(self.pending, key=lambda item: self._train_tags(item[0])):
                self.writer.scalar_series(tags, ((metrics.step, wall_time, _train_values(metrics))
                                                 for metrics, wall_time in group))
            self.pending.clear()
        self.written_at = time.monotonic()

    def _train_tags(self, metrics: StepMetrics) -> tuple[str, ...]:
        """The tags of a logged step's scalars, in the order of :func:`_train_values`; made once per set."""
        key = (metrics.accuracy is not None, metrics.rmse is not None, tuple(metrics.grad_norms or ()))
        tags = self._tag_sets.get(key)
        if tags is None:
            with_accuracy, with_errors, norm_names = key
            tags = self._tag_sets[key] = ("train/loss", "train/lr", *(["train/accuracy"] if with_accuracy else []),
                                          *(["train/rmse", "train/mae"] if with_errors else []),
                                          *(f"grad_norm/{name}" for name in norm_names))
        return tags

    def _scalars(self, values: Mapping[str, float | None], step: int, wall_time: float | None = None) -> None:
        present = {tag: float(value) for tag, value in values.items() if value is not None}
        self.writer.scalars(present, step, wall_time)

    def histograms(self, model: Any, step: int) -> None:
        """Weight and gradient histograms of every parameter (finite values only)."""
        if self.writer is None:
            return
        self._write_pending()
        for name, param, grad in model.named_params():
            for prefix, values in (("weights", param), ("grads", grad)):
                finite = np.asarray(values)[np.isfinite(values)]
                if finite.size:
                    self.writer.histogram(f"{prefix}/{name}", finite, step)

    def __repr__(self) -> str:
        state = "open" if self.writer is not None else "closed"
        return f"TensorBoardLogger({str(self.logdir)!r}, {state})"


class HistogramLogger:
    """Weight and gradient histograms every ``log.histograms_every`` steps, through a run's logger.

    A separate per-run object, registered only when histograms are on,
    because it needs :func:`nnframe_step_end`, which runs on every step.
    """

    def __init__(self, logger: TensorBoardLogger) -> None:
        self.logger = logger
        self.every = logger.histograms_every

    @hookimpl
    def nnframe_step_end(self, run: RunContext, metrics: StepMetrics) -> None:
        if metrics.step % self.every == 0 and run.model is not None:
            self.logger.histograms(run.model, metrics.step)

    def __repr__(self) -> str:
        return f"HistogramLogger(every={self.every})"


def _train_values(metrics: StepMetrics) -> list[float]:
    """A logged step's scalars: loss, lr, then the accuracy, the error measures and the gradient norms where
    present."""
    values = [metrics.loss, metrics.lr]
    if metrics.accuracy is not None:
        values.append(metrics.accuracy)
    if metrics.rmse is not None:
        values.extend((metrics.rmse, metrics.mae))
    if metrics.grad_norms:
        values.extend(metrics.grad_norms.values())
    return values


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, str | bool | int | float]:
    """The config as ``{"optimizer.lr": 1.0, "model.0.out": 10, ...}``, the keys of overrides: scalars kept, a
    list of sections (the model's nodes, the callbacks) flattened by index, other lists turned into strings, unset
    values and empty lists left out.

    TensorBoard gives a column the type of its values across runs, so an
    unset ``train.max_steps`` written as the text ``"None"`` made the whole
    column text, sorted as words; left out, the run's cell is empty. The
    model as one JSON string could not be sorted or plotted by a layer's width.
    """
    flat: dict[str, str | bool | int | float] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, f"{dotted}."))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(item, Mapping) for item in value):
            flat.update(flatten_config({str(i): item for i, item in enumerate(value)}, f"{dotted}."))
        elif value is not None and not (isinstance(value, list) and not value):  # no callbacks: no column
            flat[dotted] = _hparam_value(value)
    return flat


def _hparam_value(value: Any) -> str | bool | int | float:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def _count_event_files(logdir: Any) -> int:
    if not os.path.isdir(logdir):
        return 0
    return sum(1 for name in os.listdir(logdir) if EVENT_FILE_MARK in name)

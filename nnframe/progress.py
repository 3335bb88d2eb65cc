"""Progress displays: a rich progress bar on a terminal, plain periodic lines otherwise.

Each is a per-run plugin object receiving the training events, registered by
the CLI, so the training loop knows nothing about terminals.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from nnframe.formatting import format_metric
from nnframe.hookspecs import hookimpl
from nnframe.run import EvalMetrics, RunContext, StepMetrics

PLAIN_LINES = 20
PLAIN_SECONDS = 60.0
"""Seconds after which a pipe gets a step line anyway: a long run's log is not silent for an hour."""


class PlainProgress:
    """About ``PLAIN_LINES`` lines per run, and one at least every ``PLAIN_SECONDS``, for logs and pipes: step,
    epoch, loss, steps/s, and validation.

    Each step line is followed by the latest evaluation of the stretch it
    ends, so a run with validation gets at most one validation line per step
    line. A step line waits for the next event, since an evaluation on its own
    step comes right after it and replaces any earlier one of the stretch.
    """

    def __init__(self, total_steps: int, stream: TextIO | None = None, where: str = "", data: str = "") -> None:
        self.total_steps = total_steps
        self.where, self.data = where, data
        self.stream: TextIO | None = stream or sys.stdout
        self.every = max(1, -(-total_steps // PLAIN_LINES))
        self._started = time.perf_counter()
        self._first_step = 0
        self._held: EvalMetrics | None = None
        self._line: tuple[int, str] | None = None
        self._lined_at = self._started

    @hookimpl
    def nnframe_run_start(self, run: RunContext) -> None:
        self._started = self._lined_at = time.perf_counter()
        self._first_step = run.step
        self._print(start_text(run, self.where, self.total_steps, self.data))

    @hookimpl
    def nnframe_step_end(self, run: RunContext, metrics: StepMetrics) -> None:
        if self._line is not None:
            self._write_line()
        now = time.perf_counter()
        if metrics.step % self.every == 0 or metrics.step == self.total_steps or now - self._lined_at >= PLAIN_SECONDS:
            self._lined_at = now
            rate = (metrics.step - self._first_step) / max(now - self._started, 1e-9)
            self._line = (metrics.step, f"step {metrics.step}/{self.total_steps}  epoch {metrics.epoch}  "
                                        f"loss {format_metric(metrics.loss)}  {rate:.0f} steps/s")

    @hookimpl
    def nnframe_evaluation_end(self, run: RunContext, metrics: EvalMetrics) -> None:
        self._held = metrics
        if self._line is not None and self._line[0] == metrics.step:
            self._write_line()

    @hookimpl
    def nnframe_run_end(self, run: RunContext, status: str, summary: dict[str, Any]) -> None:
        self._write_line()
        self._write_held()

    def _write_line(self) -> None:
        """The waiting step line, and after it the latest evaluation of its stretch."""
        if self._line is not None:
            (_, line), self._line = self._line, None
            self._print(line)
            self._write_held()

    def _print(self, line: str) -> None:
        """One line, unless the stream is gone: a pipe whose reader quit (``| head``, a dead ``tee``) stops the
        display, not the training, which goes on to its checkpoints and summary."""
        if self.stream is None:
            return
        try:
            self.stream.write(line + "\n")
        except (OSError, ValueError):  # EPIPE, EBADF; ValueError: the stream was closed
            self.stream = None

    def _write_held(self) -> None:
        if self._held is not None:
            metrics, self._held = self._held, None
            self._print(f"step {metrics.step}  {validation_text(metrics)}")


def start_text(run: RunContext, where: str, total_steps: int, data: str = "") -> str:
    """``training spiral in runs/spiral/20261127-021202: 3000 steps on 300 training examples of ...``, or
    ``resuming ... from step 40: ...``: the run directory named at the start, so that a run in the background can
    be found before it ends, and the data as read (see :meth:`~nnframe.data.Dataset.summary`)."""
    place = f" in {where}" if where else ""
    head = f"resuming {run.name}{place} from step {run.step}" if run.resumed else f"training {run.name}{place}"
    return f"{head}: {total_steps} steps" + (f" on {data}" if data else "")


def validation_text(metrics: EvalMetrics) -> str:
    """``val/loss 0.1234  val/accuracy 0.9500`` (the accuracy where there is one, else the RMSE and MAE where
    they were measured: either may be what a best checkpoint or an early stop watches)."""
    if metrics.accuracy is not None:
        return f"val/loss {format_metric(metrics.loss)}  val/accuracy {metrics.accuracy:.4f}"
    errors = "".join(f"  val/{name} {format_metric(value)}" for name, value in (("rmse", metrics.rmse),
                                                                              ("mae", metrics.mae))
                     if value is not None)
    return f"val/loss {format_metric(metrics.loss)}{errors}"


DETAILS = "epoch {task.fields[epoch]}  loss {task.fields[loss]}{task.fields[validation]}  {task.fields[rate]} steps/s"
"""What the live bar shows beside the step count."""


class RichProgress:
    """A live bar for terminals: epoch, step, loss, the latest validation, steps/s and time remaining."""

    def __init__(self, total_steps: int, console: Any = None, where: str = "", data: str = "") -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        from rich.table import Column

        self.total_steps = total_steps
        self.bar = BarColumn()
        self.details = TextColumn(DETAILS, table_column=Column(no_wrap=True, overflow="ellipsis"))
        self.description = TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True,
                                                                                      overflow="ellipsis"))
        self.remaining = TimeRemainingColumn()
        self.progress = Progress(self.description, self.bar, MofNCompleteColumn(), self.details, self.remaining,
                                 transient=False, console=console)
        self.name = ""
        self.task: Any = None
        self.where, self.data = where, data
        self._started = time.perf_counter()
        self._first_step = 0
        self._last_refresh = 0.0
        self._last_step: StepMetrics | None = None

    @hookimpl
    def nnframe_run_start(self, run: RunContext) -> None:
        self._started = time.perf_counter()
        self._first_step = run.step
        if self.where:
            self.progress.console.print(start_text(run, self.where, self.total_steps, self.data), markup=False,
                                        highlight=False)
        self.name = run.name
        self.progress.start()
        self.task = self.progress.add_task(run.name, total=self.total_steps, completed=run.step,
                                           epoch=run.epoch, loss="-", rate="-", validation="")
        self._fit_to_width()

    @hookimpl
    def nnframe_evaluation_end(self, run: RunContext, metrics: EvalMetrics) -> None:
        """The validation, with the step it was measured at: the step shown lags by up to 0.1 s otherwise."""
        if self.task is not None:
            self._show_step(time.perf_counter())
            self.progress.update(self.task, validation=f"  {validation_text(metrics)}")
            self._fit_to_width()

    @hookimpl
    def nnframe_step_end(self, run: RunContext, metrics: StepMetrics) -> None:
        self._last_step = metrics
        now = time.perf_counter()
        if now - self._last_refresh < 0.1 and metrics.step != self.total_steps:
            return
        self._show_step(now)

    @hookimpl
    def nnframe_run_end(self, run: RunContext, status: str, summary: dict[str, Any]) -> None:
        if self.task is None:  # the run failed before it started
            return
        self._show_step(time.perf_counter())
        self.progress.update(self.task, completed=run.step)
        self.progress.stop()

    def _show_step(self, now: float) -> None:
        metrics = self._last_step
        if metrics is None or self.task is None:
            return
        self._last_refresh = now
        rate = (metrics.step - self._first_step) / max(now - self._started, 1e-9)
        self.progress.update(self.task, completed=metrics.step, epoch=metrics.epoch,
                             loss=format_metric(metrics.loss), rate=f"{rate:.0f}")
        self._fit_to_width()

    def _fit_to_width(self) -> None:
        """The bar and the details sized to the terminal as it is now: the details whole where they fit beside a
        bar of 10, else cut short with an ellipsis, and the bar the rest, up to 40; the run's name at most a
        quarter of the width. Left to rich, the long details kept their width and the bar, the step count and the
        time remaining were cut instead (at 80 columns all three went)."""
        (task,) = self.progress.tasks
        width = self.progress.console.width
        name = min(len(self.name), max(8, width // 4))  # a long run name is cut short too
        self.description.get_table_column().max_width = name
        fixed = name + 2 * len(str(self.total_steps)) + 1 + len(self.remaining.render(task)) + 4  # with the gaps
        available = max(width - fixed, 0)
        details = len(DETAILS.format(task=task))
        self.bar.bar_width = max(10, min(40, available - details - 1))
        self.details.get_table_column().max_width = max(available - self.bar.bar_width - 1, 1)


def make_progress(total_steps: int, quiet: bool, stream: TextIO | None = None, where: str = "",
                  data: str = "") -> object | None:
    """The display for this terminal: rich on a TTY, plain lines otherwise, nothing when quiet.

    ``where`` is the run directory as the user gave it, and ``data`` what the run trains on, both named when the
    run starts.
    """
    if quiet:
        return None
    stream = stream or sys.stdout
    if stream is None:  # no stdout at all (closed when the process started): nothing to show
        return None
    if stream.isatty():
        return RichProgress(total_steps, where=where, data=data)
    return PlainProgress(total_steps, stream, where, data)

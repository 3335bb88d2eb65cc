"""Progress displays: rich on a terminal, plain lines in a pipe, nothing when quiet."""

from __future__ import annotations

import io

import pytest

from nnframe.plugins import get_plugin_manager
from nnframe.progress import PLAIN_LINES, PlainProgress, RichProgress, make_progress, validation_text
from nnframe.run import EvalMetrics, RunContext, StepMetrics


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def drive(display: object, steps: int, scale: float = 1.0) -> None:
    plugins = get_plugin_manager(autoload=False)
    run = RunContext(name="demo", config={}, run_dir=None, plugin_manager=plugins.pm)
    run.register(display)
    run.hook.nnframe_run_start(run=run)
    for step in range(1, steps + 1):
        run.step = step
        run.hook.nnframe_step_end(run=run, metrics=StepMetrics(step, step // 10, scale / step, 0.1))
        if step % 10 == 0:
            run.hook.nnframe_evaluation_end(run=run, metrics=EvalMetrics(step, step // 10, scale * 0.5, 0.75))
    run.hook.nnframe_run_end(run=run, status="completed", summary={})
    run.unregister_all()


def test_display_follows_the_stream():
    assert isinstance(make_progress(100, quiet=False, stream=FakeTerminal()), RichProgress)
    assert isinstance(make_progress(100, quiet=False, stream=io.StringIO()), PlainProgress)
    assert make_progress(100, quiet=True, stream=FakeTerminal()) is None


def test_plain_progress_prints_about_twenty_lines_with_step_loss_and_rate():
    stream = io.StringIO()
    drive(PlainProgress(200, stream), 200)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "training demo: 200 steps"
    step_lines = [line for line in lines if line.startswith("step ") and "loss" in line and "val/" not in line]
    # one line every 200 // 20 = 10 steps
    assert len(step_lines) == 20
    assert step_lines[-1].startswith("step 200/200  epoch 20  loss 0.0050")
    assert all("steps/s" in line for line in step_lines)
    assert "val/accuracy 0.7500" in stream.getvalue()


def test_rich_progress_draws_a_bar_with_epoch_loss_and_rate():
    from rich.console import Console

    display = RichProgress(50, console=Console(file=FakeTerminal(), force_terminal=True, width=120))
    drive(display, 50)
    output = display.progress.console.file.getvalue()
    assert "demo" in output and "50/50" in output
    assert "loss 0.0200" in output and "steps/s" in output


@pytest.mark.parametrize("name", ["spiral", "n" * 100])
@pytest.mark.parametrize("width", [60, 80, 100])
def test_a_narrow_terminal_cuts_the_details_short_and_keeps_the_bar_and_the_count(width: int, name: str) -> None:
    """Left to rich, the details kept their width and the bar, the step count and the time remaining were cut;
    a long run name is cut short too."""
    import re

    from rich.console import Console

    display = RichProgress(100000, console=Console(file=FakeTerminal(), force_terminal=True, width=width))
    run = RunContext(name=name, config={}, run_dir=None, plugin_manager=get_plugin_manager(autoload=False).pm)
    display.nnframe_run_start(run)
    run.step = 51666
    display.nnframe_step_end(run, StepMetrics(51666, 30, 0.6731, 0.1))
    display.nnframe_evaluation_end(run, EvalMetrics(51666, 30, 0.7537, 0.5667))
    display.nnframe_run_end(run, "interrupted", {})
    frame = display.progress.console.file.getvalue()
    last = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", frame).replace("\r", "\n").strip().splitlines()[-1]
    assert re.match(r"(spiral|n+…) ━", last) and "51666/100000 epoch 30" in last and len(last) <= width
    assert re.search(r"(…|steps/s) \S+$", last), last  # the details end in an ellipsis or whole, then the time


def test_both_displays_name_the_run_directory_and_the_data_when_the_run_starts():
    from rich.console import Console

    data = "4 training examples of 2 features, 3 classes"
    stream = io.StringIO()
    drive(PlainProgress(20, stream, where="runs/demo/1", data=data), 20)
    assert stream.getvalue().startswith(f"training demo in runs/demo/1: 20 steps on {data}\n")
    display = RichProgress(20, console=Console(file=FakeTerminal(), force_terminal=True, width=120),
                           where="runs/[demo]/1", data=data)
    drive(display, 20)
    assert display.progress.console.file.getvalue().startswith(f"training demo in runs/[demo]/1: 20 steps on {data}\n")


def test_a_huge_loss_is_shown_in_scientific_notation_not_as_a_page_of_digits():
    from rich.console import Console

    stream = io.StringIO()
    drive(PlainProgress(20, stream), 20, scale=1e300)
    assert "loss 5.0000e+298" in stream.getvalue() and "val/loss 5.0000e+299" in stream.getvalue()
    assert max(map(len, stream.getvalue().splitlines())) < 80
    display = RichProgress(20, console=Console(file=FakeTerminal(), force_terminal=True, width=120))
    drive(display, 20, scale=1e300)
    assert "loss 5.0000e+298" in display.progress.console.file.getvalue()


def test_plain_progress_shows_the_latest_evaluation_of_each_stretch():
    stream = io.StringIO()
    plugins = get_plugin_manager(autoload=False)
    run = RunContext(name="demo", config={}, run_dir=None, plugin_manager=plugins.pm)
    display = PlainProgress(100, stream)  # a line every 5 steps
    run.register(display)
    run.hook.nnframe_run_start(run=run)
    for step in range(1, 13):
        run.hook.nnframe_step_end(run=run, metrics=StepMetrics(step, 0, 1.0, 0.1))
        if step in (3, 4, 7, 10, 12):  # 10 falls on a line and supersedes 7; 12 is on none before the end
            run.hook.nnframe_evaluation_end(run=run, metrics=EvalMetrics(step, 0, step / 100, 0.5))
    run.hook.nnframe_run_end(run=run, status="interrupted", summary={})
    lines = [line.split("  ")[0] for line in stream.getvalue().splitlines()[1:]]
    assert lines == ["step 5/100", "step 4", "step 10/100", "step 10", "step 12"]
    assert "step 4  val/loss 0.0400  val/accuracy 0.5000" in stream.getvalue()


def test_plain_progress_shows_one_validation_line_per_step_line_when_evaluating_every_few_steps():
    stream = io.StringIO()
    plugins = get_plugin_manager(autoload=False)
    run = RunContext(name="demo", config={}, run_dir=None, plugin_manager=plugins.pm)
    run.register(PlainProgress(3015, stream))  # a line every 151 steps; evaluations every 45, as digits
    run.hook.nnframe_run_start(run=run)
    for step in range(1, 3016):
        run.hook.nnframe_step_end(run=run, metrics=StepMetrics(step, step // 45, 1.0, 0.1))
        if step % 45 == 0:
            run.hook.nnframe_evaluation_end(run=run, metrics=EvalMetrics(step, step // 45, step / 1e4, 0.5))
    run.hook.nnframe_run_end(run=run, status="completed", summary={})
    lines = stream.getvalue().splitlines()[1:]
    step_lines = [line for line in lines if "/3015" in line]
    assert len(step_lines) == 20 and len(lines) == 2 * len(step_lines)
    assert lines[lines.index(step_lines[2]) + 1].startswith("step 450  val/loss 0.0450")  # the latest before 453
    assert lines[lines.index(step_lines[0]) + 1].startswith("step 135  val/loss")
    assert lines[-2:] == [step_lines[-1], "step 3015  val/loss 0.3015  val/accuracy 0.5000"]


def test_rich_progress_shows_the_latest_evaluation():
    from rich.console import Console

    display = RichProgress(50, console=Console(file=FakeTerminal(), force_terminal=True, width=160))
    drive(display, 50)
    assert "val/loss 0.5000  val/accuracy 0.7500" in display.progress.console.file.getvalue()


def test_rich_progress_shows_a_validation_with_the_step_it_was_measured_at():
    """Step lines are drawn at most every 0.1 s; a validation coming between them brings its own step along."""
    from rich.console import Console

    display = RichProgress(50, console=Console(file=FakeTerminal(), force_terminal=True, width=160))
    run = RunContext(name="demo", config={}, run_dir=None, plugin_manager=get_plugin_manager(autoload=False).pm)
    display.nnframe_run_start(run)
    for step in range(1, 11):  # within 0.1 s: only the first is drawn
        display.nnframe_step_end(run, StepMetrics(step, 0, 1 / step, 0.1))
    display.nnframe_evaluation_end(run, EvalMetrics(10, 1, 0.5, 0.75))
    (task,) = display.progress.tasks
    assert (task.completed, task.fields["loss"]) == (10, "0.1000")
    display.nnframe_run_end(run, "completed", {})


@pytest.mark.parametrize("steps", [19, 39, 41, 3015])
def test_plain_progress_prints_at_most_twenty_step_lines_and_always_the_last(steps):
    stream = io.StringIO()
    drive(PlainProgress(steps, stream), steps)
    step_lines = [line for line in stream.getvalue().splitlines() if f"/{steps}  epoch" in line]
    assert len(step_lines) <= PLAIN_LINES and step_lines[-1].startswith(f"step {steps}/{steps}")


class ClosingPipe(io.StringIO):
    """A pipe whose reader quits after the first line, as ``| head -1`` does."""

    def write(self, text: str) -> int:
        if self.getvalue():
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_a_long_runs_pipe_gets_a_step_line_at_least_every_minute(monkeypatch):
    import nnframe.progress as progress

    clock = iter(range(0, 10**6, 31))  # 31 s between two readings: a line every other step, beyond the twenty
    monkeypatch.setattr(progress.time, "perf_counter", lambda: float(next(clock)))
    stream = io.StringIO()
    drive(PlainProgress(400, stream), 400)
    steps = [int(line.split()[1].split("/")[0]) for line in stream.getvalue().splitlines()
             if line.startswith("step ") and "/" in line.split()[1]]
    assert steps[:3] == [2, 4, 6] and steps[-1] == 400
    assert all(later - earlier <= 2 for earlier, later in zip(steps, steps[1:]))


def test_a_pipe_whose_reader_quit_stops_the_display_not_the_run():
    stream = ClosingPipe()
    display = PlainProgress(200, stream)
    drive(display, 200)  # raised out of the hooks before, failing the run
    assert stream.getvalue() == "training demo: 200 steps\n" and display.stream is None


def test_no_stdout_at_all_shows_no_progress(monkeypatch):
    monkeypatch.setattr("sys.stdout", None)
    assert make_progress(100, quiet=False) is None


def test_a_validation_shows_the_accuracy_or_else_the_rmse() -> None:
    assert validation_text(EvalMetrics(4, 0, 0.5, 0.75)) == "val/loss 0.5000  val/accuracy 0.7500"
    assert validation_text(EvalMetrics(4, 0, 0.5, None, rmse=1.0, mae=0.8)) == ("val/loss 0.5000  val/rmse 1.0000  "
                                                                               "val/mae 0.8000")
    assert validation_text(EvalMetrics(4, 0, 0.5, None)) == "val/loss 0.5000"

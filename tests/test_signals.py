"""SIGINT and SIGTERM: finish the step, save, exit 130 / 143 with an "interrupted" summary, and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.experiments import assert_same_arrays, write_experiment
from fixtures.console import NNFRAME
from nnframe.checkpoint import latest_checkpoint
from nnframe.errors import raise_terminated
from nnframe.hookspecs import hookimpl
from nnframe.launch import train as launch_train
from nnframe.plugins import get_plugin_manager
from nnframe.run_listing import list_runs
from nnframe.train import Interrupted

CONFIG = {
    "name": "tiny",
    "seed": 5,
    "data": {"type": "spiral", "points_per_class": 30, "classes": 3, "val_fraction": 0.2},
    "model": [{"type": "affine", "out": 8}, {"type": "tanh"}, {"type": "affine", "out": 3}],
    "loss": {"type": "softmax_cross_entropy"},
    "optimizer": {"type": "momentum", "lr": 0.1},
    "train": {"max_steps": 40, "batch_size": 10},
    "log": {"every": 1, "tensorboard": False},
    "checkpoint": {"every": 2, "keep": 2},
}
SIGNALS = pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                                  ids=["SIGINT", "SIGTERM"])


def write_config(tmp_path: Path, **sections: Any) -> Path:
    return write_experiment(tmp_path, CONFIG, **sections)


class SignalAt:
    """Sends this process ``signum`` ``times`` times at the end of optimizer step ``step``; records losses."""

    def __init__(self, step: int | None = None, signum: int = signal.SIGINT, times: int = 1) -> None:
        self.step, self.signum, self.times = step, signum, times
        self.losses: list[tuple[int, float]] = []

    @hookimpl
    def nnframe_step_end(self, run, metrics) -> None:
        self.losses.append((metrics.step, metrics.loss))
        if metrics.step == self.step:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


def run_in_process(config: Path, runs_dir: Path, plugin: SignalAt, resume: Path | None = None,
                   overrides: tuple[str, ...] = ()) -> Path:
    plugins = get_plugin_manager()
    plugins.pm.register(plugin)
    return launch_train(config, list(overrides), plugins, runs_dir=runs_dir, resume=resume, quiet=True).run_dir


def only_run(runs_dir: Path) -> Path:
    (run_dir,) = (runs_dir / "tiny").iterdir()
    return run_dir


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def signals_as_it_starts(monkeypatch: pytest.MonkeyPatch, method: str, signum: int = signal.SIGINT) -> None:
    """Sends this process ``signum`` as ``RunDirectory.<method>`` starts, then lets it run."""
    from nnframe.tracking import RunDirectory

    real = getattr(RunDirectory, method)

    def signalled(self, *args, **kwargs):
        os.kill(os.getpid(), signum)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RunDirectory, method, signalled)


def assert_saved_at_13(runs_dir: Path) -> None:
    """The run stopped at step 13 has its checkpoint of that step and a summary that says so."""
    run_dir = only_run(runs_dir)
    assert latest_checkpoint(run_dir / "checkpoints").step == 13
    assert (summary(run_dir)["status"], summary(run_dir)["steps"]) == ("interrupted", 13)


# ------------------------------------------------------------------------- in process


@SIGNALS
def test_signal_finishes_the_step_saves_and_resumes_exactly(tmp_path: Path, signum: int, code: int) -> None:
    config = write_config(tmp_path)
    straight = SignalAt()
    straight_dir = run_in_process(config, tmp_path / "a", straight)
    stopper = SignalAt(step=13, signum=signum)
    handler = signal.getsignal(signum)
    with pytest.raises(Interrupted) as info:  # in the main process, even under SIGTERM's default action
        run_in_process(config, tmp_path / "b", stopper)
    assert signal.getsignal(signum) is handler
    assert info.value.exit_code == code
    run_dir = only_run(tmp_path / "b")
    assert (summary(run_dir)["status"], summary(run_dir)["steps"]) == ("interrupted", 13)
    assert latest_checkpoint(run_dir / "checkpoints").step == 13  # off the every-2 grid: saved on interruption
    resumed = SignalAt()
    run_in_process(config, tmp_path / "b", resumed, resume=run_dir)
    assert stopper.losses + resumed.losses == straight.losses
    assert summary(run_dir)["status"] == "completed"
    assert_same_arrays(latest_checkpoint(run_dir / "checkpoints").arrays,
                       latest_checkpoint(straight_dir / "checkpoints").arrays)


@SIGNALS
def test_a_signal_the_process_ignores_stays_ignored_in_training(tmp_path: Path, signum: int, code: int) -> None:
    """A shell starts a background job (``nnframe train ... &``) with Ctrl-C ignored: the run keeps that."""
    before = signal.signal(signum, signal.SIG_IGN)
    try:
        run_dir = run_in_process(write_config(tmp_path), tmp_path / "runs", SignalAt(step=3, signum=signum, times=2))
        assert signal.getsignal(signum) is signal.SIG_IGN
    finally:
        signal.signal(signum, before)
    assert (summary(run_dir)["status"], summary(run_dir)["steps"]) == ("completed", 40)


def test_the_curves_of_an_interrupted_run_reach_its_last_step_and_join_the_resumes(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    config = write_config(tmp_path, log={"every": 5, "tensorboard": True})
    with pytest.raises(Interrupted):
        run_in_process(config, tmp_path / "runs", SignalAt(step=13))
    run_dir = only_run(tmp_path / "runs")

    def steps(tag: str) -> list[int]:
        events = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0})
        events.Reload()
        return [event.step for event in events.Scalars(tag)]

    assert steps("train/loss") == [5, 10, 13] and steps("grad_norm/global") == [5, 10, 13]
    run_in_process(config, tmp_path / "runs", SignalAt(), resume=run_dir)
    assert steps("train/loss") == [5, 10, 13, 15, 20, 25, 30, 35, 40]


class FailsToLogStep13:
    @hookimpl
    def nnframe_log_metrics(self, run, metrics) -> None:
        if metrics.step == 13:
            raise OSError(28, "No space left on device", "events.out.tfevents")


def test_a_logger_failing_on_the_stopped_step_leaves_the_stop_and_its_checkpoint(tmp_path: Path) -> None:
    plugins = get_plugin_manager()
    plugins.pm.register(SignalAt(step=13))
    plugins.pm.register(FailsToLogStep13())
    config = write_config(tmp_path, log={"every": 5, "tensorboard": False})
    with pytest.raises(Interrupted) as caught:
        launch_train(config, [], plugins, runs_dir=tmp_path / "runs", quiet=True)
    assert str(caught.value).startswith("interrupted by SIGINT (logging the step it stopped at failed: OSError(28, "
                                        "'No space left on device')); the run is in ")
    assert_saved_at_13(tmp_path / "runs")


class StopsAt13:
    @hookimpl
    def nnframe_step_end(self, run, metrics) -> None:
        if metrics.step == 13:
            run.stop("enough")


def test_a_logger_failing_on_a_plugins_stop_step_fails_the_run_after_saving_it(tmp_path: Path) -> None:
    plugins = get_plugin_manager()
    plugins.pm.register(StopsAt13())
    plugins.pm.register(FailsToLogStep13())
    config = write_config(tmp_path, log={"every": 5, "tensorboard": False})
    with pytest.raises(OSError, match="No space left on device"):
        launch_train(config, [], plugins, runs_dir=tmp_path / "runs", quiet=True)
    run_dir = only_run(tmp_path / "runs")
    assert latest_checkpoint(run_dir / "checkpoints").step == 13
    assert (summary(run_dir)["status"], summary(run_dir)["steps"]) == ("failed", 13)


class TermDuringSave:
    """Sends this process SIGTERM as the Ctrl-C's checkpoint is being saved, as a pool's terminate() does."""

    @hookimpl
    def nnframe_checkpoint(self, run) -> None:
        if run.step == 13:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_sigterm_on_the_heels_of_a_ctrl_c_waits_for_its_checkpoint_and_sets_the_exit_code(tmp_path: Path) -> None:
    """Under the command line's SIGTERM handler (which raises ``Terminated``) the stop still ends the run, with its
    resume command, as SIGTERM's: exit 143."""
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        plugins = get_plugin_manager()
        plugins.pm.register(SignalAt(step=13))
        plugins.pm.register(TermDuringSave())
        with pytest.raises(Interrupted, match=r"^interrupted by SIGTERM; the run is in .*continue it with") as caught:
            launch_train(write_config(tmp_path), [], plugins, runs_dir=tmp_path / "runs", quiet=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert caught.value.exit_code == 143
    assert_saved_at_13(tmp_path / "runs")


WORKER = """
import os, signal, sys
import nnframe

class IntThenTermDuringSave:
    @nnframe.hookimpl
    def nnframe_step_end(self, run, metrics):
        if metrics.step == 13:
            os.kill(os.getpid(), signal.SIGINT)

    @nnframe.hookimpl
    def nnframe_checkpoint(self, run):
        if run.step == 13:
            os.kill(os.getpid(), signal.SIGTERM)  # as a pool's terminate() sends, with SIGTERM's default action

    @nnframe.hookimpl
    def nnframe_run_end(self, run, status, summary):
        print("run_end", status, flush=True)

def work():
    plugins = nnframe.get_plugin_manager(plugins=[("x", IntThenTermDuringSave())])
    nnframe.run_experiment(sys.argv[1], [], runs_dir=sys.argv[2], quiet=True, plugins=plugins)

if __name__ == "__main__":
    import multiprocessing
    worker = multiprocessing.Process(target=work)
    worker.start()
    worker.join()
    print("worker exit", worker.exitcode, flush=True)
"""


def test_a_worker_terminated_during_the_stops_save_dies_once_its_summary_is_written(tmp_path: Path) -> None:
    """In a process pool's worker SIGTERM keeps its default action: the process dies, but only after the
    checkpoint, the plugins' nnframe_run_end and summary.json, so the run is listed as interrupted, not killed."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    done = subprocess.run([sys.executable, str(script), str(write_config(tmp_path)), str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"run_end interrupted\nworker exit {-signal.SIGTERM}\n"
    assert_saved_at_13(tmp_path / "runs")


TERMINATED_WORKER = """
import os, signal, sys
import nnframe

class TermAt13:
    @nnframe.hookimpl
    def nnframe_step_end(self, run, metrics):
        if metrics.step == 13:
            os.kill(os.getpid(), signal.SIGTERM)  # a pool's terminate() while the worker trains

    @nnframe.hookimpl
    def nnframe_run_end(self, run, status, summary):
        print("run_end", status, flush=True)

def work():
    plugins = nnframe.get_plugin_manager(plugins=[("x", TermAt13())])
    try:
        nnframe.run_experiment(sys.argv[1], [], runs_dir=sys.argv[2], quiet=True, plugins=plugins)
    except nnframe.Interrupted as stopped:
        print("interrupted", stopped.exit_code, flush=True)

if __name__ == "__main__":
    if sys.argv[3] == "worker":
        import multiprocessing
        worker = multiprocessing.Process(target=work)
        worker.start()
        worker.join()
        print("worker exit", worker.exitcode, flush=True)
    else:
        work()
        print("survived", flush=True)
"""


@pytest.mark.parametrize("where, said", [
    ("worker", f"run_end interrupted\nworker exit {-signal.SIGTERM}\n"),
    ("main", "run_end interrupted\ninterrupted 143\nsurvived\n"),
])
def test_a_run_sigterm_stops_saves_then_ends_a_worker_but_not_a_main_process(tmp_path: Path, where: str,
                                                                            said: str) -> None:
    """A pool's terminate() waits for its workers to die, and one that stopped on SIGTERM and lived on hung it;
    a script or a notebook catches nnframe.Interrupted and goes on."""
    script = tmp_path / "worker.py"
    script.write_text(TERMINATED_WORKER)
    done = subprocess.run([sys.executable, str(script), str(write_config(tmp_path)), str(tmp_path / "runs"), where],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == said, done.stderr
    assert_saved_at_13(tmp_path / "runs")


class CtrlCsDuringSave:
    """Two more Ctrl-Cs as the stop's checkpoint is saved: the first is held, the second breaks out."""

    @hookimpl
    def nnframe_checkpoint(self, run) -> None:
        if run.step == 13:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)


def test_a_third_ctrl_c_breaks_out_of_a_stop_that_hangs(tmp_path: Path) -> None:
    plugins = get_plugin_manager()
    plugins.pm.register(SignalAt(step=13))
    plugins.pm.register(CtrlCsDuringSave())
    with pytest.raises(KeyboardInterrupt):
        launch_train(write_config(tmp_path), [], plugins, runs_dir=tmp_path / "runs", quiet=True)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_failed_stop_save_stays_the_error_when_a_sigterm_joins_it(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from nnframe.checkpoint import Checkpointer

    def full_disk(self, trainer, final=False) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        raise OSError(28, "No space left on device")

    plugins = get_plugin_manager()
    plugins.pm.register(SignalAt(step=13))
    config = write_config(tmp_path, checkpoint={"every": 0})
    monkeypatch.setattr(Checkpointer, "save", full_disk)
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        with pytest.raises(OSError, match="No space left on device") as raised:
            launch_train(config, [], plugins, runs_dir=tmp_path / "runs", quiet=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert "(SIGTERM came as the run stopped)" in raised.value.__notes__


def test_second_sigint_stops_at_once_without_saving(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with pytest.raises(KeyboardInterrupt) as caught:
        run_in_process(config, tmp_path / "runs", SignalAt(step=5, times=2))
    run_dir = only_run(tmp_path / "runs")
    assert caught.value.__notes__ == [f"(the run is in {run_dir}; resume it from its last checkpoint with --resume)"]
    assert (summary(run_dir)["status"], summary(run_dir)["saved"]) == ("interrupted", False)
    assert latest_checkpoint(run_dir / "checkpoints").step == 4  # step 5 stopped mid-way: not saved
    (record,) = list_runs(tmp_path / "runs")
    assert (record.status_text, record.steps, record.train_loss) == ("interrupted (not saved)", 4, None)
    from test_run_lock import ended_process, lock_text

    (run_dir / ".lock").write_text(lock_text(ended_process(), started="12345"), encoding="utf-8")
    (record,) = list_runs(tmp_path / "runs")  # a resume of it, killed before its first checkpoint
    assert (record.status_text, record.steps, record.train_loss) == ("killed", 4, None)


# --------------------------------------------------------------------------- the CLI


def _wait_for_checkpoint(directory: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if list(directory.glob("tiny/*/checkpoints/step-*.json")):
            return
        time.sleep(0.005)
    raise AssertionError(f"no checkpoint appeared; the process said: {process.communicate()[1]}")


@SIGNALS
def test_a_signal_while_the_run_directory_is_made_waits_for_it_then_stops_the_run(tmp_path: Path, monkeypatch,
                                                                                  signum: int, code: int) -> None:
    """A Ctrl-C just after the directory appears: it gets its whole config and overrides, then the run stops
    after its first step, saved and resumable, instead of leaving a directory with no config or half of one."""
    from nnframe.tracking import RunDirectory

    real_write_config = RunDirectory.write_config

    def signalled_write_config(self, config):
        os.kill(os.getpid(), signum)
        return real_write_config(self, config)

    monkeypatch.setattr(RunDirectory, "write_config", signalled_write_config)
    handler = signal.getsignal(signum)
    with pytest.raises(Interrupted) as info:
        run_in_process(write_config(tmp_path), tmp_path / "runs", SignalAt())
    assert signal.getsignal(signum) is handler
    assert info.value.exit_code == code
    run_dir = only_run(tmp_path / "runs")
    assert f"the run is in {run_dir}; continue it with" in str(info.value)
    assert (run_dir / "config.yaml").read_text().startswith("name: tiny")
    assert (run_dir / "overrides.yaml").is_file()
    assert (summary(run_dir)["status"], summary(run_dir)["steps"]) == ("interrupted", 1)
    assert latest_checkpoint(run_dir / "checkpoints").step == 1


@SIGNALS
def test_a_signal_while_a_resume_records_its_changes_stops_it_after_its_first_step(tmp_path: Path, monkeypatch,
                                                                                 signum: int, code: int) -> None:
    """A stop after the resume wrote its overrides entry, and before its first step, left the run's config.yaml
    changed by a resume that trained nothing, and the plain resume after it refused."""
    config = write_config(tmp_path)
    run_dir = run_in_process(config, tmp_path / "runs", SignalAt(), overrides=("train.max_steps=4",))
    signals_as_it_starts(monkeypatch, "replace_config", signum)
    with pytest.raises(Interrupted) as info:
        run_in_process(config, tmp_path / "runs", SignalAt(), resume=run_dir, overrides=("optimizer.lr=0.5",))
    assert info.value.exit_code == code and f"the run is in {run_dir}" in str(info.value)
    assert (summary(run_dir)["status"], summary(run_dir)["steps"]) == ("interrupted", 5)  # a step at the new rate
    assert latest_checkpoint(run_dir / "checkpoints").step == 5
    assert "lr: 0.5" in (run_dir / "config.yaml").read_text()


def test_a_ctrl_c_while_the_resume_command_is_made_leaves_the_message_naming_the_run(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    from nnframe import launch

    def cut_short(*args: Any) -> str:
        raise KeyboardInterrupt  # the third Ctrl-C, held by nothing: the hint re-reads configs, which takes a while

    monkeypatch.setattr(launch, "_resume_hint", cut_short)
    with pytest.raises(BaseException) as info:
        run_in_process(write_config(tmp_path), tmp_path / "runs", SignalAt(step=3))
    run_dir = only_run(tmp_path / "runs")
    stop = info.value if isinstance(info.value, Interrupted) else info.value.__context__
    assert isinstance(stop, Interrupted) and f"the run is in {run_dir}" in str(stop)
    assert summary(run_dir)["status"] == "interrupted"


def test_a_run_whose_checkpoint_could_not_be_written_is_listed_at_its_newest_one(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    """A periodic save refused by the disk failed the run at step 6: its summary said 6 steps, saved, where a
    resume goes on from step 4."""
    import errno

    from nnframe.checkpoint import Checkpointer

    real_write = Checkpointer._write

    def refused_at_6(self, stem, *args, **kwargs):
        if stem.endswith("00000006"):
            raise PermissionError(errno.EACCES, "Permission denied", stem)
        return real_write(self, stem, *args, **kwargs)

    monkeypatch.setattr(Checkpointer, "_write", refused_at_6)
    with pytest.raises(PermissionError):
        run_in_process(write_config(tmp_path), tmp_path / "runs", SignalAt())
    run_dir = only_run(tmp_path / "runs")
    assert (summary(run_dir)["status"], summary(run_dir)["steps"], summary(run_dir)["saved"]) == ("failed", 6, False)
    (record,) = list_runs(tmp_path / "runs")
    assert (record.status_text, record.steps) == ("failed (not saved)", 4)


def test_a_signal_while_a_resume_that_only_evaluates_records_its_changes_stops_it(tmp_path: Path,
                                                                                monkeypatch) -> None:
    config = write_config(tmp_path)
    with pytest.raises(Interrupted):
        run_in_process(config, tmp_path / "runs", SignalAt(step=6))
    run_dir = only_run(tmp_path / "runs")
    signals_as_it_starts(monkeypatch, "write_overrides")
    with pytest.raises(Interrupted):  # it had run its evaluation and completed, the Ctrl-C lost
        run_in_process(config, tmp_path / "runs", SignalAt(), resume=run_dir, overrides=("train.max_steps=4",))
    assert (summary(run_dir)["status"], summary(run_dir)["steps"]) == ("interrupted", 6)


def test_a_signal_while_a_resume_that_carries_out_a_stop_starts_stops_it(tmp_path: Path, monkeypatch) -> None:
    """A checkpoint saved by a Ctrl-C in the step a plugin asked to stop holds that stop, which its resume carries
    out without a step: the Ctrl-C held while it started was handed to a loop that did not run."""
    class StopsAndIsInterrupted:
        @hookimpl
        def nnframe_step_end(self, run, metrics) -> None:
            if metrics.step == 6:
                run.stop("enough")
                os.kill(os.getpid(), signal.SIGINT)

    config = write_config(tmp_path)
    with pytest.raises(Interrupted):
        run_in_process(config, tmp_path / "runs", StopsAndIsInterrupted())  # type: ignore[arg-type]
    run_dir = only_run(tmp_path / "runs")
    signals_as_it_starts(monkeypatch, "write_overrides")
    with pytest.raises(Interrupted):
        run_in_process(config, tmp_path / "runs", SignalAt(), resume=run_dir, overrides=("train.max_steps=39",))
    assert summary(run_dir)["status"] == "interrupted"


def test_a_run_that_fails_before_its_first_step_has_lost_nothing(tmp_path: Path) -> None:
    class FailsToStart:
        @hookimpl
        def nnframe_run_start(self, run) -> None:
            raise RuntimeError("no connection to the tracker")

    with pytest.raises(RuntimeError):
        run_in_process(write_config(tmp_path), tmp_path / "runs", FailsToStart())  # type: ignore[arg-type]
    run_dir = only_run(tmp_path / "runs")
    assert "saved" not in summary(run_dir)
    (record,) = list_runs(tmp_path / "runs")
    assert (record.status_text, record.steps) == ("failed", 0)


class SignalsAsItStarts:
    """Sends this process ``signum`` from ``nnframe_configure_run`` or ``nnframe_run_start``, between the making of
    the run's directory and its first step."""

    def __init__(self, hook: str, signum: int) -> None:
        self.signum = signum
        setattr(self, hook, hookimpl(lambda run: os.kill(os.getpid(), self.signum), specname=hook))


@SIGNALS
@pytest.mark.parametrize("hook", ["nnframe_configure_run", "nnframe_run_start"])
def test_a_signal_while_the_run_starts_stops_it_after_its_first_step(tmp_path: Path, signum: int, code: int,
                                                                      hook: str) -> None:
    """The handlers of the directory's making were put back before the run-start hooks ran: a signal there ended
    the run with no checkpoint and a summary of 0 steps."""
    plugins = get_plugin_manager()
    plugins.pm.register(SignalsAsItStarts(hook, signum))
    handler = signal.getsignal(signum)
    with pytest.raises(Interrupted) as info:
        launch_train(write_config(tmp_path), [], plugins, runs_dir=tmp_path / "runs", quiet=True)
    assert signal.getsignal(signum) is handler and info.value.exit_code == code
    run_dir = only_run(tmp_path / "runs")
    assert f"the run is in {run_dir}; continue it with" in str(info.value)
    assert (summary(run_dir)["status"], summary(run_dir)["steps"]) == ("interrupted", 1)
    assert latest_checkpoint(run_dir / "checkpoints").step == 1


class KeepsItsOwnHandler:
    """Sets a SIGINT handler of its own while the run starts and puts back the one it found when the run ends, as
    a plugin with a server of its own may."""

    @hookimpl
    def nnframe_run_start(self, run) -> None:
        self.found = signal.signal(signal.SIGINT, lambda signum, frame: None)

    @hookimpl
    def nnframe_run_end(self, run, status, summary) -> None:
        signal.signal(signal.SIGINT, self.found)


def test_the_handlers_from_before_the_run_are_back_after_a_plugin_put_back_the_one_it_found(tmp_path: Path) -> None:
    """It found the one that holds the signals while the run starts, which was no longer listening."""
    plugins = get_plugin_manager()
    plugins.pm.register(KeepsItsOwnHandler())
    handler = signal.getsignal(signal.SIGINT)
    launch_train(write_config(tmp_path), [], plugins, runs_dir=tmp_path / "runs", quiet=True)
    assert signal.getsignal(signal.SIGINT) is handler


class FailsToStart:
    @hookimpl
    def nnframe_run_start(self, run) -> None:
        raise RuntimeError("the logger's server is down")


def test_a_stop_held_while_the_directory_is_made_leaves_a_plugins_failure_to_start_the_error(
        tmp_path: Path, monkeypatch) -> None:
    from nnframe.tracking import RunDirectory

    real_write_config = RunDirectory.write_config

    def signalled_write_config(self, config):
        os.kill(os.getpid(), signal.SIGINT)
        return real_write_config(self, config)

    monkeypatch.setattr(RunDirectory, "write_config", signalled_write_config)
    plugins = get_plugin_manager()
    plugins.pm.register(FailsToStart())
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(RuntimeError, match="the logger's server is down"):
        launch_train(write_config(tmp_path), [], plugins, runs_dir=tmp_path / "runs", quiet=True)
    assert signal.getsignal(signal.SIGINT) is handler
    assert summary(only_run(tmp_path / "runs"))["status"] == "failed"


@SIGNALS
def test_the_cli_keeps_a_signal_it_was_started_ignoring(tmp_path: Path, signum: int, code: int) -> None:
    """``nnframe train ... &`` in a script starts with Ctrl-C ignored: the command runs to its end."""
    config = write_config(tmp_path, train={"max_steps": 3000})

    def ignored() -> None:
        signal.signal(signum, signal.SIG_IGN)
    process = subprocess.Popen([NNFRAME, "train", str(config), "--runs-dir", "runs", "-q"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ignored)
    _wait_for_checkpoint(tmp_path / "runs", process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert summary(only_run(tmp_path / "runs"))["steps"] == 3000


@SIGNALS
def test_cli_exit_code_summary_checkpoint_and_resume(tmp_path: Path, signum: int, code: int) -> None:
    config = write_config(tmp_path, train={"max_steps": 100_000})
    process = subprocess.Popen([NNFRAME, "train", str(config), "--runs-dir", "runs", "-q"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_checkpoint(tmp_path / "runs", process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert f"error: interrupted by {signal.Signals(signum).name}" in stderr
    run_dir = only_run(tmp_path / "runs")
    shown = run_dir.relative_to(tmp_path)
    assert f"the run is in {shown}; continue it with: nnframe train {config} --resume {shown}" in stderr
    stopped = summary(run_dir)
    assert stopped["status"] == "interrupted"
    assert latest_checkpoint(run_dir / "checkpoints").step == stopped["steps"] < 100_000
    total = f"train.max_steps={stopped['steps'] + 30}"
    resumed = subprocess.run([NNFRAME, "train", str(config), total, "--resume", str(run_dir), "-q"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert (summary(run_dir)["status"], summary(run_dir)["steps"]) == ("completed", stopped["steps"] + 30)
    straight_dir = run_in_process(config, tmp_path / "straight", SignalAt(), overrides=(total,))
    assert_same_arrays(latest_checkpoint(run_dir / "checkpoints").arrays,
                       latest_checkpoint(straight_dir / "checkpoints").arrays)


CTRL_C_WHILE_TYPER_BUILDS_THE_COMMANDS = (
    "import os, signal, sys\n"
    "import typer.main\n"
    "real = typer.main.get_command\n"
    "def get_command(*args, **kwargs):\n"
    "    os.kill(os.getpid(), signal.SIGINT)\n"
    "    return real(*args, **kwargs)\n"
    "typer.main.get_command = get_command\n"
    "from nnframe.cli import main\n"
    "sys.argv = ['nnframe', '--help']\n"
    "main()\n"
)
CTRL_C_WHILE_THE_CLI_IS_IMPORTED = (  # through the installed console script's entry point, as typer loads
    "import sys\n"
    "class CtrlC:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'typer':\n"
    "            raise KeyboardInterrupt\n"
    "sys.meta_path.insert(0, CtrlC())\n"
    "from importlib.metadata import entry_points\n"
    "(command,) = [ep for ep in entry_points(group='console_scripts') if ep.name == 'nnframe']\n"
    "sys.argv = ['nnframe', '--help']\n"
    "command.load()()\n"
)


@pytest.mark.parametrize("script", [CTRL_C_WHILE_TYPER_BUILDS_THE_COMMANDS, CTRL_C_WHILE_THE_CLI_IS_IMPORTED],
                         ids=["typer builds the commands", "the CLI is imported"])
def test_ctrl_c_before_a_command_runs_stops_with_130_and_no_traceback(tmp_path: Path, script: str) -> None:
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stderr, result.stdout) == (130, "error: interrupted\n", "")


def test_sigterm_while_starting_up_stops_with_143_and_a_message(tmp_path: Path) -> None:
    """Before training installs its own handler (here while the config is built), SIGTERM is a clean stop."""
    config = write_config(tmp_path)
    script = (
        "import os, signal, sys\n"
        "import nnframe.launch as launch\n"
        "real = launch.prepare\n"
        "def prepare(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real(*args, **kwargs)\n"
        "launch.prepare = prepare\n"
        "from nnframe.cli import main\n"
        f"sys.argv = ['nnframe', 'train', {str(config)!r}, '--runs-dir', {str(tmp_path / 'runs')!r}, '-q']\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stderr) == (143, "error: interrupted by SIGTERM\n")
    assert not (tmp_path / "runs").exists()

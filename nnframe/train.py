"""The training loop: mini-batches, forward, backward, update; evaluation; events for plugins.

One :class:`Trainer` runs one experiment. It owns no I/O of its own: loggers,
progress displays and checkpointing are reached through the run's hooks and an
optional checkpointer, so the loop stays short and the same for every run.
"""

from __future__ import annotations

import math
import multiprocessing
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from nnframe.batches import BatchIterator
from nnframe.divergence import handle_nonfinite
from nnframe.error_measures import ErrorSums, batch_errors
from nnframe.errors import NNFrameError, NonFiniteError, PluginStateError, Terminated, mention
from nnframe.first_update import checked_update
from nnframe.gradients import CLIP_EPS, clip_grad_norm, global_norm, norms_of
from nnframe.held_signals import HeldSignals, not_ignored
from nnframe.hook_calls import HoldingExit, call_each, call_holding_exit
from nnframe.run import EvalMetrics, RunContext, StepMetrics

if TYPE_CHECKING:
    from nnframe.build import Experiment

EVAL_CHUNK = 4096
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupted(NNFrameError):
    """Training stopped on SIGINT or SIGTERM after saving its state."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = EXIT_CODES.get(signum, 130)
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    def joined_by_sigterm(self) -> None:
        """A SIGTERM came while the stop saved the run (a process pool's ``terminate()``): it ends as SIGTERM's."""
        before = f"interrupted by {signal.Signals(self.signum).name}"
        self.signum, self.exit_code = signal.SIGTERM, EXIT_CODES[signal.SIGTERM]
        self.args = (str(self).replace(before, "interrupted by SIGTERM", 1),)


class Trainer:
    """Trains ``experiment.model`` on its dataset with its loss and optimizer.

    ``step`` counts optimizer steps (the first step is 1). A checkpointer, if
    given, is asked after every step and every evaluation whether to save, and
    may restore a trainer's state before :meth:`fit` for a resume.
    """

    def __init__(self, experiment: Experiment, run: RunContext, checkpointer: Any = None) -> None:
        self.experiment = experiment
        self.settings = experiment.settings
        self.run = run
        self.model = experiment.model
        self.loss = experiment.loss
        self.optimizer = experiment.optimizer
        self.dataset = experiment.dataset
        self.checkpointer = checkpointer
        train = self.settings.train
        self.batches = BatchIterator(self.dataset.n_train, train.batch_size, experiment.streams.shuffle,
                                     drop_last=train.drop_last, shuffle=train.shuffle)
        self.total_steps = planned_steps(train, self.batches.batches_per_epoch)
        self.step = 0
        self.skipped_steps = 0
        self.base_lr = float(self.optimizer.lr)
        self.schedule = self.settings.optimizer.schedule
        self.schedule.check(self.total_steps)
        self.last_eval: EvalMetrics | None = None
        self.ended = False
        """Whether the loop has ended: the final evaluation and checkpoint follow, a plugin's stop carried out."""
        self.last_step: StepMetrics | None = None
        self._last_batch: tuple[np.ndarray, np.ndarray, float] | None = None
        self._mid_step = False
        """True from a step's batch until its counters are updated: a checkpoint of that moment would be torn."""
        self._exit: SystemExit | None = None
        """A hook's ``sys.exit()`` (Ray Tune stopping a trial), held until its step is finished, as a Ctrl-C is."""
        self._stop_signal: int | None = None
        self._held: HeldSignals | None = None
        self.caller_releases_signals = False
        """Set by a caller that writes ``summary.json`` after :meth:`fit` and then calls :meth:`release_signals`."""
        self.held_signals: HeldSignals | None = None
        """SIGINT and SIGTERM a caller holds from before :meth:`fit` (while it makes the run's directory): one
        that came meanwhile stops the run after its first step, as one during it would."""
        self._log_every = self.settings.log.every
        self._log_grad_norms = self.settings.log.grad_norms
        self._clip = train.clip_grad_norm
        self._step_end = HoldingExit(run.plugin_manager.hook.nnframe_step_end)
        self._log_metrics = HoldingExit(run.plugin_manager.hook.nnframe_log_metrics)
        self.optimizer.bind(self.model.param_names, self.model.params)
        self._whole_grads = self.model.stored_grads
        self._grad_norms = norms_of(self.model.param_names, self.model.grads)
        self._update = self._first_update
        run.model, run.optimizer = self.model, self.optimizer

    # ------------------------------------------------------------------ loop

    def fit(self) -> dict[str, Any]:
        """Train until the configured length; returns the summary. Raises on divergence or interruption.

        A plugin's error in ``nnframe_run_end`` while another error ends the
        run (a divergence, a Ctrl-C) is named in that error, which stays the
        one that ends the command.
        """
        hook = self.run.hook
        self.run.step = self.step
        status, ending, final = "failed", None, None
        started = time.perf_counter()
        try:
            for callback in self.experiment.callbacks:
                self.run.register(callback)
            hook.nnframe_configure_run(run=self.run)
            hook.nnframe_run_start(run=self.run)
            with self._signals(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                self._loop()
                final = self.measure(self.dataset.x, self.dataset.y)  # a Ctrl-C here waits for it, as for a step
            status = "completed"
        except BaseException as exc:
            ending, status = exc, _status_after(exc)
            if isinstance(exc, Interrupted):
                # a SIGTERM on the heels of a Ctrl-C (a pool's terminate) waits; a third Ctrl-C does not
                self._held = HeldSignals(sigints=1 if exc.signum == signal.SIGINT else 2)
                if exc.signum == signal.SIGTERM and in_worker_process():  # its default action then ends the
                    self._held.caught.append(signal.SIGTERM)  # worker, which a pool's terminate() waits for
                try:
                    self._save_interrupted(exc)
                except BaseException as failed_save:
                    ending = failed_save
                    raise
            elif stops_the_run(exc) and not self._mid_step:
                try:  # a hook's sys.exit(), as Ray Tune's scheduler stops a trial: saved as a stop is
                    self._save_checkpoint(final=True)
                except BaseException as failed_save:
                    ending = failed_save
                    raise
            raise
        finally:
            self.run.summary.update(self._summary(status, time.perf_counter() - started, final))
            if isinstance(ending, (KeyboardInterrupt, Terminated)) or self._ended_unsaved(status):
                self.run.summary["saved"] = False  # a resume goes on from the newest checkpoint, before this step
            try:
                call_each(hook.nnframe_run_end, run=self.run, status=status, summary=self.run.summary)
            except (Exception, SystemExit) as hook_error:
                if ending is None:
                    raise
                if not _same_storage_failure(ending, hook_error):  # a full disk fails every logger's close too
                    mention(ending, f"a plugin's nnframe_run_end failed too: {hook_error!r}")
            finally:
                self.run.unregister_all()
                if not self.caller_releases_signals:
                    self.release_signals(ending)
        if self._exit is not None:  # held through the run's last step: it completed, then this goes on
            raise self._exit
        return self.run.summary

    def _ended_unsaved(self, status: str) -> bool:
        """Whether a run that failed, or was stopped and could not save, ended past its newest checkpoint (a second
        Ctrl-C's run is unsaved whatever its status; one that trained no step has nothing to lose, and a diverged
        one's steps are where it diverged)."""
        saved_step = getattr(self.checkpointer, "saved_step", self.step)
        return status in ("failed", "interrupted") and self.step > (saved_step or 0)

    def release_signals(self, ending: BaseException | None = None) -> None:
        """Deliver the SIGINT and SIGTERM held since a Ctrl-C or SIGTERM stopped the run, once its checkpoint,
        its plugins' ``nnframe_run_end`` and (where :attr:`caller_releases_signals`, the caller's) summary are
        written.

        In a worker process (``multiprocessing``, ``concurrent.futures``) a SIGTERM with its default action
        ends the process, as a pool's ``terminate()`` waits for. Elsewhere, and where a handler raises (the
        command line's SIGTERM handler, a second Ctrl-C), ``ending``, what ended the run, stays the error: a
        stop, with its resume command (a SIGTERM makes its exit code 143), or a save that failed, with the
        signal named under it.
        """
        held, self._held = self._held, None
        if held is None:
            return
        try:
            held.release(default_sigterm_ends_process=in_worker_process())
        except (KeyboardInterrupt, Terminated) as late:
            if ending is None:
                raise
            if isinstance(ending, Interrupted):
                if isinstance(late, Terminated):
                    ending.joined_by_sigterm()
            else:
                mention(ending, f"{'SIGTERM' if isinstance(late, Terminated) else 'a Ctrl-C'} came as the run "
                                "stopped")
            raise ending from None

    def _save_interrupted(self, interrupted: Interrupted) -> None:
        """The final checkpoint of a Ctrl-C or SIGTERM stop; a plugin's failing checkpoint hook is named in the
        interruption, which stays what ends the run, and its resume hint with it."""
        try:
            self._save_checkpoint(final=True)
        except (Exception, SystemExit) as exc:
            if not getattr(exc, "checkpoint_saved", False):
                raise
            if isinstance(exc, PluginStateError):  # what run.state held that a checkpoint cannot
                mention(interrupted, "; ".join([str(exc), *getattr(exc, "__notes__", [])]))
            else:
                mention(interrupted, f"a plugin's nnframe_checkpoint failed too: {exc!r}")

    def _loop(self) -> None:
        """Steps until done. numpy's overflow warnings are silenced: a non-finite loss or
        gradient is reported once, by :meth:`_nonfinite`, naming the step and the parameter."""
        steps_left = self.step < self.total_steps and self.run.stop_reason is None
        if self._stop_signal is not None and not steps_left:  # held while a resume that only evaluates, or carries
            raise self._interrupted()  # out a stop, started: stopped before that, as a training run after its step
        while self.step < self.total_steps and self.run.stop_reason is None:
            self.fit_step()
        self.ended = True
        failed_log: Exception | None = None
        if self.run.stop_reason is not None:
            try:
                self._log_stopped_step()
            except Exception as exc:  # raised once the run is saved, as a Ctrl-C's stop saves it
                failed_log = exc
        if self.last_eval is None or self.last_eval.step != self.step:
            self.evaluate(scheduled=False)
        try:
            self._save_checkpoint(final=True)
        except SystemExit as exc:  # from a plugin's nnframe_checkpoint, once the checkpoint is written
            self._hold_exit(exc)
        if failed_log is not None:
            raise failed_log

    def fit_step(self) -> None:
        """One turn of :meth:`fit`'s loop: :meth:`train_step`, then the evaluation and the checkpoint due at
        its step, and the stop a signal or a hook asked for: what each step of a run costs, where it is timed."""
        eval_every = self.settings.train.eval_every
        epoch_before = self.batches.epoch
        self.train_step()
        epoch_done = self.batches.epoch != epoch_before
        if (eval_every and self.step % eval_every == 0) or (not eval_every and epoch_done):
            self.evaluate()
        if self.checkpointer is not None:
            try:
                self.checkpointer.after_step(self)
            except SystemExit as exc:  # from a plugin's nnframe_checkpoint, once the checkpoint is written
                self._hold_exit(exc)
        if self._stop_signal is not None:
            raise self._interrupted()
        if self._exit is not None and self.step < self.total_steps and self.run.stop_reason is None:
            raise self._exit  # a run that ends with this step ends first, and is raised from after its summary

    def train_step(self) -> StepMetrics:
        """One optimizer step on the next mini-batch."""
        model, loss_node = self.model, self.loss
        self._mid_step = True
        index = self.batches.next_batch()
        x, t = self.dataset.x.take(index, axis=0), self.dataset.y[index]  # spiral's: 0.21 us, x[index] 0.93
        out = model.forward(x)
        loss = float(loss_node.forward(out, t))
        model.backward(loss_node.backward(1.0))
        step = self.step + 1
        logged = step % self._log_every == 0 or step == self.total_steps
        grads = model.grads
        lr = self.schedule.lr_at(step - 1, self.base_lr, self.total_steps)
        metrics = StepMetrics(step, self.batches.epoch, loss, lr, logged)
        if logged and self._log_grad_norms:
            metrics.grad_norms = self._grad_norms()
        if logged and self._log_grad_norms and not self._clip:
            total_norm = metrics.grad_norms["global"]
        else:  # clipping scales by this norm: it must not depend on which steps are logged
            total_norm = global_norm(self._whole_grads)
        if logged:
            self._measure_batch(metrics, out, t)
        if not (math.isfinite(loss) and math.isfinite(total_norm)):
            try:
                handle_nonfinite(self, step, loss, x)
            except NonFiniteError as diverged:
                try:
                    self._log_failed_step(metrics, out, t)
                except (Exception, SystemExit) as exc:  # the divergence stays what ends the run
                    mention(diverged, f"logging the failed step failed too: {exc!r}")
                raise
            metrics.skipped = True
        else:
            if self._clip:
                clip_grad_norm(self._whole_grads, self._clip, total_norm)
            self.optimizer.lr = lr
            self._update(model.params, grads)
        self.step = self.run.step = step
        self.run.epoch = self.batches.epoch
        self._mid_step = False
        self.last_step = metrics
        self._last_batch = (out, t, total_norm)
        if self._step_end.caller.get_hookimpls():
            self._hold_exit(self._step_end(self.run, metrics))
        if logged:
            self._hold_exit(self._log_metrics(self.run, metrics))
        return metrics

    def _hold_exit(self, exc: SystemExit | None) -> None:
        """Keep a hook's ``sys.exit()`` (code 0 or none) until the step is done, evaluated and checkpointed, so that
        it stops the run as a Ctrl-C does; one with another code is a failure, raised at once."""
        if exc is None:
            return
        if not stops_the_run(exc):
            raise exc
        if self._exit is None:
            self._exit = exc

    def _interrupted(self) -> Interrupted:
        """The stop of a Ctrl-C or SIGTERM, its step logged first so that the curves reach the step the run is saved
        at; a logger failing there is named in the stop, which still saves the run."""
        interrupted = Interrupted(self._stop_signal)
        try:
            self._log_stopped_step()
        except (Exception, SystemExit) as exc:
            mention(interrupted, f"logging the step it stopped at failed: {exc!r}")
        return interrupted

    def _log_stopped_step(self) -> None:
        """Log the step a plugin's stop or a Ctrl-C or SIGTERM ended the run at, off the ``log.every`` grid, so that
        every curve, and the HParams tab's last values, reach the run's end. Its gradients are still there, clipped
        where the step clipped them, so their norms are scaled back to the step's own, before clipping."""
        metrics, batch = self.last_step, self._last_batch
        if metrics is None or metrics.logged or batch is None:
            return
        out, t, total_norm = batch
        metrics = replace(metrics, logged=True)
        if self._log_grad_norms:  # a skipped step's gradients were left as they were
            metrics.grad_norms = self._norms_before_clipping(total_norm, clipped=not metrics.skipped)
        self._measure_batch(metrics, out, t)
        self._hold_exit(self._log_metrics(self.run, metrics))

    def _norms_before_clipping(self, total_norm: float, clipped: bool) -> dict[str, float]:
        norms = self._grad_norms()
        rate = self._clip / (total_norm + CLIP_EPS) if clipped and self._clip and math.isfinite(total_norm) else 1.0
        if rate < 1.0:
            norms = {name: value / rate for name, value in norms.items()}
        norms["global"] = total_norm
        return norms

    def _log_failed_step(self, metrics: StepMetrics, out: np.ndarray, t: np.ndarray) -> None:
        """Log the step a run diverged at, whatever ``log.every``: its curve then ends where it blew up, not at
        the last healthy logged point."""
        metrics.logged = True
        if self._log_grad_norms and metrics.grad_norms is None:
            metrics.grad_norms = self._grad_norms()
        if metrics.accuracy is None and metrics.rmse is None:
            self._measure_batch(metrics, out, t)
        self._log_metrics.caller(run=self.run, metrics=metrics)

    def _measure_batch(self, metrics: StepMetrics, out: np.ndarray, t: np.ndarray) -> None:
        """A logged step's accuracy, or, in a run that measures none, its error measures, on the batch."""
        if self.experiment.classification:
            metrics.accuracy = accuracy(out, t)
        else:
            metrics.rmse, metrics.mae = batch_errors(self.loss, out, t)

    def _first_update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """The optimizer's first update in this process, checked (:func:`~nnframe.first_update.checked_update`);
        later ones go straight to it."""
        self._update = self.optimizer.update
        checked_update(self.optimizer, self.settings.optimizer.type, self.model.param_names, params, grads)
        self.model.named_state()  # a node that rebinds its state to another dtype or shape is told at its first step

    # ------------------------------------------------------------ evaluation

    def restore_last_eval(self, saved: Any) -> None:
        """The evaluation a checkpoint recorded (``asdict`` of one), so that a resume neither loses it from the
        summary nor evaluates the same step again; anything else (an older checkpoint has none) means none."""
        try:
            metrics = EvalMetrics(**saved)
        except TypeError:
            metrics = None
        valid = metrics is not None and isinstance(metrics.step, int) and 0 <= metrics.step <= self.step
        self.last_eval = metrics if valid else None

    def evaluate(self, scheduled: bool = True) -> EvalMetrics | None:
        """Loss and accuracy on the validation set, in eval mode; ``None`` without one."""
        if self.dataset.x_val is None:
            return None
        measured = self.measure(self.dataset.x_val, self.dataset.y_val)
        self.last_eval = EvalMetrics(self.step, self.batches.epoch, measured.loss, measured.accuracy, scheduled,
                                     rmse=measured.rmse, mae=measured.mae)
        # a sys.exit() waits for the other implementations and for this evaluation's best checkpoint
        self._hold_exit(call_holding_exit(self.run.hook.nnframe_evaluation_end, run=self.run, metrics=self.last_eval))
        if self.checkpointer is not None:
            self.checkpointer.after_evaluation(self, self.last_eval)
        return self.last_eval

    def measure(self, x: np.ndarray, t: np.ndarray) -> Measures:
        """Mean loss, and accuracy or error measures, over a whole array set, in chunks, in eval mode."""
        self.model.eval()
        errors = ErrorSums()
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                total_loss, correct = self._measure_chunks(x, t, errors)
        finally:
            self.model.train()
        acc = correct / len(x) if self.experiment.classification else None
        return Measures(total_loss / len(x), acc, errors.rmse, errors.mae)

    def _measure_chunks(self, x: np.ndarray, t: np.ndarray, errors: ErrorSums) -> tuple[float, int]:
        total_loss, correct = 0.0, 0
        for start in range(0, len(x), EVAL_CHUNK):
            xs, ts = x[start:start + EVAL_CHUNK], t[start:start + EVAL_CHUNK]
            out = self.model.forward(xs)
            total_loss += float(self.loss.forward(out, ts)) * len(xs)
            if self.experiment.classification:
                correct += int(np.sum(predicted(out) == labels(ts)))
            else:
                errors.add(self.loss, out, ts)
        return total_loss, correct

    # -------------------------------------------------------------- signals

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM finish the current step, then stop; a second SIGINT exits at once. The signals the
        caller's :attr:`held_signals` holds (from the making of the run's directory through the run-start
        hooks) are taken over once this handler is set, so that none falls between the two, and the first
        stops the run after its first step."""
        def request_stop(signum: int, frame: Any) -> None:
            if self._stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop_signal = signum

        try:
            previous = {sig: signal.signal(sig, request_stop) for sig in not_ignored(tuple(EXIT_CODES))}
        except ValueError:  # not the main thread: leave signals alone
            previous = None
        if self.held_signals is not None:
            requested, before_held = self.held_signals.hand_over()
            if previous is not None:
                previous.update(before_held)
            self._stop_signal = self._stop_signal or next(iter(requested), None)
        if previous is None:  # yielded outside the except, so that no error of the run has that one as context
            yield
            return
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _save_checkpoint(self, final: bool) -> None:
        if self.checkpointer is not None:
            self.checkpointer.save(self, final=final)

    # --------------------------------------------------------------- summary

    def _summary(self, status: str, seconds: float, final: Measures | None = None) -> dict[str, Any]:
        """The run's summary; ``final`` is measured over the whole training set after the last step."""
        metrics: dict[str, float | None] = {}
        if self.last_step is not None:
            metrics["train/loss"] = self.last_step.loss
        if final is not None:
            metrics.update(final.tagged("train"))
        if self.last_eval is not None:
            last = self.last_eval
            metrics.update(Measures(last.loss, last.accuracy, last.rmse, last.mae).tagged("val"))
        summary = {
            "status": status,
            "steps": self.step,
            "epochs": self.run.epoch,  # the batches' epoch may have moved on with a step that then failed
            "skipped_steps": self.skipped_steps,
            "wall_time_s": round(seconds + self.run.summary.get("wall_time_s", 0.0), 3),
            "metrics": metrics,
        }
        if self.run.stop_reason is not None and status == "completed" and self.step < self.total_steps:
            summary["stopped_early"] = {"step": self.step, "planned_steps": self.total_steps,
                                        "reason": self.run.stop_reason}
        return summary


def _same_storage_failure(first: BaseException, second: BaseException) -> bool:
    return isinstance(first, OSError) and isinstance(second, OSError) and first.errno == second.errno


def stops_the_run(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``sys.exit()`` that stops a run rather than fails it: code 0 or none, as Ray Tune's
    scheduler uses to stop a trial."""
    return isinstance(exc, SystemExit) and exc.code in (0, None)


def _status_after(exc: BaseException) -> str:
    """The run's status when ``exc`` ends it."""
    if isinstance(exc, (Interrupted, KeyboardInterrupt, Terminated)) or stops_the_run(exc):
        return "interrupted"
    return "diverged" if isinstance(exc, NonFiniteError) else "failed"


def in_worker_process() -> bool:
    """Whether this process is a ``multiprocessing`` child (a pool's worker), whose SIGTERM must end it."""
    return multiprocessing.parent_process() is not None


def planned_steps(train: Any, batches_per_epoch: int) -> int:
    """Optimizer steps a run takes: the lesser of ``max_steps`` and ``epochs`` times the batches per epoch."""
    limits = [train.max_steps] if train.max_steps else []
    if train.epochs:
        limits.append(train.epochs * batches_per_epoch)
    return min(limits)


class Measures(NamedTuple):
    """A whole array set's mean loss, and its accuracy or, in a run that measures none, its error measures."""

    loss: float
    accuracy: float | None
    rmse: float | None = None
    mae: float | None = None

    def tagged(self, prefix: str) -> dict[str, float | None]:
        """``{"train/loss": ..., "train/accuracy": ...}``, with ``rmse`` and ``mae`` in the accuracy's place where
        they were measured."""
        if self.rmse is not None:
            return {f"{prefix}/loss": self.loss, f"{prefix}/rmse": self.rmse, f"{prefix}/mae": self.mae}
        return {f"{prefix}/loss": self.loss, f"{prefix}/accuracy": self.accuracy}


def labels(t: np.ndarray) -> np.ndarray:
    """Class indices from index or one-hot targets."""
    if t.ndim > 1 and t.shape[-1] > 1:
        return t.argmax(axis=-1)
    return t.reshape(len(t))


def predicted(out: np.ndarray) -> np.ndarray:
    """The predicted class of each row: argmax over classes, or a threshold at 0 for one logit."""
    if out.ndim > 1 and out.shape[-1] > 1:
        return out.argmax(axis=-1)
    return (out.reshape(len(out)) > 0).astype(np.int64)


def accuracy(out: np.ndarray, t: np.ndarray) -> float:
    """Fraction of rows whose predicted class is the target class."""
    return np.count_nonzero(predicted(out) == labels(t)) / len(out)

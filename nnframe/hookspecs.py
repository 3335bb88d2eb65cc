"""The plugin contract: every hook nnframe calls, and when.

A plugin is a module (or, for per-run state, an object) with functions named
after these hooks and marked with :data:`nnframe.hookimpl`. nnframe's own
components are registered through exactly these hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from nnframe.components import Component
    from nnframe.run import EvalMetrics, RunContext, StepMetrics

hookspec = pluggy.HookspecMarker("nnframe")
hookimpl = pluggy.HookimplMarker("nnframe")

# --------------------------------------------------------------------------
# Registration: called once when a plugin manager builds its registries.
# --------------------------------------------------------------------------


@hookspec
def nnframe_register_nodes() -> list[Component]:
    """Return the graph-node components this plugin provides.

    Called once per plugin manager, when its registries are built. Each item is
    a :class:`nnframe.Component` of kind ``"node"`` (made with
    :func:`nnframe.components.node`); its ``build(params, ctx)`` returns a
    :class:`nnframe.Node`. A name registered by two plugins is an error.
    """


@hookspec
def nnframe_register_losses() -> list[Component]:
    """Return the loss components this plugin provides.

    Called once per plugin manager. ``build(params)`` returns an object with
    ``forward(x, t) -> float`` (the batch mean) and ``backward(dout=1.0) -> dx``.
    """


@hookspec
def nnframe_register_optimizers() -> list[Component]:
    """Return the optimizer components this plugin provides.

    Called once per plugin manager. ``build(params)`` returns an
    :class:`nnframe.optimizers.Optimizer` that updates parameters in place.
    """


@hookspec
def nnframe_register_datasets() -> list[Component]:
    """Return the dataset components this plugin provides.

    Called once per plugin manager. ``build(params, ctx)`` returns an
    :class:`nnframe.data.Dataset`; the validation split is applied by nnframe
    from the common ``val_fraction`` field unless the dataset brings its own.
    """


@hookspec
def nnframe_register_callbacks() -> list[Component]:
    """Return the callback components this plugin provides.

    Called once per plugin manager. ``build(params, ctx)`` (ctx a
    :class:`nnframe.components.CallbackContext`) returns an object whose
    methods implement training hooks; it is registered, as by
    ``run.register``, in the runs whose config lists the callback under
    ``callbacks``, before their ``nnframe_configure_run``.
    """


@hookspec
def nnframe_register_schedules() -> list[Component]:
    """Return the learning-rate schedule components this plugin provides.

    Called once per plugin manager. Each component's params subclass
    :class:`nnframe.Schedule` and implement ``rate_after_warmup(step, base_lr,
    total_steps)``; a config chooses one by ``type`` under
    ``optimizer.schedule``, and the validated section is the schedule.
    """


# --------------------------------------------------------------------------
# Training events: called by the training loop, in this order.
# --------------------------------------------------------------------------


@hookspec
def nnframe_configure_run(run: RunContext) -> None:
    """Set up per-run state before anything else happens in a run.

    Called once per run, before :func:`nnframe_run_start`. A logger that keeps
    state (an open file, a writer) registers an object holding it here with
    ``run.register(obj)``; that object's hook implementations then receive the
    run's events and it is unregistered after :func:`nnframe_run_end`.
    """


@hookspec
def nnframe_run_start(run: RunContext) -> None:
    """Called once when training starts or resumes, before the first step.

    ``run.step`` is the optimizer step training continues from (0 for a new run).
    """


@hookspec
def nnframe_step_end(run: RunContext, metrics: StepMetrics) -> None:
    """Called after every optimizer step, with its loss and learning rate.

    For per-step work such as a progress display or early stopping
    (:meth:`nnframe.run.RunContext.stop`, from this or any training hook). Every
    implementation runs on every step, so a logger implements
    :func:`nnframe_log_metrics` instead. ``metrics.logged`` is true on the
    steps that fall on ``log.every`` and on the run's last step; only on
    those are ``accuracy`` (or, in a run that measures none, ``rmse`` and
    ``mae``) and ``grad_norms`` filled in.
    """


@hookspec
def nnframe_log_metrics(run: RunContext, metrics: StepMetrics) -> None:
    """Called on the steps that fall on ``log.every`` and on the last step, right after :func:`nnframe_step_end`.

    ``metrics`` is the same object, with ``accuracy`` (for classification; ``rmse``
    and ``mae`` of the batch in a run that measures no accuracy) and,
    when ``log.grad_norms`` is on, ``grad_norms`` filled in: the global norm and
    one per ``"<node>/<param>"``, taken before clipping and before the update.
    This is the hook loggers implement: it costs nothing on the other steps.
    Also called, without :func:`nnframe_step_end`, for the step a run diverges
    at (its loss or gradient norm not finite), before the run ends.
    """


@hookspec
def nnframe_evaluation_end(run: RunContext, metrics: EvalMetrics) -> None:
    """Called after each evaluation on the validation set, with its loss and accuracy (or ``rmse`` and ``mae``).

    Evaluations come every ``train.eval_every`` steps (without it, at each
    epoch's end) and once more after a run's last step where that is off
    the schedule; ``metrics.scheduled`` is false for that one.
    """


@hookspec
def nnframe_checkpoint(run: RunContext) -> None:
    """Called before a checkpoint of step ``run.step`` is written.

    A logger that holds logged values back (the TensorBoard logger writes them
    in bursts) writes them out and flushes here, so that all it logged up to
    the checkpoint is on disk: after a kill, training resumes from that
    checkpoint and its log continues without a gap. A plugin whose values a
    resume needs and that keeps them elsewhere writes them into ``run.state``
    here, which the checkpoint saves. Every implementation
    runs even when another raises, and the checkpoint is written before the
    first error is raised.
    """


@hookspec
def nnframe_run_end(run: RunContext, status: str, summary: dict[str, Any]) -> None:
    """Called once when training stops, whatever the reason.

    ``status`` is ``"completed"``, ``"interrupted"``, ``"diverged"`` or
    ``"failed"``; ``summary`` holds the final metrics written to ``summary.json``.
    Every implementation runs even when another raises (each logger closes its
    files); the first error is raised after the last of them.
    """

"""A training step whose loss or gradient is not finite: skipped, or the run's end, saying where the first
non-finite value is and what to change."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from nnframe.errors import NonFiniteError
from nnframe.gradients import first_nonfinite
from nnframe.plugin_distributions import distribution_of

if TYPE_CHECKING:
    from nnframe.train import Trainer


def handle_nonfinite(trainer: Trainer, step: int, loss: float, x: np.ndarray) -> None:
    """Count ``step`` as skipped under ``train.on_nonfinite: skip_step`` while every parameter is finite, else
    raise :class:`NonFiniteError`; ``x`` is the step's batch, which the diagnosis runs through the model."""
    model, clip = trainer.model, trainer.settings.train.clip_grad_norm
    if trainer.settings.train.on_nonfinite == "skip_step":
        bad_param = first_nonfinite(model.param_names, model.params)
        if bad_param is None:
            trainer.skipped_steps += 1
            return
        raise NonFiniteError(f"training diverged at step {step}: parameter {bad_param} is not finite, "
                             f"so skipping steps cannot recover (an earlier update overflowed it"
                             f"{_plugin_update_blame(trainer)}); lower optimizer.lr or {_clipping_advice(clip)}")
    raise NonFiniteError(f"training diverged at step {step}: {_diagnose(trainer, loss, x)}; lower "
                         f"optimizer.lr, {_clipping_advice(clip)}, or use train.on_nonfinite: skip_step")


def _plugin_update_blame(trainer: Trainer) -> str:
    """A plugin's update rule named where a parameter is not finite: every earlier update was given finite
    gradients (a step with a non-finite one is stopped or skipped), so the rule wrote it, from too large a
    rate or a bug of its own. nnframe's rules are left unnamed: for them it is the rate."""
    cls = type(trainer.optimizer)
    if cls.__module__.split(".")[0] == "nnframe":
        return ""
    dist = distribution_of(cls.__module__)
    origin = f"{cls.__module__}.{cls.__qualname__}" + (f", of the plugin distribution {dist}" if dist else "")
    return (f", though every update so far had finite gradients: the update of optimizer "
            f"{trainer.settings.optimizer.type!r} ({origin}) wrote it")


def _clipping_advice(clip: float | None) -> str:
    if clip:
        return f"lower train.clip_grad_norm (now {clip:g})"
    return "set train.clip_grad_norm"


def _diagnose(trainer: Trainer, loss: float, x: np.ndarray) -> str:
    """Where the first non-finite value is: a parameter, a node's output on this batch, or a gradient."""
    model = trainer.model
    facts = [f"the loss is {loss}"] if not math.isfinite(loss) else []
    bad_param = first_nonfinite(model.param_names, model.params)
    if bad_param:
        facts.append(f"parameter {bad_param} is not finite{_plugin_update_blame(trainer)}")
    elif not math.isfinite(loss):
        bad_node = next((name for name, value in model.trace(x).items() if not np.isfinite(value).all()), None)
        if bad_node:
            facts.append(f"the first non-finite value is the output of node {bad_node!r}")
    bad_grad = first_nonfinite(model.param_names, model.grads)
    if bad_grad:
        facts.append(f"the first non-finite gradient is {bad_grad}")
    return ", ".join(facts) or "a gradient is not finite"

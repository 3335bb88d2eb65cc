"""The optimizer's first update in a process, checked to have written into the parameters.

An update rule that rebinds a name (``p = p - lr * g``) or replaces a list's
item instead of writing into the array would otherwise leave those parameters
untrained, without a word. Replaced arrays are looked for in every rule;
unchanged ones, each, only in a plugin's rule that updates on every step, and
only where the step is far above the parameter's rounding (near the end of a
cosine, a float32 step may rightly change nothing).
"""

from __future__ import annotations

import math

import numpy as np

from nnframe.errors import PluginError, listed
from nnframe.optimizer_base import Optimizer


def checked_update(optimizer: Optimizer, type_name: str, names: list[str], params: list[np.ndarray],
                   grads: list[np.ndarray]) -> None:
    """``optimizer.update(params, grads)``, then :class:`PluginError` naming the rule (``type_name``, as the
    config gives it) and the parameters (``names``) it replaced or left unchanged."""
    arrays = tuple(params)
    own = type(optimizer).__module__.startswith("nnframe.")
    watched = getattr(optimizer, "updates_every_step", True) and not own
    moving = [i for i, (p, g) in enumerate(zip(params, grads)) if watched and _must_move(p, g, optimizer.lr)]
    before = [params[i].copy() for i in moving]
    optimizer.update(params, grads)
    cls = type(optimizer)
    who = f"optimizer {type_name!r} ({cls.__module__}.{cls.__qualname__})"
    replaced = [i for i, (now, then) in enumerate(zip(params, arrays)) if now is not then]
    if replaced or len(params) != len(arrays):
        at = f"params[{replaced[0]}] ({names[replaced[0]]})" if replaced else "the list"
        raise PluginError(f"{who} replaced {at} with a new array in its first update instead of writing into "
                          "it, so the model never sees the change; write in place (p -= tmp)")
    still = [names[i] for i, old in zip(moving, before) if np.array_equal(params[i], old)]
    if still:
        raise PluginError(f"{who} left {listed(still)} unchanged in its first update, though the gradients "
                          f"are not zero and the learning rate is {optimizer.lr:g}; an update rule writes into p "
                          "in place (p -= tmp), where p = p - tmp would only rebind a name (a rule that updates "
                          "only every few steps sets updates_every_step = False)")


def _must_move(param: np.ndarray, grad: np.ndarray, lr: float) -> bool:
    """Whether a step of ``lr`` times the largest gradient (at most 1: Adam's and sign descent's steps are
    about ``lr`` whatever the gradient) is far above the rounding of the largest parameter, so that any update
    rule that follows its gradient changes the parameter."""
    if not param.size or param.dtype.kind != "f":
        return False
    with np.errstate(all="ignore"):
        step = lr * min(float(np.max(np.abs(grad))), 1.0)
        return math.isfinite(step) and step > 16 * float(np.spacing(np.max(np.abs(param))))

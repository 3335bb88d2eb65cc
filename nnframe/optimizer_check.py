"""A check of an optimizer plugin's rule against what training and checkpoints rely on.

:func:`check_optimizer` runs the rule a few steps on made-up parameters and
gradients and raises :class:`OptimizerCheckError` naming the first broken
promise: the parameters change in place, and so does the state in the rule's
``slots`` (a slot left all zeros is named); a resume from ``state_dict`` goes on
exactly as an uninterrupted run (all the state a rule carries between steps
lives in its ``slots``); and the parameters of a model built from a config,
views of one buffer that an element-wise rule updates in one go (a large one in
blocks, split between threads), end where separate arrays do, which a rule
that reads a parameter's shape or norm gets only with ``elementwise = False``.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np

from nnframe.optimizer_base import BLOCK, Optimizer

SHAPES = ((6, 4), (4,), (2 * BLOCK + 9,))
"""Parameters of the check: a matrix, a vector and one large enough to be updated in blocks."""
NAMES = ("layer/W", "layer/b", "big/W")


class OptimizerCheckError(AssertionError):
    """The rule breaks something training or a resume relies on; the message says what and how to fix it."""


def check_optimizer(make: Callable[[], Optimizer], dtype: np.dtype | type = np.float32, steps: int = 6,
                    seed: int = 0, idle_slots: tuple[str, ...] = ()) -> None:
    """Raise :class:`OptimizerCheckError` unless the rule ``make()`` builds updates in place, its parameters and
    its slots (but ``idle_slots``, which it rightly leaves zero over ``steps`` steps: one it starts using later,
    or only under a setting), resumes exactly from its ``state_dict`` after any of the steps, and gives the same
    parameters on one buffer as on separate arrays."""
    __tracebackhide__ = True  # pytest shows a failed check at the test's call
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    grads = [[0.1 * rng.standard_normal(shape).astype(dtype) for shape in SHAPES] for _ in range(steps)]
    straight = _run(make, _separate, start, grads, idle_slots=idle_slots)
    for split in range(1, steps):
        resumed = _run(make, _separate, start, grads, resume_after=split)
        _require_equal(resumed, straight, f"resumed from its state_dict after step {split}",
                       "keep every array the rule carries from step to step in its slots, and derive the rest "
                       "from self.step; only the slots and the step are saved in a checkpoint")
    _require_equal(_run(make, _one_buffer, start, grads), straight, "updating parameters that are views of one "
                   "buffer, as a model built from a config holds them",
                   "a rule that reads a parameter's shape, size or norm sets elementwise = False, and is then "
                   "given each parameter whole")


def _run(make: Callable[[], Optimizer], layout: Callable[[list[np.ndarray]], list[np.ndarray]],
         start: list[np.ndarray], grads: list[list[np.ndarray]], resume_after: int | None = None,
         idle_slots: tuple[str, ...] | None = None) -> list[np.ndarray]:
    """The parameters after every step of ``grads`` from ``start``, parameters and gradients laid out by
    ``layout``, the optimizer replaced by one resumed from its state before step ``resume_after``; with
    ``idle_slots``, its other slots checked to have been written."""
    params = layout(start)
    optimizer = _made(make)
    optimizer.bind(list(NAMES), params)
    for step, step_grads in enumerate(grads):
        if step == resume_after:
            optimizer = _resumed(make, optimizer, params)
        before = [p.copy() for p in params] if step == 0 else None
        kept = list(params)
        optimizer.update(params, layout(step_grads))
        if any(now is not then for now, then in zip(params, kept)):
            raise OptimizerCheckError(f"{type(optimizer).__name__}.update replaced an array in the list of "
                                      "parameters; write into each one in place (p -= tmp)")
        if before is not None and optimizer.updates_every_step:
            _require_moved(optimizer, params, before)
    if idle_slots is not None and optimizer.updates_every_step:
        _require_slots_written(optimizer, len(grads), idle_slots)
    return [p.copy() for p in params]


def _resumed(make: Callable[[], Optimizer], optimizer: Optimizer, params: list[np.ndarray]) -> Optimizer:
    """A new optimizer given the old one's state through ``np.savez``, as a checkpoint and a resume do."""
    saved = io.BytesIO()
    np.savez(saved, **optimizer.state_dict())
    saved.seek(0)
    with np.load(saved) as state:
        fresh = _made(make)
        fresh.bind(list(NAMES), params)
        fresh.load_state_dict(dict(state))
    return fresh


def _made(make: Callable[[], Optimizer]) -> Optimizer:
    optimizer = make()
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"check_optimizer: make() returned {type(optimizer).__name__}, not an nnframe.Optimizer")
    return optimizer


def _require_moved(optimizer: Optimizer, params: list[np.ndarray], before: list[np.ndarray]) -> None:
    still = [name for name, p, old in zip(NAMES, params, before) if np.array_equal(p, old)]
    if still:
        raise OptimizerCheckError(f"{type(optimizer).__name__}'s first update left {', '.join(still)} unchanged "
                                  "though every gradient is non-zero; write into p in place (p -= tmp), where "
                                  "p = p - tmp only rebinds a name (a rule that updates only every few steps sets "
                                  "updates_every_step = False)")


def _require_slots_written(optimizer: Optimizer, steps: int, idle: tuple[str, ...]) -> None:
    """A slot still all zeros after every update, for every parameter: ``m = beta * m + g`` in the rule rebinds
    the name and leaves the slot as made, so the rule trains on without its state (a momentum rule as plain SGD),
    and a resume, which restores the same zeros, cannot tell."""
    unwritten = [slot for slot in optimizer.slots if slot not in idle
                 and all(not np.any(arrays[slot]) for arrays in optimizer.state.values())]
    if unwritten:
        slot = unwritten[0]
        raise OptimizerCheckError(f"{type(optimizer).__name__} left its slot {slot!r} all zeros through {steps} "
                                  f"updates with non-zero gradients; write into it in place ({slot}[...] = ..., "
                                  f"{slot} *= beta; {slot} += g), where {slot} = ... only rebinds a name (a slot the "
                                  f"rule rightly leaves zero so long is named in check_optimizer(..., "
                                  f"idle_slots=({slot!r},)))")


def _require_equal(found: list[np.ndarray], expected: list[np.ndarray], how: str, fix: str) -> None:
    for name, got, want in zip(NAMES, found, expected):
        if not np.array_equal(got, want):
            gap = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
            raise OptimizerCheckError(f"{how}, parameter {name!r} ends {gap:.3g} away from where it ends trained "
                                      f"straight through on separate arrays; {fix}")


def _separate(arrays: list[np.ndarray]) -> list[np.ndarray]:
    return [a.copy() for a in arrays]


def _one_buffer(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Copies of ``arrays`` as views of one buffer, as a built model's parameters and gradients are."""
    buffer = np.concatenate([a.ravel() for a in arrays])
    bounds = np.cumsum([0, *(a.size for a in arrays)])
    return [buffer[lo:hi].reshape(a.shape) for lo, hi, a in zip(bounds[:-1], bounds[1:], arrays)]

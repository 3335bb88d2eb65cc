"""Gradient norms, clipping and the non-finite check, over a model's gradient list.

These run on every step, mostly on small arrays, so they favour one BLAS dot
product per array over building temporaries.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np

from nnframe.errors import ConfigError
from nnframe.flat_params import buffer_of

CLIP_EPS = 1e-6
SEGMENT_SUM_LIMIT = 4096
"""Most elements for which :class:`BufferNorms` beats a dot per array.

On spiral's 63 float64 elements it takes 1.5 us against 2.5; at about 8192
elements the two are even, and beyond that the square, a pass of its own,
makes it slower.
"""


def squared_norm(grad: np.ndarray) -> float:
    """``sum(grad ** 2)`` as a python float; recomputed in float64 if float32 overflows."""
    value = float(np.vdot(grad, grad))
    if math.isinf(value) and grad.dtype != np.float64:
        value = float(np.vdot(grad.astype(np.float64), grad.astype(np.float64)))
    return value


def global_norm(grads: list[np.ndarray]) -> float:
    """The L2 norm of all gradients taken together, as if concatenated into one vector.

    Runs on every training step, so the common case is one BLAS dot per array
    and no per-array function call; only an overflowing float32 sum is redone
    in float64.
    """
    vdot = np.vdot
    total = 0.0
    for g in grads:
        total += float(vdot(g, g))
    if math.isinf(total):
        total = sum(squared_norm(g) for g in grads)
    return math.sqrt(total)


def norms(names: list[str], grads: list[np.ndarray]) -> dict[str, float]:
    """The L2 norm of each gradient by name, plus ``"global"``, the norm over all of them.

    Runs on every logged step, written like :func:`global_norm` (one BLAS dot
    per array, the float64 redo only after an overflow): 3.0 us against 3.5
    for a spiral model when it called :func:`squared_norm` per array.
    """
    if len(names) != len(grads):
        raise ValueError(f"norms: {len(names)} names for {len(grads)} gradients")
    vdot = np.vdot
    squares = [float(vdot(g, g)) for g in grads]
    total = sum(squares)
    if math.isinf(total):
        squares = [squared_norm(g) for g in grads]
        total = sum(squares)
    result = dict(zip(names, map(math.sqrt, squares)))
    result["global"] = math.sqrt(total)
    return result


class BufferNorms:
    """:func:`norms` for gradients that tile one small buffer: one square and one segment sum.

    The logged step of a small model is the one that runs cold, once in many
    steps, so it pays for every numpy call: this makes two, whatever the
    number of parameters. The squares are float64, so a float32 gradient
    cannot overflow them.
    """

    def __init__(self, names: list[str], grads: list[np.ndarray], buffer: np.ndarray) -> None:
        self.names, self.buffer = list(names), buffer
        self.starts = np.cumsum([0] + [g.size for g in grads[:-1]])
        self.squares = np.empty(buffer.size, dtype=np.float64)

    def __call__(self) -> dict[str, float]:
        np.multiply(self.buffer, self.buffer, out=self.squares, dtype=np.float64)
        squares = np.add.reduceat(self.squares, self.starts).tolist()
        result = dict(zip(self.names, map(math.sqrt, squares)))
        result["global"] = math.sqrt(sum(squares))
        return result


def norms_of(names: list[str], grads: list[np.ndarray]) -> Callable[[], dict[str, float]]:
    """A function that returns :func:`norms` of these gradients as they stand when it is called.

    Gradients that tile one buffer of at most :data:`SEGMENT_SUM_LIMIT`
    elements, none of them empty, get a :class:`BufferNorms`.
    """
    if len(names) != len(grads):
        raise ValueError(f"norms: {len(names)} names for {len(grads)} gradients")
    buffer = buffer_of(grads)
    if buffer is not None and buffer.size <= SEGMENT_SUM_LIMIT and all(g.size for g in grads):
        return BufferNorms(names, grads, buffer)
    return partial(norms, names, grads)


def clip_grad_norm(grads: list[np.ndarray], max_norm: float, total_norm: float | None = None) -> float:
    """Scale all gradients in place so that their global norm is at most ``max_norm``; return the norm before.

    As in the book's ``clip_grads``: with ``rate = max_norm / (total_norm + 1e-6)``,
    every gradient is multiplied by ``rate`` when ``rate < 1``. ``total_norm``
    skips recomputing a norm already known. A non-finite norm is returned
    untouched and nothing is scaled (the non-finite policy decides what to do).
    """
    if not max_norm > 0:
        raise ConfigError(f"clip_grad_norm: max_norm must be greater than 0, found {max_norm!r}")
    if total_norm is None:
        total_norm = global_norm(grads)
    if not math.isfinite(total_norm):
        return total_norm
    rate = max_norm / (total_norm + CLIP_EPS)
    if rate < 1.0:
        for g in grads:
            g *= rate
    return total_norm


def first_nonfinite(names: list[str], grads: list[np.ndarray]) -> str | None:
    """The name of the first parameter whose gradient holds a NaN or an infinity, else ``None``.

    A finite sum proves every element finite (NaN and infinity propagate through
    a sum), so the element-wise check runs only when the sum is not finite,
    which also tells a merely overflowing sum from a real NaN.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        for name, g in zip(names, grads, strict=True):
            if not math.isfinite(float(np.sum(g))) and not np.isfinite(g).all():
                return name
    return None

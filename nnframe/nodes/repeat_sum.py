"""The seed's inverse pair: Repeat copies along an axis, Sum adds along it."""

from __future__ import annotations

import operator

import numpy as np

from nnframe.node import Node, backward_before_forward, check_dout


class Repeat(Node):
    """Copy the input ``n`` times along ``axis``: ``y = np.repeat(x, n, axis)``.

    Shapes: ``x: (1, D) -> y: (n, D)`` for the default ``axis=0``; in general
    size ``k`` along ``axis`` becomes ``k * n`` (each slice repeated ``n`` times
    in place). Backward: each copy's gradient flows to the one slice it came
    from, so ``dx`` is ``dy`` summed over the ``n`` copies (``keepdims``) — the
    forward pass of :class:`Sum`.
    """

    def __init__(self, n: int, axis: int = 0) -> None:
        super().__init__()
        self.n = _count(n)
        self.axis = operator.index(axis)
        self.x_shape: tuple[int, ...] | None = None
        self.out_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = np.repeat(x, self.n, axis=self.axis)
        self.x_shape, self.out_shape = np.shape(x), out.shape
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.out_shape is None:
            raise backward_before_forward(self)
        dout = check_dout(self, dout, self.out_shape)
        axis = self.axis % dout.ndim
        size = self.x_shape[axis]
        split = dout.shape[:axis] + (size, self.n) + dout.shape[axis + 1:]
        return dout.reshape(split).sum(axis=axis + 1)

    def __repr__(self) -> str:
        return f"Repeat(n={self.n}, axis={self.axis})"


class Sum(Node):
    """Sum along ``axis``, keeping it: ``y = x.sum(axis, keepdims=True)``.

    Shapes: ``x: (N, D) -> y: (1, D)`` for the default ``axis=0``. Backward:
    every input element contributed once, so ``dx`` is ``dy`` repeated ``N``
    times along ``axis`` — the forward pass of :class:`Repeat`.
    """

    def __init__(self, axis: int = 0) -> None:
        super().__init__()
        self.axis = operator.index(axis)
        self.size: int | None = None
        self.out_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = x.sum(axis=self.axis, keepdims=True)  # numpy names an axis out of range
        self.size, self.out_shape = x.shape[self.axis], out.shape
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.out_shape is None:
            raise backward_before_forward(self)
        dout = check_dout(self, dout, self.out_shape)
        return np.repeat(dout, self.size, axis=self.axis)

    def __repr__(self) -> str:
        return f"Sum(axis={self.axis})"


def _count(n: object) -> int:
    """``n`` as a whole number of copies, at least 1: ``Repeat(2.5)`` would otherwise repeat twice."""
    try:
        count = operator.index(n)
    except TypeError:
        raise TypeError(f"Repeat: n must be a whole number of copies, found {n!r}") from None
    if count < 1:
        raise ValueError(f"Repeat: n must be at least 1, found {count}")
    return count

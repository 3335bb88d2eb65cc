"""The MatMul node ``y = xW`` (fig. 1.5 of the seed)."""

from __future__ import annotations

import numpy as np

from nnframe.arrays import zeros_like
from nnframe.node import Node, backward_before_forward, weight


def as_rows(array: np.ndarray, width: int) -> np.ndarray:
    """``array`` with its leading axes folded into one: ``(..., width) -> (M, width)``."""
    return array.reshape(-1, width)


class MatMul(Node):
    """Matrix product with a weight: ``y = x W``.

    Shapes: ``x: (N, D)`` (or any ``(..., D)``), ``W: (D, H)`` -> ``y: (N, H)``
    (``(..., H)``). Backward: ``dx = dy Wᵀ`` and ``dW = xᵀ dy``, with batched
    ``x`` folded to 2-D rows so ``dW`` sums over every leading axis. With
    ``need_dx`` off, ``dx`` is not computed and ``backward`` returns ``None``.
    """

    param_names = ("W",)
    output_is_fresh = True
    dx_is_fresh = True

    def __init__(self, W: np.ndarray) -> None:
        super().__init__()
        W = weight(W, "W", "MatMul")  # a vector W is a dot product
        self.params = [W]
        self.grads = [zeros_like(W)]
        self.x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        (W,) = self.params
        self.x = x
        return x @ W

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        (W,) = self.params
        x, rows = self.x, dout
        if x is None:
            raise backward_before_forward(self)
        if x.ndim != 2:
            D, H = W.shape
            x, rows = as_rows(x, D), as_rows(dout, H)
        np.matmul(x.T, rows, out=self.grads[0])
        if not self.need_dx:
            return None
        return dout @ W.T

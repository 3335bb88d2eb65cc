"""The Affine (fully connected) node ``y = xW + b``."""

from __future__ import annotations

import numpy as np

from nnframe.arrays import zeros_like
from nnframe.node import Node
from nnframe.nodes.products import as_rows, column_sums, product, product_into


class Affine(Node):
    """Fully connected layer: ``y = x W + b``.

    Shapes: ``x: (N, D)`` (or any ``(..., D)``), ``W: (D, H)``, ``b: (H,)`` ->
    ``y: (N, H)``. Backward: ``dx = dy Wᵀ``, ``dW = xᵀ dy``, ``db = Σ_n dy``
    (the bias is repeated over the batch, so its gradient is the sum — the
    Repeat node of the seed). With ``need_dx`` off, ``backward`` returns ``None``.
    """

    param_names = ("W", "b")

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        super().__init__()
        self.params = [W, b]
        self.grads = [zeros_like(W), zeros_like(b)]
        self.x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        W, b = self.params
        self.x = x
        out = product(x, W)
        out += b
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        W = self.params[0]
        x, rows = self.x, dout
        if x.ndim != 2:
            D, H = W.shape
            x, rows = as_rows(x, D), as_rows(dout, H)
        product_into(x.T, rows, self.grads[0])
        column_sums(rows, self.grads[1])
        if not self.need_dx:
            return None
        return product(dout, W.T)

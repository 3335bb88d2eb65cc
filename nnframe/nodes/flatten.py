"""Flatten: each example as one vector, so that an image or a sequence can feed an ``affine`` node."""

from __future__ import annotations

import numpy as np

from nnframe.errors import DataError
from nnframe.node import Node, backward_before_forward, check_dout


class Flatten(Node):
    """``x: (N, d1, d2, ...) -> y: (N, d1 * d2 * ...)``, a view of ``x``; backward gives ``dy`` its shape back.

    ``affine`` and ``matmul`` act on the last axis, so an ``(N, 1, 28, 28)``
    batch of images fed to them gives ``(N, 1, 28, H)``; flattened first, each
    image is one vector of 784.
    """

    def __init__(self) -> None:
        super().__init__()
        self.x_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        shape = np.shape(x)
        if not shape:
            raise DataError(f"Flatten: the input must be a batch of shape (N, ...), found a single number {x!r}")
        self.x_shape = shape
        return np.reshape(x, self._out_shape())

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.x_shape is None:
            raise backward_before_forward(self)
        return check_dout(self, dout, self._out_shape()).reshape(self.x_shape)

    def _out_shape(self) -> tuple[int, int]:
        """``(N, D)``, with ``D`` counted, as ``-1`` cannot be for an empty batch."""
        return self.x_shape[0], int(np.prod(self.x_shape[1:], dtype=np.int64))

"""Inverted dropout."""

from __future__ import annotations

import numpy as np

from nnframe.errors import ConfigError
from nnframe.node import Node, backward_before_forward, check_dout


class Dropout(Node):
    """Inverted dropout: while training, ``y = x * m / (1 - ratio)`` with ``m ~ Bernoulli(1 - ratio)``.

    Shapes: any ``x`` -> ``y`` of the same shape. Scaling the kept units by
    ``1 / (1 - ratio)`` during training keeps the expected activation, so
    evaluation (``training`` False) is the identity. Backward applies the same
    scaled mask. The mask is drawn from ``self.rng`` in float64, so float32 and
    float64 models seeded alike drop the same units. Without an ``rng`` each
    node makes its own, seeded from numpy's global stream: two layers made by
    hand drop different units, and ``np.random.seed`` repeats them, as in the book.
    """

    def __init__(self, ratio: float = 0.5, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not 0 <= ratio < 1:
            raise ConfigError(f"Dropout ratio must be in [0, 1), got {ratio!r}")
        self.ratio = ratio
        self.rng = rng if rng is not None else np.random.default_rng(np.random.randint(2**31))
        self.mask: np.ndarray | None = None
        self.out_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out_shape = x.shape
        if not self.training:
            self.mask = None
            return x
        keep = self.rng.random(x.shape) >= self.ratio
        self.mask = np.multiply(keep, 1 / (1 - self.ratio), dtype=x.dtype)
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.out_shape is None:
            raise backward_before_forward(self)
        dout = check_dout(self, dout, self.out_shape)
        if self.mask is None:
            return dout
        return dout * self.mask

    def __repr__(self) -> str:
        return f"Dropout(ratio={self.ratio})"

"""Layers as in the book's ``common/layers.py``: Affine, Sigmoid, Relu, SoftmaxWithLoss.

Written plainly, one temporary per operation, as a reader writes them. The one
departure from the book is ``cross_entropy_error``: the book adds ``1e-7``
inside the log, which shifts the loss by about ``1e-7``; here a probability is
only raised to the dtype's smallest normal number (so an underflowed one gives
a large finite loss, not ``inf``), which leaves every other value exact, so the
loss curve can be compared with nnframe's to ``1e-12``.
"""

from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum."""
    x = x - x.max(axis=1, keepdims=True)
    x = np.exp(x)
    x /= x.sum(axis=1, keepdims=True)
    return x


def cross_entropy_error(y: np.ndarray, t: np.ndarray) -> float:
    """Mean of ``-log y[n, t[n]]`` over the batch; ``t`` holds class indices."""
    batch_size = y.shape[0]
    p = np.maximum(y[np.arange(batch_size), t], np.finfo(y.dtype).tiny)
    return float(-np.sum(np.log(p)) / batch_size)


class Affine:
    """``out = x W + b``; ``x: (N, D)``, ``W: (D, H)``, ``b: (H,)`` -> ``(N, H)``."""

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]
        self.x = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        W, b = self.params
        out = np.dot(x, W) + b
        self.x = x
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        W, b = self.params
        dx = np.dot(dout, W.T)
        dW = np.dot(self.x.T, dout)
        db = np.sum(dout, axis=0)
        self.grads[0][...] = dW
        self.grads[1][...] = db
        return dx

    def __repr__(self) -> str:
        return f"Affine(W{self.params[0].shape})"


class Sigmoid:
    """``out = 1 / (1 + exp(-x))``; backward ``dx = dout (1 - out) out``."""

    def __init__(self) -> None:
        self.params, self.grads = [], []
        self.out = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = 1 / (1 + np.exp(-x))
        self.out = out
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx = dout * (1.0 - self.out) * self.out
        return dx

    def __repr__(self) -> str:
        return "Sigmoid()"


class Relu:
    """``out = max(x, 0)``; backward zeroes ``dout`` where ``x <= 0`` (the book's mask)."""

    def __init__(self) -> None:
        self.params, self.grads = [], []
        self.mask = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout[self.mask] = 0
        dx = dout
        return dx

    def __repr__(self) -> str:
        return "Relu()"


class SoftmaxWithLoss:
    """Softmax then cross-entropy, mean over the batch; backward ``(y - t) / N``."""

    def __init__(self) -> None:
        self.params, self.grads = [], []
        self.y = None
        self.t = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        self.t = t
        self.y = softmax(x)
        if self.t.size == self.y.size:
            self.t = self.t.argmax(axis=1)
        loss = cross_entropy_error(self.y, self.t)
        return loss

    def backward(self, dout: float = 1) -> np.ndarray:
        batch_size = self.t.shape[0]
        dx = self.y.copy()
        dx[np.arange(batch_size), self.t] -= 1
        dx *= dout
        dx = dx / batch_size
        return dx

    def __repr__(self) -> str:
        return "SoftmaxWithLoss()"

"""Update rules as in the book's ``common/optimizer.py``: SGD and Adam.

Adam takes its bias-corrected rate as a Python float (``math.sqrt``): the
book's ``np.sqrt`` gives a ``np.float64``, which under numpy 2 turns every
float32 update into float64 temporaries; the reference should not lose time
to that.
"""

from __future__ import annotations

import math

import numpy as np


class SGD:
    """``param -= lr * grad``."""

    def __init__(self, lr: float = 0.01) -> None:
        self.lr = lr

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        for i in range(len(params)):
            params[i] -= self.lr * grads[i]

    def __repr__(self) -> str:
        return f"SGD(lr={self.lr})"


class Adam:
    """Adam with the book's bias correction folded into ``lr_t`` (epsilon 1e-7)."""

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999) -> None:
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        if self.m is None:
            self.m, self.v = [], []
            for param in params:
                self.m.append(np.zeros_like(param))
                self.v.append(np.zeros_like(param))
        self.iter += 1
        lr_t = self.lr * math.sqrt(1.0 - self.beta2**self.iter) / (1.0 - self.beta1**self.iter)
        for i in range(len(params)):
            self.m[i] += (1 - self.beta1) * (grads[i] - self.m[i])
            self.v[i] += (1 - self.beta2) * (grads[i] ** 2 - self.v[i])
            params[i] -= lr_t * self.m[i] / (np.sqrt(self.v[i]) + 1e-7)

    def __repr__(self) -> str:
        return f"Adam(lr={self.lr}, iter={self.iter})"

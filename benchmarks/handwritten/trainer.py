"""The book's mini-batch loop (``ch01/train_custom_loop.py``), one step at a time.

Each epoch draws a permutation; each step slices the next ``batch_size``
indices of it, runs forward, backward and the update, and returns the loss.
The last, shorter batch of an epoch is kept, as nnframe and scikit-learn do.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class Trainer:
    """Trains ``model`` with ``optimizer`` on ``(x, t)`` in mini-batches drawn from ``rng``."""

    def __init__(self, model, optimizer, x: np.ndarray, t: np.ndarray, batch_size: int,
                 rng: np.random.Generator | None = None) -> None:
        self.model = model
        self.optimizer = optimizer
        self.x, self.t = x, t
        self.batch_size = batch_size
        self.rng = rng or np.random.default_rng()
        self.data_size = len(x)
        self.max_iters = -(-self.data_size // batch_size)
        self.iters = 0
        self.idx = None

    def train_step(self) -> float:
        if self.iters == 0:
            self.idx = self.rng.permutation(self.data_size)
        batch = self.idx[self.iters * self.batch_size:(self.iters + 1) * self.batch_size]
        self.iters = (self.iters + 1) % self.max_iters
        return self.step_on(batch)

    def step_on(self, batch: np.ndarray) -> float:
        """One step on the examples at the indices ``batch``."""
        loss = self.model.forward(self.x[batch], self.t[batch])
        self.model.backward()
        self.optimizer.update(self.model.params, self.model.grads)
        return loss

    def fit(self, epochs: int) -> list[float]:
        return [self.train_step() for _ in range(epochs * self.max_iters)]

    def fit_batches(self, batches: Iterable[np.ndarray]) -> list[float]:
        """Train on a given sequence of index arrays (to follow another implementation's order)."""
        return [self.step_on(batch) for batch in batches]

    def __repr__(self) -> str:
        return f"Trainer({self.model!r}, {self.optimizer!r}, batch_size={self.batch_size})"

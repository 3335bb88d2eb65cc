"""The book's spiral data (``dataset/spiral.py``), with the noise drawn from a Generator."""

from __future__ import annotations

import numpy as np


def load_data(rng: np.random.Generator, points_per_class: int = 100, classes: int = 3,
              noise: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """``x: (C N, 2)`` points on ``C`` arms and ``t: (C N,)`` class indices."""
    N, CLS_NUM = points_per_class, classes
    x = np.zeros((N * CLS_NUM, 2))
    t = np.zeros(N * CLS_NUM, dtype=np.int64)
    for j in range(CLS_NUM):
        for i in range(N):
            rate = i / N
            radius = 1.0 * rate
            theta = j * 4.0 + 4.0 * rate + rng.standard_normal() * noise
            ix = N * j + i
            x[ix] = np.array([radius * np.sin(theta), radius * np.cos(theta)]).flatten()
            t[ix] = j
    return x, t

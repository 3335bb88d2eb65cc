"""Initial weights: the book's small Gaussian, Xavier and He.

Every method draws ``rng.standard_normal`` in float64 and casts at the end, so
float32 and float64 models built from one seed start from the same weights
(up to rounding).
"""

from __future__ import annotations

import math

import numpy as np

from nnframe.errors import ConfigError, unknown_name_message

METHODS = ("normal", "xavier", "he")


def fan_in(shape: tuple[int, ...]) -> int:
    """Inputs feeding one output unit: the rows of ``W: (D, H)``; all but the last axis in general."""
    return max(1, math.prod(shape[:-1]) if len(shape) > 1 else math.prod(shape))


def initialize(shape: tuple[int, ...], method: str, scale: float, rng: np.random.Generator,
               dtype: np.dtype | type | str) -> np.ndarray:
    """An array of ``shape`` drawn from ``N(0, σ²)`` and cast to ``dtype``.

    ``normal``: ``σ = scale`` (the book uses 0.01); ``xavier``: ``σ = sqrt(1 / fan_in)``;
    ``he``: ``σ = sqrt(2 / fan_in)`` (suited to ReLU). ``scale`` is used by
    ``normal`` only.
    """
    if method not in METHODS:
        raise ConfigError(unknown_name_message("initializer", method, METHODS))
    std = {"normal": scale, "xavier": math.sqrt(1 / fan_in(shape)), "he": math.sqrt(2 / fan_in(shape))}[method]
    return (std * rng.standard_normal(shape)).astype(dtype, copy=False)

"""Initial weights: the book's small Gaussian, Xavier and He, and Glorot's fan average.

Every method draws ``rng.standard_normal`` in float64 and casts at the end, so
float32 and float64 models built from one seed start from the same weights
(up to rounding).
"""

from __future__ import annotations

import math

import numpy as np

from nnframe.errors import ConfigError, unknown_name_message

METHODS = ("normal", "xavier", "he", "glorot")


def fan_in(shape: tuple[int, ...]) -> int:
    """Inputs feeding one output unit: the rows of ``W: (D, H)``; all but the last axis in general."""
    return max(1, math.prod(shape[:-1]) if len(shape) > 1 else math.prod(shape))


def fan_out(shape: tuple[int, ...]) -> int:
    """Outputs one input unit feeds: the columns of ``W: (D, H)``, the last axis."""
    return max(1, shape[-1]) if shape else 1


def initialize(shape: tuple[int, ...], method: str, scale: float, rng: np.random.Generator,
               dtype: np.dtype | type | str) -> np.ndarray:
    """An array of ``shape`` drawn from ``N(0, σ²)`` and cast to ``dtype``.

    ``normal``: ``σ = scale`` (the book uses 0.01); ``xavier``: ``σ = sqrt(1 / fan_in)``;
    ``he``: ``σ = sqrt(2 / fan_in)`` (suited to ReLU); ``glorot``:
    ``σ = sqrt(2 / (fan_in + fan_out))`` (Glorot and Bengio 2010; the variance
    of scikit-learn's MLP and Keras' default, drawn from a normal here).
    ``scale`` is used by ``normal`` only.
    """
    if method not in METHODS:
        raise ConfigError(unknown_name_message("initializer", method, METHODS))
    std = {"normal": scale, "xavier": math.sqrt(1 / fan_in(shape)), "he": math.sqrt(2 / fan_in(shape)),
           "glorot": math.sqrt(2 / (fan_in(shape) + fan_out(shape)))}[method]
    return (std * rng.standard_normal(shape)).astype(dtype, copy=False)

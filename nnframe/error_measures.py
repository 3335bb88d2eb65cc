"""The error measures of a run that measures no accuracy: RMSE and MAE of its predictions against the targets.

The loss says what the model's scores predict (:meth:`nnframe.Loss.predictions`:
the scores themselves for ``mse``, probabilities for the cross-entropies), so
the measures are in the targets' own units, whatever the loss's scale: ``mse``
is half the squared error, and its ``rmse`` is the usual root of the mean
squared error over every target value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class ErrorSums:
    """Squared and absolute errors summed over ``count`` target values, chunk by chunk."""

    squared: float = 0.0
    absolute: float = 0.0
    count: int = 0

    def add(self, loss: Any, out: np.ndarray, t: np.ndarray) -> None:
        """Add a batch's errors; nothing where the loss makes no predictions of the targets' size."""
        predictions = predictions_of(loss, out)
        if predictions is None or np.size(predictions) != np.size(t):
            return
        diff = np.asarray(predictions, dtype=np.float64).reshape(-1) - np.asarray(t, dtype=np.float64).reshape(-1)
        self.squared += float(np.dot(diff, diff))
        self.absolute += float(np.abs(diff).sum())
        self.count += diff.size

    @property
    def rmse(self) -> float | None:
        return math.sqrt(self.squared / self.count) if self.count else None

    @property
    def mae(self) -> float | None:
        return self.absolute / self.count if self.count else None


def predictions_of(loss: Any, out: np.ndarray) -> np.ndarray | None:
    """What ``loss`` says the scores ``out`` predict; the scores themselves for a loss without ``predictions``."""
    predict = getattr(loss, "predictions", None)
    return out if predict is None else predict(out)


def batch_errors(loss: Any, out: np.ndarray, t: np.ndarray) -> tuple[float | None, float | None]:
    """``(rmse, mae)`` of one batch; ``(None, None)`` where the loss makes no predictions of the targets."""
    sums = ErrorSums()
    sums.add(loss, out, t)
    return sums.rmse, sums.mae

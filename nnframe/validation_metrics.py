"""The validation metrics a best checkpoint or an early stopper goes by, which way each is better, and which a
run measures.

``val/accuracy`` is measured only by a classification run; ``val/rmse`` and
``val/mae`` (see :mod:`nnframe.error_measures`) only by a run that measures no
accuracy, whose loss predicts values of the targets' size; ``val/loss`` by
every run with a validation set.
"""

from __future__ import annotations

from typing import Literal

ValidationMetric = Literal["val/loss", "val/accuracy", "val/rmse", "val/mae"]
HIGHER_IS_BETTER = frozenset({"val/accuracy"})
ERROR_METRICS = ("val/rmse", "val/mae")


def is_measured(metric: str, classification: bool, error_measures: bool) -> bool:
    """Whether a run's evaluations give ``metric``."""
    if metric == "val/accuracy":
        return classification
    if metric in ERROR_METRICS:
        return error_measures
    return True


def measured_in_its_place(classification: bool) -> ValidationMetric:
    """What a best checkpoint goes by where the run does not measure the metric asked for."""
    return "val/accuracy" if classification else "val/loss"

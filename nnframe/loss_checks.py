"""The loss and the targets checked against the built model before any run starts.

Every target goes through the loss once, class labels are held against the
model's output width, and a plugin's loss is run on a few examples, so that a
loss that cannot use the data, or returns the wrong kind of value, is named at
``nnframe validate`` rather than inside the first step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnframe.data import Dataset, check_labels
from nnframe.error_measures import predictions_of
from nnframe.errors import ConfigError, DataError, PluginError

SHAPE_CHECK_ROWS = 3
"""Examples the built model is run on to check its output shape, and the loss on to check what it returns."""


def check_labels_fit(output_shape: tuple[int, ...], dataset: Dataset) -> None:
    """Class labels against the model's output width, with the row of the first misfit."""
    where = f"data: dataset {dataset.source}"
    if dataset.split_rows is not None:  # the labels in the order built, so that a row is named as in the file
        train_rows, val_rows = dataset.split_rows
        labels = np.empty((len(train_rows) + len(val_rows), *dataset.y.shape[1:]), dtype=dataset.y.dtype)
        labels[train_rows], labels[val_rows] = dataset.y, dataset.y_val
        check_labels(labels, output_shape[-1], where, origin=dataset.row_origin)
        return
    check_labels(dataset.y, output_shape[-1], where, origin=dataset.row_origin)
    if dataset.y_val is not None:
        check_labels(dataset.y_val, output_shape[-1], where, name="y_val", origin=dataset.val_row_origin)


def unused_scores_notes(output_shape: tuple[int, ...], dataset: Dataset) -> list[str]:
    """A model wider than its classes trains, its extra scores never a target: a note, not an error. The classes
    are the dataset's, as it declares them or as its labels show (a data set with one class has a note of its
    own)."""
    classes, width = dataset.num_classes, output_shape[-1] if output_shape else 0
    if len(output_shape) != 2 or dataset.y.ndim != 1 or classes is None or classes < 2 or width <= classes:
        return []
    unused = "the last one never meets" if width == classes + 1 else f"the last {width - classes} never meet"
    return [f"the model gives {width} scores per example, but dataset {dataset.source} has {classes} classes: "
            f"{unused} a target (out: {classes} in the last layer fits them)"]


def check_loss_accepts_targets(loss: Any, loss_type: str, output_shape: tuple[int, ...], dataset: Dataset) -> None:
    """Every target through the loss once, against scores of the model's output shape, before any run starts.

    This catches a loss that cannot use the data (mse on class labels, softmax
    cross-entropy on a one-output model) at the config, not mid-run. After it,
    the loss need not recheck targets on every batch.
    """
    for name, targets in (("y", dataset.y), ("y_val", dataset.y_val)):
        if targets is None:
            continue
        scores = np.zeros((len(targets), *output_shape[1:]), dtype=dataset.x.dtype)
        try:
            with np.errstate(all="ignore"):  # a huge target may overflow a square; the run will say so if it matters
                loss.forward(scores, targets)
        except DataError as exc:
            hint = _flatten_hint(dataset, scores) or _width_hint(loss, dataset, targets, scores)
            raise ConfigError(f"loss {loss_type!r} cannot use the targets {name} of dataset {dataset.source} "
                              f"with a model output of shape {scores.shape}: {exc}{hint}", path="loss") from None


def _width_hint(loss: Any, dataset: Dataset, targets: np.ndarray, scores: np.ndarray) -> str:
    """Regression targets of several values per example, and a model that gives another number of them, for
    nnframe's own losses, whose output is as wide as the targets (a plugin's may want another width)."""
    if not type(loss).__module__.startswith("nnframe."):
        return ""
    if dataset.classification or targets.ndim != 2 or scores.ndim != 2 or targets.shape[1] == scores.shape[1]:
        return ""
    return (f"; the targets hold {targets.shape[1]} values per example and the model gives {scores.shape[1]}: set "
            f"the last node's out to {targets.shape[1]}")


def _flatten_hint(dataset: Dataset, scores: np.ndarray) -> str:
    """Examples of several axes (images) keep them through ``affine``, which acts on the last one."""
    if dataset.x.ndim <= 2 or scores.ndim <= 2:
        return ""
    return (f"; the examples have shape {dataset.x.shape[1:]}, and affine acts on their last axis: if each is "
            "one vector of features, put {type: flatten} first in the model")


def check_loss_outputs(loss: Any, origin: str, output_shape: tuple[int, ...], dataset: Dataset) -> None:
    """The loss's ``forward`` returns one number and its ``backward(1.0)`` a gradient of the scores' shape, checked
    on a few examples at build time: a per-example loss vector would otherwise fail inside the first step, in
    nnframe's code, naming no plugin."""
    rows = min(SHAPE_CHECK_ROWS, len(dataset.y))
    scores = np.zeros((rows, *output_shape[1:]), dtype=dataset.x.dtype)
    with np.errstate(all="ignore"):
        value = loss.forward(scores, dataset.y[:rows])
    if not _is_scalar(value):
        raise PluginError(f"field loss.type: {origin}: forward returned {_described(value)}; it must return the "
                          "batch's mean loss as one float")
    with np.errstate(all="ignore"):
        dx = loss.backward(1.0)
    if getattr(dx, "shape", None) != scores.shape:
        raise PluginError(f"field loss.type: {origin}: backward(1.0) returned {_described(dx)} for scores of shape "
                          f"{scores.shape}; it must return the gradient of the loss for the scores, of their shape")


def _is_scalar(value: Any) -> bool:
    """One real number: a float, a numpy scalar, a 0-d array of any array library."""
    if value is None or isinstance(value, (bool, str, bytes)) or np.ndim(value) != 0:
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _described(value: Any) -> str:
    if value is None:
        return "None"
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{type(value).__name__} of shape {tuple(shape)}"
    return f"{type(value).__name__} {value!r}"[:120]


def error_measures(loss: Any, loss_type: str, output_shape: tuple[int, ...],
                   dataset: Dataset) -> tuple[bool, list[str]]:
    """Whether a regression run's evaluations can measure ``rmse`` and ``mae``: the loss predicts values of the
    targets' size. A loss whose ``predictions`` is ``None`` opts out on purpose; one of another size (a model
    one output too wide, whose extra output the loss then broadcasts over) gets a note."""
    scores, targets = _sample(output_shape, dataset)
    with np.errstate(all="ignore"):
        predictions = predictions_of(loss, scores)
    if predictions is None:
        return False, []
    if np.size(predictions) == np.size(targets):
        return True, []
    return False, [f"loss {loss_type!r} predicts {np.size(predictions) // len(scores)} value(s) per example from "
                   f"the model's output of shape {tuple(output_shape[1:])} per example, where the targets hold "
                   f"{np.size(targets) // len(targets)}: the run measures no rmse or mae; check the last node's out"]


def _sample(output_shape: tuple[int, ...], dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Zero scores of the model's output shape for the first few examples, and their targets."""
    rows = min(SHAPE_CHECK_ROWS, len(dataset.y))
    return np.zeros((rows, *output_shape[1:]), dtype=dataset.x.dtype), dataset.y[:rows]

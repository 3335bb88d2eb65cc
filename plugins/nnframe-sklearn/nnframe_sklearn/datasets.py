"""scikit-learn's bundled datasets for nnframe, split with every class in proportion.

The data ship inside scikit-learn, so nothing is downloaded. Each build
splits off the validation part itself (stratified, drawn from ``ctx.rng``);
the returned :class:`nnframe.data.Dataset` has ``x_val`` set, and nnframe
leaves a dataset that brings its own validation part alone instead of
splitting it again from ``val_fraction``. nnframe then standardizes the
features with the training part's figures (``standardize``, on by default
here) and casts them to the run's dtype.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from nnframe import DatasetContext
from nnframe.data import Dataset, DatasetParams
from nnframe.errors import DataError


class SklearnParams(DatasetParams):
    """Parameters every scikit-learn dataset takes.

    ``standardize`` (nnframe's, on by default here) rescales each feature to
    zero mean and unit variance, with the mean and standard deviation of the
    training part only, so nothing of the validation part leaks into training.
    """

    standardize: bool = Field(True, description="scale each feature to mean 0, std 1 (training part's statistics)")


class DigitsParams(SklearnParams):
    """``digits`` also takes ``scale_pixels``: divide the 0..16 pixel values by 16 (before any standardizing)."""

    scale_pixels: bool = Field(True, description="divide the 0..16 pixel values by 16")


def raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features as float64 and labels as int64 from ``sklearn.datasets.load_<name>``.

    scikit-learn is imported here, not at module level, so that loading the
    plugin (which every ``nnframe`` command does) stays fast.
    """
    from sklearn import datasets

    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)


def build_digits(params: DigitsParams, ctx: DatasetContext) -> Dataset:
    """8x8 handwritten digits: 1797 samples, 64 pixel features, 10 classes."""
    x, y = raw("digits")
    if params.scale_pixels:
        x = x / 16.0
    return prepare(x, y, params, ctx, source="sklearn:digits")


def build_iris(params: SklearnParams, ctx: DatasetContext) -> Dataset:
    """Iris flowers: 150 samples, 4 features, 3 classes."""
    return prepare(*raw("iris"), params, ctx, source="sklearn:iris")


def build_wine(params: SklearnParams, ctx: DatasetContext) -> Dataset:
    """Wine cultivars: 178 samples, 13 chemical features, 3 classes."""
    return prepare(*raw("wine"), params, ctx, source="sklearn:wine")


def build_breast_cancer(params: SklearnParams, ctx: DatasetContext) -> Dataset:
    """Wisconsin breast cancer: 569 samples, 30 features, 2 classes."""
    return prepare(*raw("breast_cancer"), params, ctx, source="sklearn:breast_cancer")


def prepare(x: np.ndarray, y: np.ndarray, params: SklearnParams, ctx: DatasetContext, source: str) -> Dataset:
    """The examples in float64, split (when ``val_fraction > 0``, stratified). nnframe then standardizes them
    with the training part's figures (``standardize``, on by default here) and casts them to the run's dtype."""
    num_classes = int(y.max()) + 1
    if params.val_fraction > 0:
        train, val = stratified_split(y, val_size(len(y), params.val_fraction, source), ctx.rng)
        return Dataset(x[train], y[train], x[val], y[val], num_classes=num_classes, source=source)
    return Dataset(x, y, num_classes=num_classes, source=source)


def val_size(n: int, val_fraction: float, source: str) -> int:
    """``round(n * val_fraction)``, as in nnframe's own split; DataError if either part would be empty."""
    n_val = round(n * val_fraction)
    if not 0 < n_val < n:
        part = "validation" if n_val == 0 else "training"
        raise DataError(f"dataset {source}: val_fraction {val_fraction} of {n} examples leaves no {part} example")
    return n_val


def stratified_split(y: np.ndarray, n_val: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(train, val)`` row indices with ``n_val`` rows in ``val``, each class in proportion.

    ``n_val`` is shared out over the classes in proportion to their sizes
    (largest remainder first); the rows of each class are drawn from ``rng``.
    """
    classes, counts = np.unique(y, return_counts=True)
    per_class = allocate(counts, n_val)
    picks = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, per_class)]
    val = np.sort(np.concatenate(picks))
    train = np.setdiff1d(np.arange(len(y)), val)
    return train, val


def allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` into integers proportional to ``counts`` (largest remainder method)."""
    quotas = counts * total / counts.sum()
    shares = np.floor(quotas).astype(np.int64)
    order = np.argsort(-(quotas - shares), kind="stable")
    shares[order[: total - shares.sum()]] += 1
    return shares

"""Datasets: what a dataset component returns, its checks, the validation split and the dtype cast.

A dataset component's ``build(params, ctx)`` returns a :class:`Dataset`;
:func:`load_dataset` turns it into what training uses: checked by
:func:`validate_dataset`, split by ``val_fraction`` and cast to the training
dtype. Every problem with the data is a :class:`~nnframe.errors.DataError`
naming the dataset's source and what is wrong.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from nnframe.arrays import as_dtype
from nnframe.components import Component, DatasetContext, Params
from nnframe.errors import DataError, PluginError

_NUMERIC_KINDS = "biuf"
UNNAMED_SOURCE = "(dataset)"
"""A :class:`Dataset`'s ``source`` when its build names none; loading puts the dataset type in its place."""


@dataclass(eq=False, repr=False)
class Dataset:
    """Training data, and optionally a validation set, as numpy arrays.

    ``x``: ``(N, D...)`` numbers. ``y``: ``(N,)`` integer class indices or
    ``(N, C)`` one-hot rows when ``classification``; ``(N, K)`` float targets
    otherwise (a ``(N,)`` target is reshaped to ``(N, 1)`` by
    :func:`validate_dataset`). ``num_classes`` is ``None`` for regression, and
    for classification means "infer from the labels". ``source`` names where the
    data came from (a file path, ``"spiral"``) for error messages.
    """

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    num_classes: int | None = None
    source: str = UNNAMED_SOURCE
    classification: bool = True
    split_rows: tuple[np.ndarray, np.ndarray] | None = None
    """Where ``val_fraction`` split the data: the rows of ``x`` and ``y`` as built that the training and the
    validation examples came from, so that a message names the row as it is in the file."""
    feature_names: list[str] | None = None
    """The names of ``x``'s columns, in order, where the data has them (a CSV file's header): new rows for a
    trained model must come in this order."""
    row_origin: Callable[[int], str] | None = None
    """Where row ``i`` of ``x`` and ``y`` as built came from, in words (a CSV file's ``line 154``), for messages
    that name a row; an empty string where it cannot tell."""
    val_row_origin: Callable[[int], str] | None = None
    """The same for the rows of ``x_val`` and ``y_val`` that the build returned (``line 12 of /data/val.csv``)."""
    x_mean: np.ndarray | None = None
    """With ``standardize``, each input feature's mean over the training examples, subtracted from ``x`` and
    ``x_val`` (float64, the shape of one example); ``None`` where the inputs are as read."""
    x_scale: np.ndarray | None = None
    """With ``standardize``, each input feature's standard deviation (its largest magnitude where it is
    constant), which ``x`` and ``x_val`` were divided by."""
    digest_as_built: str | None = None
    """The digest of ``x`` and ``y`` as the config built them, kept where the inputs were scaled by other figures
    since (a fine-tuned run's by those of the run it starts from, a resumed run's by its own): a checkpoint
    records the data the run trains on, which a resume builds again, not the figures it was scaled by."""

    @property
    def n_train(self) -> int:
        return len(self.x)

    @property
    def n_val(self) -> int:
        return 0 if self.x_val is None else len(self.x_val)

    def row_as_built(self, name: str, row: int) -> tuple[str, int]:
        """Array ``name``'s ``row`` as the dataset's build returned it: ``("x_val", 3)`` may be ``("x", 41)``."""
        if self.split_rows is None or name not in ("x", "y", "x_val", "y_val"):
            return name, row
        train_rows, val_rows = self.split_rows
        return name.removesuffix("_val"), int((val_rows if name.endswith("_val") else train_rows)[row])

    def row_name(self, name: str, row: int) -> str:
        """``y[150] (line 154)``: array ``name``'s ``row`` as the build returned it, and where the data has it."""
        name, row = self.row_as_built(name, row)
        return _at(name, row, self.row_origin if name in ("x", "y") else self.val_row_origin)

    def digest(self) -> str:
        """:func:`data_digest` of ``x`` and ``y`` as the config built them (see :attr:`digest_as_built`)."""
        return self.digest_as_built or data_digest(self.x, self.y)

    def scale_inputs(self, x: Any) -> np.ndarray:
        """New examples as the model takes them: scaled as the training inputs were (``data.standardize``),
        computed in float64, in the training inputs' dtype. Give them in float64 where they are large: a float32
        copy of values near 1e9 has lost what tells them apart. One example alone (``x`` of an example's shape)
        comes back in its own shape."""
        x = np.asarray(x)
        if x.shape != self.x.shape[1:] and x.shape[1:] != self.x.shape[1:]:
            raise ValueError(f"scale_inputs: examples of shape {x.shape[1:]}, but the training examples have "
                             f"shape {self.x.shape[1:]}")
        if self.x_mean is None or self.x_scale is None:
            return x.astype(self.x.dtype, copy=False)
        return ((x.astype(np.float64) - self.x_mean) / self.x_scale).astype(self.x.dtype, copy=False)

    def summary(self) -> str:
        """``240 training and 60 validation examples of 2 features, 3 classes``: said when a run starts, so that
        data read other than meant (a label column taken for a feature, a header taken for a row) shows at once."""
        examples = (f"{self.n_train} training and {_count(self.n_val, 'validation example')}" if self.n_val
                    else _count(self.n_train, "training example"))
        features = _count(self.x.shape[1], "feature") if self.x.ndim == 2 else f"shape {_shape(self.x.shape[1:])}"
        if self.x_mean is not None:
            features += " (standardized)"
        if self.classification:
            task = _count(self.num_classes, "class") if self.num_classes is not None else "classes"
        elif self.y.ndim > 2:
            task = f"targets of shape {_shape(self.y.shape[1:])}"
        else:
            task = _count(self.y.shape[1] if self.y.ndim == 2 else 1, "target")
        return f"{examples} of {features}, {task}"

    def __repr__(self) -> str:
        task = f"classes={self.num_classes}" if self.classification else "regression"
        return (f"Dataset(source={self.source!r}, x={_describe(self.x)}, y={_describe(self.y)}, "
                f"n_val={self.n_val}, {task})")


class DatasetParams(Params):
    """The fields every dataset accepts; a dataset plugin's params subclass this.

    ``val_fraction`` of the examples are held out, at random from the data
    stream, as the validation set. A dataset that returns its own validation set
    (``x_val``, ``y_val``) is left as it is: its ``build`` either made that set
    from ``val_fraction`` or must refuse a non-zero one.
    """

    val_fraction: float = Field(0.0, ge=0.0, lt=1.0,
                                description="fraction of the examples held out for validation")
    standardize: bool = Field(False, description="scale each input feature to mean 0 and standard deviation 1 "
                                                 "with the training examples' figures, which the validation "
                                                 "examples take too")

    relative_paths: ClassVar[tuple[str, ...]] = ()
    """Fields holding file paths relative to the config file's directory. The resolved config (``config.yaml``
    in the run directory) holds them made absolute, so that it trains and resumes from wherever it lies."""


def shared_fields(params: type[Params]) -> dict[str, Any]:
    """The :class:`DatasetParams` fields that every dataset section takes, ``val_fraction`` and ``standardize``,
    which ``params`` (a plugin's, which need not subclass it) lacks, as ``{name: (type, FieldInfo)}``."""
    return {name: (DatasetParams.model_fields[name].annotation, DatasetParams.model_fields[name])
            for name in ("val_fraction", "standardize") if name not in params.model_fields}


def load_dataset(component: Component, params: Params, ctx: DatasetContext, where: str = "data",
                 val_fraction: float | None = None, standardize: bool | None = None) -> Dataset:
    """Build a dataset component, validate it, split off ``val_fraction``, standardize the inputs where asked and
    cast to ``ctx.dtype``.

    ``val_fraction`` and ``standardize`` are the config's (every dataset
    section takes them); by default the params', or 0 and off where the params
    have none. A dataset that brings its own validation set (``x_val``) is not
    split again: a ``build`` whose params take ``val_fraction`` has used it or
    refused it, and for one whose params do not, a non-zero ``val_fraction`` is
    refused here. A dataset returns its inputs as read: standardizing is
    nnframe's, after the split, from the training part.
    """
    if val_fraction is None:
        val_fraction = getattr(params, "val_fraction", 0.0)
    if standardize is None:
        standardize = getattr(params, "standardize", False)
    try:
        ds = component.build(params, ctx)
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    except MemoryError as exc:
        raise DataError(f"{where}: dataset {component.name!r} does not fit in memory: {exc}") from None
    if not isinstance(ds, Dataset):
        raise PluginError(f"{where}: dataset {component.name!r} built {type(ds).__name__}, "
                          "not an nnframe.data.Dataset; its build() must return Dataset(x, y, ...)")
    if ds.source == UNNAMED_SOURCE:
        ds = replace(ds, source=repr(component.name))
    ds = validate_dataset(ds, where)
    if ds.x_val is None or "val_fraction" not in type(params).model_fields:  # such a build never saw it
        ds = split_validation(ds, val_fraction, ctx.rng, where)
    if standardize:
        ds = standardized(ds)
    return cast(ds, ctx.dtype, where)


def validate_dataset(ds: Dataset, where: str) -> Dataset:
    """Check ``ds`` and return it normalised: labels as int64 (a ``(N, 1)`` column of them as ``(N,)``),
    1-D regression targets as ``(N, 1)``.

    Raises DataError for: empty data, ``x`` with no features, non-numeric or non-finite ``x``, ``x``/``y``
    of different lengths, labels that are not non-negative integers, rows that
    are not one-hot, labels beyond ``num_classes``, and a validation set that does
    not match the training set.
    """
    prefix = _prefix(ds, where)
    x = _check_features(ds.x, "x", prefix, ds.row_origin)
    y = _check_targets(ds.y, "y", x, ds.classification, prefix, ds.row_origin)
    x_val = y_val = None
    if (ds.x_val is None) != (ds.y_val is None):
        present, missing = ("x_val", "y_val") if ds.y_val is None else ("y_val", "x_val")
        raise DataError(f"{prefix}: has {present} but no {missing}; give both or neither")
    if ds.x_val is not None:
        x_val = _check_features(ds.x_val, "x_val", prefix, ds.val_row_origin)
        if x_val.shape[1:] != x.shape[1:]:
            raise DataError(f"{prefix}: x_val examples have shape {x_val.shape[1:]}, "
                            f"but x examples have shape {x.shape[1:]}")
        y_val = _check_targets(ds.y_val, "y_val", x_val, ds.classification, prefix, ds.val_row_origin)
        if y_val.shape[1:] != y.shape[1:]:
            raise DataError(f"{prefix}: y_val has shape {y_val.shape}, which does not match y's {y.shape} "
                            "(one has class indices and the other one-hot rows, or the widths differ)")
    num_classes = _num_classes(ds, y, y_val, prefix) if ds.classification else None
    return replace(ds, x=x, y=y, x_val=x_val, y_val=y_val, num_classes=num_classes)


def check_labels(y: np.ndarray, num_outputs: int, where: str, name: str = "y",
                 origin: Callable[[int], str] | None = None) -> None:
    """Check targets against the model's output width ``num_outputs``.

    Class indices must lie in ``0..num_outputs-1``; a model with one output is a
    binary classifier and takes labels 0 and 1. One-hot or float targets must be
    ``num_outputs`` wide. Call it for ``y`` and for ``y_val``; ``origin`` says where
    a row came from (a :class:`Dataset`'s ``row_origin``).
    """
    if y.ndim == 1 and y.dtype.kind in "biu":
        limit = 2 if num_outputs == 1 else num_outputs
        if y.size and int(y.max()) >= limit:
            row = int(np.argmax(y >= limit))
            expected = ("a model with 1 output is a binary classifier and takes labels 0 and 1"
                        if num_outputs == 1 else
                        f"the model outputs {num_outputs} values, so class indices run 0..{num_outputs - 1}")
            starts_at_one = num_outputs > 1 and int(y.min()) == 1 and int(y.max()) == num_outputs
            classes = int(y.max()) + 1
            if starts_at_one:
                fix = (f"the labels run 1..{num_outputs} and class 0 never occurs: subtract 1 from them, so that they "
                       f"run 0..{num_outputs - 1}")
            elif num_outputs == 1:  # a binary classifier's loss (sigmoid_cross_entropy) takes no more classes
                fix = (f"for {classes} classes set the last node's out to {classes}, with softmax_cross_entropy as "
                       "the loss, or fix the labels")
            else:
                fix = f"set the last node's out to at least {classes} or fix the labels"
            raise DataError(f"{where}: {_at(name, row, origin)} is class {int(y[row])}, but {expected}; {fix}")
        return
    width = y.shape[1] if y.ndim == 2 else 1
    if width != num_outputs:
        raise DataError(f"{where}: {name} has {width} value(s) per example (shape {y.shape}), "
                        f"but the model outputs {num_outputs}; make the last node's out {width}")


def split_validation(ds: Dataset, fraction: float, rng: np.random.Generator, where: str = "data") -> Dataset:
    """Hold out ``round(fraction * N)`` random examples as the validation set.

    Deterministic given ``rng``; both parts keep the source order. ``fraction``
    0 returns ``ds`` unchanged. A dataset with its own validation set cannot be
    split again, and a split that leaves either part empty is an error.
    """
    if fraction == 0:
        return ds
    prefix = _prefix(ds, where)
    if not 0 < fraction < 1:
        raise DataError(f"{prefix}: val_fraction must be at least 0 and below 1; found {fraction}")
    if ds.x_val is not None:
        raise DataError(f"{prefix}: the dataset already has a validation set ({ds.n_val} examples "
                        f"in x_val/y_val); set val_fraction to 0 (found {fraction})")
    n = ds.n_train
    n_val = round(fraction * n)
    if n_val == 0 or n_val == n:
        part = "validation" if n_val == 0 else "training"
        raise DataError(f"{prefix}: val_fraction {fraction} of {n} examples leaves no {part} example")
    order = rng.permutation(n)
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return replace(ds, x=ds.x[train], y=ds.y[train], x_val=ds.x[val], y_val=ds.y[val], split_rows=(train, val))


def standardized(ds: Dataset) -> Dataset:
    """``x`` and ``x_val`` with each feature (each position of an example) less its mean over ``x``, divided by
    its standard deviation there, from the training examples alone, so that the validation set measures what new
    data would.

    The figures are taken in float64 on the values divided by each feature's largest magnitude, so that no
    finite value overflows them. A feature constant on the training examples, to within the rounding of its
    variance (a repeated 0.1 read from text has a standard deviation of 1e-17, not 0; the bound is
    scikit-learn's), is divided by its magnitude instead, so that validation values that differ from it stay
    in proportion.
    """
    magnitude = np.max(np.abs(ds.x), axis=0).astype(np.float64)
    magnitude[magnitude == 0] = 1.0
    unit = ds.x / magnitude
    mean = unit.mean(axis=0)
    unit -= mean
    centred = unit.reshape(len(unit), -1)
    variance = (np.einsum("ij,ij->j", centred, centred) / len(unit)).reshape(mean.shape)  # no square of x kept
    n, eps = len(unit), np.finfo(np.float64).eps
    constant = variance <= n * eps * variance + (n * mean * eps) ** 2
    spread = np.where(constant, 1.0, np.sqrt(variance))
    unit /= spread

    def scaled(x: np.ndarray | None) -> np.ndarray | None:
        return None if x is None else (x / magnitude - mean) / spread

    return replace(ds, x=unit, x_val=scaled(ds.x_val), x_mean=mean * magnitude, x_scale=spread * magnitude)


def data_digest(*arrays: np.ndarray) -> str:
    """A digest of the arrays' dtypes, shapes and values (BLAKE2b, about 1 GB/s: 0.2 s for MNIST's 188 MB)."""
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def rescaled(ds: Dataset, mean: np.ndarray, scale: np.ndarray) -> Dataset:
    """A standardized ``ds`` with its inputs scaled by other figures instead (a run's own, where its data has
    changed since it trained), in float64 and back to their dtype."""
    if ds.x_mean is None or ds.x_scale is None:
        raise ValueError("rescaled: the dataset is not standardized")

    def again(x: np.ndarray | None) -> np.ndarray | None:
        if x is None:
            return None
        return ((x.astype(np.float64) * ds.x_scale + ds.x_mean - mean) / scale).astype(x.dtype, copy=False)

    return replace(ds, x=again(ds.x), x_val=again(ds.x_val), x_mean=mean, x_scale=scale, digest_as_built=ds.digest())


def as_trained(ds: Dataset, scaling: tuple[np.ndarray, np.ndarray] | None) -> tuple[Dataset, str | None]:
    """``ds`` with its inputs scaled as a run trained on them (``scaling``, from its checkpoint), and a note where
    that changed them: the figures of data that changed since are not the model's. A run trained on inputs
    otherwise standardized, or not, is refused."""
    if scaling is None and ds.x_mean is None:
        return ds, None
    if scaling is None or ds.x_mean is None:
        trained, now = ("standardized inputs", "true") if scaling is not None else ("its inputs as read", "false")
        error = DataError(f"data: the run was trained on {trained}; set data.standardize: {now} to go on with it")
        error.path = "data.standardize"  # type: ignore[attr-defined]  (the override that set it is named)
        raise error
    mean, scale = (np.asarray(figures, dtype=np.float64) for figures in scaling)
    if mean.shape != ds.x_mean.shape:
        raise DataError(f"data: the run standardized examples of shape {mean.shape}, but they have shape "
                        f"{ds.x_mean.shape} now")
    if np.array_equal(mean, ds.x_mean) and np.array_equal(scale, ds.x_scale):
        return ds, None
    return rescaled(ds, mean, scale), ("the data's standardization figures are not the run's (it changed since "
                                       "the run trained, or the run took its figures from train.init_from's run): "
                                       "its inputs are scaled with the run's own")


def cast(ds: Dataset, dtype: np.dtype | str, where: str = "data") -> Dataset:
    """``x`` and float targets in the training ``dtype``; integer labels, and a regression run's whole-number
    targets, as int64 (the losses compute in the scores' dtype). Copies only if needed.

    A finite value too large for ``dtype`` (1e39 in float32) is a data error
    here, instead of an infinity that would make the first step diverge.
    """
    dtype = as_dtype(dtype)

    def converted(array: np.ndarray | None, name: str, to: np.dtype) -> np.ndarray | None:
        if array is None:
            return None
        with np.errstate(over="ignore"):
            out = array.astype(to, copy=False)
        if out is not array and out.dtype.kind == "f" and not np.isfinite(out).all():
            row = int(np.argmax(~np.isfinite(out.reshape(len(out), -1)).all(axis=1)))
            fix = "standardize the inputs (data.standardize: true)" if name.startswith("x") else "scale the targets"
            raise DataError(f"{_prefix(ds, where)}: {ds.row_name(name, row)} holds a value beyond the range of {to} "
                            f"(the largest magnitude is {float(np.abs(array).max()):.3g}); {fix} "
                            "or train in float64 (train.dtype: float64)")
        return out

    def label_type(y: np.ndarray | None) -> np.dtype:
        return np.dtype(np.int64) if y is not None and y.dtype.kind in "biu" else dtype

    return replace(ds, x=converted(ds.x, "x", dtype), y=converted(ds.y, "y", label_type(ds.y)),
                   x_val=converted(ds.x_val, "x_val", dtype), y_val=converted(ds.y_val, "y_val", label_type(ds.y_val)))


def _prefix(ds: Dataset, where: str) -> str:
    return f"{where}: dataset {ds.source}" if where else f"dataset {ds.source}"


def _at(name: str, row: int, origin: Callable[[int], str] | None) -> str:
    """``y[150]``, and where the data has that row: ``y[150] (line 154)``."""
    where = _origin(row, origin)
    return f"{name}[{row}] ({where})" if where else f"{name}[{row}]"


def _origin(row: int, origin: Callable[[int], str] | None) -> str:
    """Where ``row`` came from, or ``""``: a dataset's ``row_origin`` that fails leaves the message it adds to
    as it was."""
    if origin is None:
        return ""
    try:
        return str(origin(row) or "")
    except Exception:
        return ""


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _count(number: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("s") else "s")
    return f"{number} {noun if number == 1 else plural}"


def _describe(array: Any) -> str:
    if isinstance(array, np.ndarray):
        return f"{array.shape} {array.dtype}"
    return type(array).__name__


def _as_array(value: Any, name: str, prefix: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{prefix}: {name} cannot be made into an array: {exc}") from None


def _check_features(value: Any, name: str, prefix: str, origin: Callable[[int], str] | None = None) -> np.ndarray:
    x = _as_array(value, name, prefix)
    if x.dtype.kind not in _NUMERIC_KINDS:
        raise DataError(f"{prefix}: {name} has dtype {x.dtype}; expected numbers (float or int)")
    if x.ndim < 2:
        raise DataError(f"{prefix}: {name} has shape {x.shape}; expected (N, D...) with one row per example "
                        f"(a single feature is {name}[:, None])")
    if len(x) == 0:
        raise DataError(f"{prefix}: {name} has no examples (shape {x.shape})")
    if x.size == 0:
        raise DataError(f"{prefix}: {name} has no features (shape {x.shape}); each example needs at least one "
                        "feature, or the model learns only a bias")
    _check_finite(x, name, prefix, origin)
    return x


def _check_finite(x: np.ndarray, name: str, prefix: str, origin: Callable[[int], str] | None = None) -> None:
    """Refuse NaN and infinity, naming the first. A finite sum (in float64, so no finite data overflows it) is
    the common case, and asks for no array the size of ``x``."""
    if x.dtype.kind != "f":
        return
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(np.add.reduce(x, axis=None, dtype=np.float64)):
            return
    bad = ~np.isfinite(x)
    count = int(np.count_nonzero(bad))
    if count:
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        where = _origin(first[0], origin)
        raise DataError(f"{prefix}: {name} has {count} NaN or infinite value(s); the first is "
                        f"{name}[{', '.join(map(str, first))}] = {x[first]} (example {first[0]}"
                        f"{', ' + where if where else ''})")


def _check_targets(value: Any, name: str, x: np.ndarray, classification: bool, prefix: str,
                   origin: Callable[[int], str] | None = None) -> np.ndarray:
    y = _as_array(value, name, prefix)
    x_name = "x_val" if name == "y_val" else "x"
    if y.ndim == 0 or len(y) != len(x):
        found = "a scalar" if y.ndim == 0 else f"{len(y)}"
        raise DataError(f"{prefix}: {x_name} has {len(x)} examples but {name} has {found}; "
                        "they must have one target per example")
    if y.dtype.kind not in _NUMERIC_KINDS:
        first = y.reshape(-1)[0]
        first = first.item() if isinstance(first, np.generic) else first
        expected = "integer class indices 0..C-1" if classification else "numbers"
        raise DataError(f"{prefix}: {name} has dtype {y.dtype} (first value {first!r}); expected {expected}")
    if not classification:
        _check_finite(y, name, prefix, origin)
        return y.reshape(-1, 1) if y.ndim == 1 else y
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):  # a column of labels is the labels
        return _check_class_indices(y.reshape(-1), name, prefix, origin)
    if y.ndim == 2:
        return _check_one_hot(y, name, prefix, origin)
    raise DataError(f"{prefix}: {name} has shape {y.shape}; expected (N,) class indices or (N, C) one-hot rows")


MAX_CLASS_INDEX = 2**31 - 1
"""Larger labels are no class of any model here; a float one would not survive the cast to int64 intact, nor a
uint64 one beyond int64's range."""


def _check_class_indices(y: np.ndarray, name: str, prefix: str, origin: Callable[[int], str] | None) -> np.ndarray:
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y)) | (np.abs(y) > MAX_CLASS_INDEX)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"{prefix}: {_at(name, row, origin)} = {y[row]} is not a class index; labels must be "
                            "integers 0..C-1 (for real-valued targets, set the dataset's task: regression and use a "
                            "regression loss such as mse; a plugin's dataset returns Dataset(x, y, "
                            "classification=False))")
    elif y.size and y.dtype.kind in "iu" and y.max() > MAX_CLASS_INDEX:  # a uint64 beyond int64 would wrap
        row = int(np.argmax(y > MAX_CLASS_INDEX))
        raise DataError(f"{prefix}: {_at(name, row, origin)} = {y[row]} is not a class index of any model here; "
                        "labels must be class indices 0..C-1")
    if y.size and y.min() < 0:
        row = int(np.argmax(y < 0))
        raise DataError(f"{prefix}: {_at(name, row, origin)} = {y[row]} is negative; labels must be class indices "
                        "0..C-1")
    return y.astype(np.int64, copy=False)


def _check_one_hot(y: np.ndarray, name: str, prefix: str, origin: Callable[[int], str] | None) -> np.ndarray:
    bad = ~((y == 0) | (y == 1)).all(axis=1) | (y.sum(axis=1) != 1)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{prefix}: {_at(name, row, origin)} = {y[row].tolist()} is not one-hot "
                        "(exactly one 1, the rest 0); for soft or real-valued targets use a regression dataset")
    return y.astype(np.int64, copy=False) if y.dtype.kind in "biu" else y


def _num_classes(ds: Dataset, y: np.ndarray, y_val: np.ndarray | None, prefix: str) -> int:
    labels = [t for t in (y, y_val) if t is not None]
    if y.ndim == 2:
        found = y.shape[1]
    else:
        found = max(int(t.max()) for t in labels) + 1
    if ds.num_classes is None:
        return found
    if y.ndim == 2 and found != ds.num_classes:
        raise DataError(f"{prefix}: one-hot rows are {found} wide, but the dataset declares "
                        f"{ds.num_classes} classes")
    if found > ds.num_classes:
        raise DataError(f"{prefix}: a label is {found - 1}, but the dataset declares {ds.num_classes} "
                        f"classes (0..{ds.num_classes - 1})")
    return ds.num_classes

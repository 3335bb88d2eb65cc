"""Tests for nnframe.data: Dataset, validation, label checks, the validation split, the cast, load_dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydantic
import pytest

from nnframe.components import DatasetContext, Params, dataset
from nnframe.data import (Dataset, DatasetParams, as_trained, cast, check_labels, load_dataset, rescaled,
                          split_validation, standardized, validate_dataset)
from nnframe.errors import DataError, PluginError

X4 = np.arange(8, dtype=np.float64).reshape(4, 2)
Y4 = np.array([0, 1, 2, 1])


def _ds(x=X4, y=Y4, **kwargs) -> Dataset:
    return Dataset(x, y, source="test.npz", **kwargs)


def _nan_x() -> np.ndarray:
    x = X4.copy()
    x[3, 1] = np.nan
    x[2, 0] = np.inf
    return x


def test_dataset_sizes_and_repr():
    ds = _ds(x_val=X4[:3], y_val=Y4[:3], num_classes=3)
    assert (ds.n_train, ds.n_val) == (4, 3)
    assert repr(ds) == ("Dataset(source='test.npz', x=(4, 2) float64, y=(4,) int64, n_val=3, classes=3)")
    assert "regression" in repr(_ds(y=X4, classification=False))


@pytest.mark.parametrize("ds, expected", [
    (_ds(x_val=X4[:3], y_val=Y4[:3], num_classes=3), "4 training and 3 validation examples of 2 features, 3 classes"),
    (_ds(x=X4[:, :1], num_classes=1), "4 training examples of 1 feature, 1 class"),
    (_ds(x=np.zeros((4, 1, 3, 2)), num_classes=5), "4 training examples of shape 1x3x2, 5 classes"),
    (_ds(y=X4, classification=False), "4 training examples of 2 features, 2 targets"),
    (_ds(y=Y4.astype(float), classification=False), "4 training examples of 2 features, 1 target"),
    (_ds(x=X4[:1], y=Y4[:1], num_classes=1), "1 training example of 2 features, 1 class"),
    (_ds(y=np.zeros((4, 2, 3)), classification=False), "4 training examples of 2 features, targets of shape 2x3"),
])
def test_a_dataset_summary_says_what_a_run_trains_on(ds, expected):
    assert ds.summary() == expected


def test_standardized_inputs_take_the_training_examples_figures_alone():
    x = np.array([[1.0, 5.0, 100.0], [3.0, 5.0, 300.0], [5.0, 5.0, 200.0]])
    x_val = np.array([[7.0, 6.0, 200.0]])
    ds = standardized(Dataset(x, np.array([0, 1, 0]), x_val, np.array([1]), num_classes=2))
    np.testing.assert_allclose(ds.x_mean, [3.0, 5.0, 200.0])
    np.testing.assert_allclose(ds.x_scale, [np.sqrt(8 / 3), 5.0, np.sqrt(20000 / 3)])  # constant: its magnitude
    np.testing.assert_allclose(ds.x.mean(axis=0), 0.0, atol=1e-15)
    np.testing.assert_allclose(ds.x.std(axis=0), [1.0, 0.0, 1.0])
    np.testing.assert_allclose(ds.x_val, [[4 / np.sqrt(8 / 3), 0.2, 0.0]])
    np.testing.assert_allclose(ds.scale_inputs([[3.0, 5.0, 200.0], [7.0, 6.0, 200.0]]), [[0, 0, 0], ds.x_val[0]])
    np.testing.assert_allclose(ds.scale_inputs([7.0, 6.0, 200.0]), ds.x_val[0])  # one example, in its own shape
    assert ds.summary() == "3 training and 1 validation example of 3 features (standardized), 2 classes"
    raw = Dataset(x, np.array([0, 1, 0]), num_classes=2)
    assert raw.scale_inputs(x) is x and (raw.x_mean, raw.x_scale) == (None, None)
    with pytest.raises(ValueError, match=r"examples of shape \(1,\), but the training examples have shape \(3,\)"):
        ds.scale_inputs([[50000.0]])


def test_standardizing_is_safe_at_the_edges_of_float64():
    x = np.column_stack([np.full(10, 0.1),  # a repeated 0.1 has a standard deviation of 1e-17 in float64
                         np.linspace(-1e200, 1e200, 10),  # squares that overflow
                         np.linspace(1.5e308, 1.7e308, 10)])  # a sum that overflows
    ds = standardized(Dataset(x, np.zeros(10, int), np.array([[0.2, 0.0, 1.6e308]]), np.zeros(1, int)))
    assert np.isfinite(ds.x).all() and np.isfinite(ds.x_mean).all() and np.isfinite(ds.x_scale).all()
    np.testing.assert_allclose(ds.x.std(axis=0), [0.0, 1.0, 1.0])
    np.testing.assert_allclose(ds.x_val, [[1.0, 0.0, 0.0]], atol=1e-12)  # 0.2 is twice the constant 0.1


def test_a_dataset_is_scaled_as_its_run_was_trained():
    raw = Dataset(np.array([[1.0], [3.0]]), np.array([0, 1]), num_classes=2)
    scaled = standardized(raw)
    figures = (scaled.x_mean, scaled.x_scale)
    assert as_trained(raw, None) == (raw, None) and as_trained(scaled, figures) == (scaled, None)
    with pytest.raises(DataError, match="trained on standardized inputs; set data.standardize: true"):
        as_trained(raw, figures)
    with pytest.raises(DataError, match="trained on its inputs as read; set data.standardize: false"):
        as_trained(scaled, None)
    again, note = as_trained(scaled, (np.array([0.0]), np.array([2.0])))
    np.testing.assert_allclose(again.x, [[0.5], [1.5]])
    assert "not the run's" in note


def test_a_standardized_dataset_takes_other_figures_through_its_own():
    ds = standardized(Dataset(np.array([[1.0], [3.0]]), np.array([0, 1]), num_classes=2))
    again = rescaled(ds, np.array([0.0]), np.array([2.0]))
    np.testing.assert_allclose(again.x, [[0.5], [1.5]])
    assert (again.x_mean.tolist(), again.x_scale.tolist()) == ([0.0], [2.0])


def test_a_row_origin_that_fails_leaves_the_message_as_it_was():
    def broken(row):
        raise IndexError(row)

    with pytest.raises(DataError, match=r"y\[3\] = -1 is negative"):
        validate_dataset(_ds(y=np.array([0, 1, 2, -1]), row_origin=broken), "data")


@pytest.mark.parametrize("ds, expected", [
    # two bad values; the first in row-major order is x[2, 0] = inf
    (_ds(x=_nan_x()), "x has 2 NaN or infinite value(s); the first is x[2, 0] = inf (example 2)"),
    (_ds(y=Y4[:3]), "x has 4 examples but y has 3"),
    (_ds(x=np.zeros((0, 2)), y=np.zeros(0, dtype=int)), "x has no examples (shape (0, 2))"),
    (_ds(x=np.zeros((4, 0))), "x has no features (shape (4, 0)); each example needs at least one feature"),
    (_ds(x=np.zeros((4, 3, 0))), "x has no features (shape (4, 3, 0))"),
    (_ds(x=np.zeros((0, 0)), y=np.zeros(0, dtype=int)), "x has no examples (shape (0, 0))"),
    (_ds(x_val=np.zeros((2, 0)), y_val=Y4[:2]), "x_val has no features (shape (2, 0))"),
    (_ds(y=np.array([0, 1, 1.5, 2])), "y[2] = 1.5 is not a class index"),
    (_ds(y=np.array([0, 1, np.nan, 2])), "y[2] = nan is not a class index"),
    (_ds(y=np.array(["cat", "dog", "cat", "dog"])), "y has dtype <U3 (first value 'cat')"),
    (_ds(y=np.array([0, -1, 2, 1])), "y[1] = -1 is negative"),
    (_ds(y=np.array([0, 1, 2**63 + 5, 1], dtype=np.uint64)), "y[2] = 9223372036854775813 is not a class index"),
    (_ds(y=np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0]])), "y[1] = [1, 1, 0] is not one-hot"),
    (_ds(y=np.array([[1, 0], [0.5, 0.5], [0, 1], [0, 1]])), "y[1] = [0.5, 0.5] is not one-hot"),
    (_ds(y=np.zeros((4, 2, 2))), "y has shape (4, 2, 2); expected (N,) class indices or (N, C) one-hot"),
    (_ds(x=np.array([["a", "b"]] * 4)), "x has dtype <U1; expected numbers"),
    (_ds(x=np.arange(4.0)), "x has shape (4,); expected (N, D...)"),
    (_ds(x_val=X4), "has x_val but no y_val"),
    (_ds(y_val=Y4), "has y_val but no x_val"),
    (_ds(x_val=np.zeros((2, 3)), y_val=Y4[:2]), "x_val examples have shape (3,), but x examples have shape (2,)"),
    (_ds(x_val=X4[:2], y_val=Y4[:3]), "x_val has 2 examples but y_val has 3"),
    (_ds(x_val=X4[:2], y_val=np.eye(3, dtype=int)[:2]), "y_val has shape (2, 3), which does not match y's (4,)"),
    (_ds(x_val=_nan_x(), y_val=Y4), "x_val has 2 NaN or infinite value(s)"),
    (_ds(num_classes=2), "a label is 2, but the dataset declares 2 classes (0..1)"),
    (_ds(y=np.eye(3)[Y4], num_classes=4), "one-hot rows are 3 wide, but the dataset declares 4 classes"),
    (_ds(y=np.array([0.5, np.inf, 1.0, 2.0]), classification=False), "y has 1 NaN or infinite value(s)"),
])
def test_validate_rejects_malformed_data(ds, expected):
    with pytest.raises(DataError) as info:
        validate_dataset(ds, "exp.yaml, field data")
    assert str(info.value).startswith("exp.yaml, field data: dataset test.npz: ")
    assert expected in str(info.value)


def test_validate_normalises_labels_and_infers_classes():
    ds = validate_dataset(_ds(y=np.array([0.0, 1.0, 2.0, 1.0]), x_val=X4[:2], y_val=np.array([3, 0])), "data")
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [0, 1, 2, 1]
    assert ds.num_classes == 4  # the largest label anywhere is y_val's 3, so 3 + 1
    assert validate_dataset(_ds(y=np.array([True, False, True, True])), "data").num_classes == 2
    one_hot = validate_dataset(_ds(y=np.eye(5, dtype=np.int32)[Y4]), "data")
    assert (one_hot.y.dtype, one_hot.num_classes) == (np.int64, 5)
    assert validate_dataset(_ds(num_classes=7), "data").num_classes == 7


def test_validate_reads_a_column_of_labels_as_labels():
    ds = validate_dataset(Dataset(np.zeros((4, 2)), np.array([[0], [1], [1], [0]], dtype=np.float32)), "data")
    assert ds.y.shape == (4,) and ds.y.dtype == np.int64 and ds.num_classes == 2
    with pytest.raises(DataError, match=r"y\[1\] = 0.5 is not a class index"):
        validate_dataset(Dataset(np.zeros((2, 2)), np.array([[0.0], [0.5]])), "data")


def test_validate_regression_targets_become_columns():
    ds = validate_dataset(_ds(y=np.array([0.5, -1.25, 3.0, 0.0]), classification=False, num_classes=3), "data")
    assert ds.y.shape == (4, 1) and ds.y[:, 0].tolist() == [0.5, -1.25, 3.0, 0.0]
    assert ds.num_classes is None
    soft = validate_dataset(_ds(y=np.full((4, 2), 0.5), classification=False), "data")
    assert soft.y.shape == (4, 2)


@pytest.mark.parametrize("y, num_outputs, expected", [
    (np.array([0, 2, 3]), 3, "y[2] is class 3, but the model outputs 3 values, so class indices run 0..2; "
                             "set the last node's out to at least 4"),
    (np.array([0, 1, 2]), 1, "y[2] is class 2, but a model with 1 output is a binary classifier and takes labels 0 "
                             "and 1; for 3 classes set the last node's out to 3, with softmax_cross_entropy as the "
                             "loss, or fix the labels"),
    (np.array([1, 2, 3]), 3, "y[2] is class 3, but the model outputs 3 values, so class indices run 0..2; the "
                             "labels run 1..3 and class 0 never occurs: subtract 1 from them"),
    (np.eye(4, dtype=np.int64), 3, "y has 4 value(s) per example (shape (4, 4)), but the model outputs 3"),
    (np.zeros((5, 2), dtype=np.float32), 1, "y has 2 value(s) per example"),
    (np.zeros(5, dtype=np.float32), 2, "y has 1 value(s) per example"),
])
def test_check_labels_rejects_targets_the_model_cannot_output(y, num_outputs, expected):
    with pytest.raises(DataError, match="^model: ") as info:
        check_labels(y, num_outputs, "model")
    assert expected in str(info.value)


@pytest.mark.parametrize("y, num_outputs", [
    (np.array([0, 2, 3]), 4),
    (np.array([0, 1, 1]), 1),
    (np.eye(3, dtype=np.int64), 3),
    (np.zeros((5, 2), dtype=np.float32), 2),
    (np.zeros(0, dtype=np.int64), 3),
])
def test_check_labels_accepts_targets_that_fit(y, num_outputs):
    check_labels(y, num_outputs, "model")


def test_check_labels_names_the_array():
    with pytest.raises(DataError, match=r"y_val\[1\] is class 5"):
        check_labels(np.array([0, 5]), 3, "model", name="y_val")


def _rows_dataset(n: int) -> Dataset:
    return Dataset(np.arange(n, dtype=np.float64)[:, None], np.arange(n) % 3, source="rows")


@pytest.mark.parametrize("n, fraction, n_val", [
    (10, 0.3, 3),    # 0.3 * 10 = 3
    (300, 0.1, 30),  # 0.1 * 300 = 30
    (7, 0.5, 4),     # 0.5 * 7 = 3.5, rounds to 4 (round half to even)
    (10, 0.04, 0),   # 0.04 * 10 = 0.4 rounds to 0: an error below
])
def test_split_validation_sizes(n, fraction, n_val):
    ds = _rows_dataset(n)
    if n_val == 0:
        with pytest.raises(DataError, match=f"val_fraction {fraction} of {n} examples leaves no validation example"):
            split_validation(ds, fraction, np.random.default_rng(0))
        return
    split = split_validation(ds, fraction, np.random.default_rng(0))
    assert (split.n_train, split.n_val) == (n - n_val, n_val)
    rows = np.concatenate([split.x[:, 0], split.x_val[:, 0]])
    assert sorted(rows.tolist()) == list(range(n))
    assert np.all(np.diff(split.x[:, 0]) > 0) and np.all(np.diff(split.x_val[:, 0]) > 0)
    assert np.array_equal(split.y, split.x[:, 0].astype(int) % 3)
    assert np.array_equal(split.y_val, split.x_val[:, 0].astype(int) % 3)


def test_split_validation_is_deterministic_in_the_rng():
    ds = _rows_dataset(100)
    first = split_validation(ds, 0.2, np.random.default_rng(5)).x_val
    again = split_validation(ds, 0.2, np.random.default_rng(5)).x_val
    other = split_validation(ds, 0.2, np.random.default_rng(6)).x_val
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_split_validation_edge_cases():
    ds = _rows_dataset(10)
    assert split_validation(ds, 0.0, np.random.default_rng(0)) is ds
    with pytest.raises(DataError, match="leaves no training example"):
        split_validation(ds, 0.96, np.random.default_rng(0))  # 0.96 * 10 = 9.6 rounds to 10
    with pytest.raises(DataError, match="val_fraction must be at least 0 and below 1; found 1.0"):
        split_validation(ds, 1.0, np.random.default_rng(0))
    with_val = Dataset(ds.x, ds.y, ds.x[:2], ds.y[:2], source="own.npz")
    with pytest.raises(DataError, match=r"already has a validation set \(2 examples"):
        split_validation(with_val, 0.2, np.random.default_rng(0))


def test_cast_sets_the_training_dtype():
    ds = Dataset(X4, Y4.astype(np.int32), X4[:2], np.eye(3)[:2], source="t")
    out = cast(ds, "float32")
    assert (out.x.dtype, out.x_val.dtype) == (np.float32, np.float32)
    assert out.y.dtype == np.int64
    assert out.y_val.dtype == np.float32
    same = cast(out, np.float32)
    assert same.x is out.x and same.y is out.y


def test_a_value_beyond_the_training_dtype_is_a_data_error_not_an_overflow(recwarn):
    x = X4.astype(np.float64)
    x[2, 1] = 1e39
    with pytest.raises(DataError, match=r"^data: dataset t: x\[2\] holds a value beyond the range of float32 "
                                        r"\(the largest magnitude is 1e\+39\); standardize the inputs "
                                        r"\(data.standardize: true\) or train in float64"):
        cast(Dataset(x, Y4, source="t"), "float32")
    with pytest.raises(DataError, match=r"y_val\[1\] holds a value beyond the range of float32 .*; scale the "
                                        r"targets or train in float64"):
        cast(Dataset(X4, Y4, X4[:2], np.array([1.0, -3e38 * 10]), source="t"), "float32")
    assert cast(Dataset(x, Y4, source="t"), "float64").x[2, 1] == 1e39
    assert not recwarn.list  # numpy's overflow warning stays inside


def test_dataset_params_bounds():
    assert DatasetParams().val_fraction == 0.0
    for bad in (-0.1, 1.0):
        with pytest.raises(pydantic.ValidationError):
            DatasetParams(val_fraction=bad)


class ToyParams(DatasetParams):
    n: int = 10


def _ctx(seed: int = 0) -> DatasetContext:
    return DatasetContext(Path("."), np.random.default_rng(seed), np.dtype(np.float32))


def test_load_dataset_builds_validates_splits_and_casts():
    def build(params: ToyParams, ctx: DatasetContext) -> Dataset:
        return _rows_dataset(params.n)

    ds = load_dataset(dataset("toy", ToyParams, build), ToyParams(val_fraction=0.2), _ctx())
    assert (ds.n_train, ds.n_val, ds.x.dtype, ds.y.dtype, ds.num_classes) == (8, 2, np.float32, np.int64, 3)
    again = load_dataset(dataset("toy", ToyParams, build), ToyParams(val_fraction=0.2), _ctx())
    assert np.array_equal(ds.x_val, again.x_val)


def test_load_dataset_leaves_a_brought_validation_set_alone():
    def build(params: ToyParams, ctx: DatasetContext) -> Dataset:
        return Dataset(X4, Y4, X4[:2], Y4[:2], source="own")

    ds = load_dataset(dataset("toy", ToyParams, build), ToyParams(val_fraction=0.5), _ctx())
    assert (ds.n_train, ds.n_val) == (4, 2)
    assert np.array_equal(ds.x_val, X4[:2])


def test_load_dataset_accepts_params_without_val_fraction():
    component = dataset("plain", Params, lambda params, ctx: _rows_dataset(4))
    assert load_dataset(component, Params(), _ctx()).n_val == 0


@pytest.mark.parametrize("build, error, expected", [
    (lambda p, c: Dataset(_nan_x(), Y4, source="toy"), DataError, "data: dataset toy: x has 2 NaN"),
    (lambda p, c: (X4, Y4), PluginError, "data: dataset 'toy' built tuple, not an nnframe.data.Dataset"),
    (lambda p, c: Dataset(X4, Y4[:3]), DataError, "data: dataset 'toy': x has 4 examples but y has 3"),  # no source
])
def test_load_dataset_rejects_bad_builds(build, error, expected):
    with pytest.raises(error) as info:
        load_dataset(dataset("toy", ToyParams, build), ToyParams(), _ctx())
    assert expected in str(info.value)


def test_load_dataset_prefixes_build_errors_with_where():
    def build(params, ctx):
        raise DataError("csv file a.csv not found")

    with pytest.raises(DataError, match="^exp.yaml, field data: csv file a.csv not found$"):
        load_dataset(dataset("toy", ToyParams, build), ToyParams(), _ctx(), where="exp.yaml, field data")


def test_val_fraction_for_a_plugin_dataset_with_its_own_validation_set_is_refused_not_lost():
    class OwnParams(Params):
        """Params that do not take val_fraction."""

    def build(params, ctx):
        x = np.arange(20.0).reshape(10, 2)
        return Dataset(x, np.arange(10) % 2, x_val=x[:3], y_val=np.arange(3) % 2)

    with pytest.raises(DataError, match=r"already has a validation set \(3 examples in x_val/y_val\); set "
                                        r"val_fraction to 0 \(found 0.25\)"):
        load_dataset(dataset("own", OwnParams, build), OwnParams(), _ctx(), val_fraction=0.25)
    assert load_dataset(dataset("own", OwnParams, build), OwnParams(), _ctx(), val_fraction=0.0).n_val == 3

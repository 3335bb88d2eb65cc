"""Tests of the nnframe-sklearn datasets, through the components nnframe registers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from nnframe import DatasetContext
from nnframe.data import Dataset, load_dataset
from nnframe.errors import DataError
from nnframe_sklearn.datasets import allocate

# name: (examples, features, examples per class)
DATASETS = {
    "digits": (1797, 64, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]),
    "iris": (150, 4, [50, 50, 50]),
    "wine": (178, 13, [59, 71, 48]),
    "breast_cancer": (569, 30, [212, 357]),
}
NAMES = sorted(DATASETS)


def context(seed: int = 0, dtype: str = "float32") -> DatasetContext:
    return DatasetContext(base_dir=Path("."), rng=np.random.default_rng(seed), dtype=np.dtype(dtype))


def build(plugins, name: str, seed: int = 0, dtype: str = "float32", **params) -> Dataset:
    """The dataset as a run gets it: built, split, standardized (by default) and cast by nnframe."""
    component = plugins.datasets.get(name)
    return load_dataset(component, component.params.model_validate(params), context(seed, dtype))


def test_the_four_datasets_are_registered_by_the_installed_distribution(nnframe_plugins):
    assert set(DATASETS) <= set(nnframe_plugins.datasets.names())
    for name in DATASETS:
        assert nnframe_plugins.datasets.plugin_of(name).dist == "nnframe-sklearn"
    assert [b for b in nnframe_plugins.broken if b.dist == "nnframe-sklearn"] == []


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_whole_dataset_has_its_shapes_classes_and_dtypes(nnframe_plugins, name, dtype):
    examples, features, per_class = DATASETS[name]
    ds = build(nnframe_plugins, name, dtype=dtype)
    assert ds.x.shape == (examples, features)
    assert ds.x.dtype == np.dtype(dtype)
    assert ds.y.shape == (examples,) and ds.y.dtype == np.int64
    assert np.bincount(ds.y).tolist() == per_class
    assert ds.num_classes == len(per_class)
    assert ds.x_val is None and ds.y_val is None
    assert ds.source == f"sklearn:{name}"


@pytest.mark.parametrize("name", NAMES)
def test_each_row_keeps_its_values_and_its_label_through_the_split(nnframe_plugins, name):
    """The rows, training and validation alike, are scikit-learn's own rows with their own labels."""
    from sklearn import datasets

    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    if name == "digits":
        x = x / 16.0  # scale_pixels, on by default
    ds = build(nnframe_plugins, name, dtype="float64", val_fraction=0.2, standardize=False)
    rows = {row.tobytes(): label for row, label in zip(np.asarray(x, dtype=np.float64), y)}
    for part_x, part_y in ((ds.x, ds.y), (ds.x_val, ds.y_val)):
        assert all(rows.get(row.tobytes(), -1) == label for row, label in zip(part_x, part_y))
    assert len(ds.x) + len(ds.x_val) == len(x)


@pytest.mark.parametrize("name", NAMES)
def test_split_sizes_and_stratification(nnframe_plugins, name):
    examples, _, per_class = DATASETS[name]
    ds = build(nnframe_plugins, name, val_fraction=0.2)
    n_val = round(examples * 0.2)
    assert (len(ds.x_val), len(ds.y_val)) == (n_val, n_val)
    assert (len(ds.x), len(ds.y)) == (examples - n_val, examples - n_val)
    assert ds.x_val.dtype == np.float32 and ds.y_val.dtype == np.int64
    val_counts = np.bincount(ds.y_val, minlength=len(per_class))
    train_counts = np.bincount(ds.y, minlength=len(per_class))
    assert (train_counts + val_counts).tolist() == per_class
    assert np.all(np.abs(val_counts - 0.2 * np.array(per_class)) < 1)


def test_iris_split_by_hand(nnframe_plugins):
    # 150 * 0.1 = 15 held out; 50 per class -> 5 of each
    ds = build(nnframe_plugins, "iris", val_fraction=0.1)
    assert np.bincount(ds.y_val).tolist() == [5, 5, 5]
    assert np.bincount(ds.y).tolist() == [45, 45, 45]


@pytest.mark.parametrize("counts, total, expected", [
    ([50, 50, 50], 15, [5, 5, 5]),         # 5.0 each
    ([59, 71, 48], 36, [12, 14, 10]),      # quotas 11.93, 14.36, 9.71 -> floors 11, 14, 9, two left: 11.93 and 9.71
    ([212, 357], 114, [42, 72]),           # quotas 42.47, 71.53 -> floors 42, 71, one left: .53 beats .47
    ([1, 1, 1], 2, [1, 1, 0]),             # equal remainders: the first classes win
])
def test_allocate_shares_out_by_largest_remainder(counts, total, expected):
    assert allocate(np.array(counts), total).tolist() == expected


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_split_other_seed_other_split(nnframe_plugins, name):
    first = build(nnframe_plugins, name, seed=7, val_fraction=0.25)
    again = build(nnframe_plugins, name, seed=7, val_fraction=0.25)
    other = build(nnframe_plugins, name, seed=8, val_fraction=0.25)
    for field in ("x", "y", "x_val", "y_val"):
        assert np.array_equal(getattr(first, field), getattr(again, field))
    assert not np.array_equal(first.x_val, other.x_val)


@pytest.mark.parametrize("name", NAMES)
def test_standardized_with_training_statistics_only(nnframe_plugins, name):
    raw = build(nnframe_plugins, name, seed=3, dtype="float64", val_fraction=0.3, standardize=False)
    scaled = build(nnframe_plugins, name, seed=3, dtype="float64", val_fraction=0.3)
    mean, std = raw.x.mean(axis=0), raw.x.std(axis=0)
    std[std == 0] = 1.0
    np.testing.assert_allclose(scaled.x, (raw.x - mean) / std)
    np.testing.assert_allclose(scaled.x_val, (raw.x_val - mean) / std)
    everything = np.concatenate([raw.x, raw.x_val])
    leaked = (raw.x_val - everything.mean(axis=0)) / np.where(everything.std(axis=0) == 0, 1, everything.std(axis=0))
    assert not np.allclose(scaled.x_val, leaked)


@pytest.mark.parametrize("name", NAMES)
def test_training_part_has_zero_mean_and_unit_std(nnframe_plugins, name):
    ds = build(nnframe_plugins, name, dtype="float64", val_fraction=0.2)
    std = ds.x.std(axis=0)
    constant = std == 0
    np.testing.assert_allclose(ds.x.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(std[~constant], 1)
    assert np.isfinite(ds.x_val).all()


def test_the_scaling_is_kept_for_new_rows(nnframe_plugins):
    component = nnframe_plugins.datasets.get("wine")
    params = component.params.model_validate({"val_fraction": 0.2})
    raw = build(nnframe_plugins, "wine", seed=5, dtype="float64", val_fraction=0.2, standardize=False)
    loaded = load_dataset(component, params, context(seed=5, dtype="float64"))
    np.testing.assert_allclose(loaded.x_mean, raw.x.mean(axis=0))
    np.testing.assert_allclose(loaded.x, (raw.x - raw.x.mean(axis=0)) / raw.x.std(axis=0))
    np.testing.assert_allclose(loaded.scale_inputs(raw.x_val), loaded.x_val)


@pytest.mark.parametrize("scale_pixels, expected_max", [(True, 1.0), (False, 16.0)])
def test_digits_pixel_scaling(nnframe_plugins, scale_pixels, expected_max):
    ds = build(nnframe_plugins, "digits", standardize=False, scale_pixels=scale_pixels)
    assert ds.x.min() == 0.0
    assert ds.x.max() == expected_max


@pytest.mark.parametrize("name, params", [
    ("iris", {"scale_pixels": True}),       # digits only
    ("wine", {"standardise": False}),       # misspelt
    ("digits", {"val_fraction": 1.0}),      # nothing left to train on
    ("digits", {"val_fraction": -0.1}),
])
def test_params_reject_bad_values(nnframe_plugins, name, params):
    with pytest.raises(ValidationError):
        nnframe_plugins.datasets.get(name).params.model_validate(params)


def test_a_fraction_too_small_for_one_example_is_a_data_error(nnframe_plugins):
    # 150 * 0.003 = 0.45 rounds to 0 examples
    with pytest.raises(DataError, match="sklearn:iris.*leaves no validation example"):
        build(nnframe_plugins, "iris", val_fraction=0.003)


def test_nnframe_keeps_the_plugin_split(nnframe_plugins):
    component = nnframe_plugins.datasets.get("wine")
    params = component.params.model_validate({"val_fraction": 0.2})
    direct = component.build(params, context(seed=5))
    loaded = load_dataset(component, params, context(seed=5, dtype="float64"))
    assert loaded.n_val == direct.n_val == round(178 * 0.2)
    np.testing.assert_allclose(loaded.scale_inputs(direct.x_val), loaded.x_val)
    assert np.array_equal(loaded.y, direct.y)

"""Initial weights: distributions, dtype independence and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from nnframe.errors import ConfigError
from nnframe.initializers import METHODS, fan_in, fan_out, initialize


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_and_dtype(method, dtype):
    W = initialize((3, 5), method, 0.01, np.random.default_rng(0), dtype)
    assert W.shape == (3, 5) and W.dtype == dtype


@pytest.mark.parametrize(("method", "scale", "expected_std"), [
    ("normal", 0.01, 0.01),
    ("normal", 0.5, 0.5),
    ("xavier", 0.01, np.sqrt(1 / 400)),  # fan_in = 400 rows
    ("he", 0.01, np.sqrt(2 / 400)),
    ("glorot", 0.01, np.sqrt(2 / 700)),  # fan_in 400 + fan_out 300
    ("xavier", 7.0, np.sqrt(1 / 400)),  # scale belongs to 'normal' only
])
def test_standard_deviation(method, scale, expected_std):
    W = initialize((400, 300), method, scale, np.random.default_rng(0), np.float64)
    assert W.std() == pytest.approx(expected_std, rel=0.01)
    assert abs(W.mean()) < 0.1 * expected_std


def test_normal_is_scale_times_standard_normal():
    W = initialize((2, 3), "normal", 0.01, np.random.default_rng(42), np.float64)
    np.testing.assert_array_equal(W, 0.01 * np.random.default_rng(42).standard_normal((2, 3)))


@pytest.mark.parametrize("method", METHODS)
def test_float32_and_float64_start_from_the_same_weights(method):
    w64 = initialize((4, 3), method, 0.01, np.random.default_rng(9), np.float64)
    w32 = initialize((4, 3), method, 0.01, np.random.default_rng(9), np.float32)
    np.testing.assert_array_equal(w32, w64.astype(np.float32))


def test_the_stream_advances_and_seeds_repeat():
    rng = np.random.default_rng(1)
    first, second = (initialize((2, 2), "he", 0.01, rng, np.float64) for _ in range(2))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, initialize((2, 2), "he", 0.01, np.random.default_rng(1), np.float64))


def test_unknown_method_lists_the_available_ones():
    expected = r"'xavir'; available: glorot, he, normal, xavier \(did you mean 'xavier'\?\)"
    with pytest.raises(ConfigError, match=expected):
        initialize((2, 2), "xavir", 0.01, np.random.default_rng(0), np.float64)


@pytest.mark.parametrize(("shape", "expected"), [((5, 3), 5), ((7,), 7), ((2, 3, 4), 6)])
def test_fan_in(shape, expected):
    assert fan_in(shape) == expected


@pytest.mark.parametrize(("shape", "expected"), [((5, 3), 3), ((7,), 7), ((2, 3, 4), 4)])
def test_fan_out(shape, expected):
    assert fan_out(shape) == expected

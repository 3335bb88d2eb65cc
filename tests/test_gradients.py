"""Tests of nnframe.gradients."""

from __future__ import annotations

import numpy as np
import pytest

from nnframe.errors import ConfigError
from nnframe.gradients import (
    SEGMENT_SUM_LIMIT,
    BufferNorms,
    clip_grad_norm,
    first_nonfinite,
    global_norm,
    norms,
    norms_of,
    squared_norm,
)


def grads345() -> list[np.ndarray]:
    # ||[3, 4]|| = 5; with [[12]] the global norm is sqrt(9 + 16 + 144) = 13
    return [np.array([3.0, 4.0]), np.array([[12.0]])]


def test_global_norm_is_the_l2_norm_over_all_arrays() -> None:
    assert global_norm(grads345()) == 13.0
    assert global_norm([]) == 0.0


def test_global_norm_of_matrices_uses_every_element() -> None:
    # 2x2 of ones and a (3,) of twos: sqrt(4 * 1 + 3 * 4) = 4
    assert global_norm([np.ones((2, 2)), np.full(3, 2.0)]) == 4.0


def test_norms_per_parameter_and_global() -> None:
    assert norms(["affine1/W", "affine1/b"], grads345()) == {"affine1/W": 5.0, "affine1/b": 12.0, "global": 13.0}


def test_norms_are_python_floats_for_float32() -> None:
    result = norms(["w"], [np.array([3.0, 4.0], dtype=np.float32)])
    assert result == {"w": 5.0, "global": 5.0}
    assert all(type(v) is float for v in result.values())


def test_squared_norm_survives_float32_overflow() -> None:
    # (1e30)^2 = 1e60 overflows float32 but not float64
    assert squared_norm(np.array([1e30], dtype=np.float32)) == pytest.approx(1e60, rel=1e-6)


def test_clip_scales_in_place_above_the_threshold() -> None:
    grads = grads345()
    refs = list(grads)
    # rate = 6.5 / (13 + 1e-6): grads become [1.5, 2], [[6]] and the norm 6.5
    assert clip_grad_norm(grads, 6.5) == 13.0
    assert all(a is b for a, b in zip(grads, refs))
    np.testing.assert_allclose(grads[0], [1.5, 2.0], rtol=1e-6)
    np.testing.assert_allclose(grads[1], [[6.0]], rtol=1e-6)
    assert global_norm(grads) == pytest.approx(6.5, rel=1e-6)


def test_clip_is_a_no_op_below_the_threshold() -> None:
    grads = grads345()
    assert clip_grad_norm(grads, 20.0) == 13.0
    np.testing.assert_array_equal(grads[0], [3.0, 4.0])
    np.testing.assert_array_equal(grads[1], [[12.0]])


def test_clip_uses_a_given_total_norm() -> None:
    grads = [np.array([3.0, 4.0])]
    # the given norm 10 is used: rate = 5 / (10 + 1e-6) halves the gradient
    assert clip_grad_norm(grads, 5.0, total_norm=10.0) == 10.0
    np.testing.assert_allclose(grads[0], [1.5, 2.0], rtol=1e-6)


def test_clip_keeps_float32() -> None:
    grads = [np.array([3.0, 4.0], dtype=np.float32)]
    clip_grad_norm(grads, 1.0)
    assert grads[0].dtype == np.float32
    np.testing.assert_allclose(grads[0], [0.6, 0.8], rtol=1e-6)


def test_clip_leaves_nonfinite_gradients_to_the_nonfinite_policy() -> None:
    grads = [np.array([np.inf, 1.0])]
    assert clip_grad_norm(grads, 1.0) == np.inf
    np.testing.assert_array_equal(grads[0], [np.inf, 1.0])


@pytest.mark.parametrize("max_norm", [0.0, -1.0, float("nan")])
def test_clip_rejects_a_non_positive_max_norm(max_norm: float) -> None:
    with pytest.raises(ConfigError, match="max_norm must be greater than 0"):
        clip_grad_norm(grads345(), max_norm)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(("grads", "expected"), [
    ([np.ones(2), np.ones(3), np.ones(1)], None),
    ([np.ones(2), np.array([1.0, np.nan]), np.array([np.inf])], "b"),
    ([np.array([-np.inf, 0.0]), np.ones(1), np.ones(1)], "a"),
    ([np.ones(2), np.ones(1), np.array([[np.inf, -np.inf]])], "c"),
    # finite but the float32 sum overflows: 3e38 + 3e38 = inf; still no NaN/inf in the gradient
    ([np.array([3e38, 3e38], dtype=np.float32), np.ones(1), np.ones(1)], None),
])
def test_first_nonfinite_names_the_parameter(grads: list[np.ndarray], expected: str | None) -> None:
    assert first_nonfinite(["a", "b", "c"], grads) == expected


def test_global_norm_survives_float32_overflow_and_still_reports_infinity() -> None:
    # (1e30)^2 + (1e30)^2 = 2e60 overflows float32 but not float64: sqrt(2) * 1e30
    grads = [np.array([1e30], dtype=np.float32), np.array([[1e30]], dtype=np.float32)]
    assert global_norm(grads) == pytest.approx(np.sqrt(2) * 1e30, rel=1e-6)
    assert global_norm([np.array([np.inf], dtype=np.float32), np.ones(2, np.float32)]) == np.inf
    assert np.isnan(global_norm([np.array([np.nan, 1.0])]))


# --------------------------------------------------------------------------
# norms_of: the per-parameter norms of a model's gradients, one buffer or not
# --------------------------------------------------------------------------

NAMES = ["affine1/W", "affine1/b", "affine2/W", "affine2/b"]
SHAPES = [(2, 10), (10,), (10, 3), (3,)]


def tiled(buffer: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Views of ``buffer`` one after another, as nnframe.flat_params lays out a model's gradients."""
    views, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        views.append(buffer[start:start + size].reshape(shape))
        start += size
    return views


@pytest.mark.parametrize("dtype, rel", [(np.float64, 1e-13), (np.float32, 1e-6)])
def test_norms_of_one_small_buffer_match_norms_array_by_array(dtype, rel) -> None:
    buffer = np.random.default_rng(0).normal(size=63).astype(dtype)
    grads = tiled(buffer, SHAPES)
    compute = norms_of(NAMES, grads)

    assert isinstance(compute, BufferNorms)
    found, expected = compute(), norms(NAMES, grads)
    assert list(found) == list(expected) == [*NAMES, "global"]
    assert found == pytest.approx(expected, rel=rel)
    assert all(type(value) is float for value in found.values())


def test_buffer_norms_read_the_gradients_as_they_stand_at_each_call() -> None:
    buffer = np.zeros(63)
    compute = norms_of(NAMES, tiled(buffer, SHAPES))
    assert compute()["global"] == 0.0
    buffer[20:30] = 2.0  # affine1/b: sqrt(10 * 4)
    assert compute() == pytest.approx({"affine1/W": 0.0, "affine1/b": 40 ** 0.5, "affine2/W": 0.0,
                                       "affine2/b": 0.0, "global": 40 ** 0.5})


def test_buffer_norms_square_float32_in_float64_so_nothing_overflows() -> None:
    buffer = np.zeros(63, dtype=np.float32)
    buffer[0] = 1e30  # (1e30)^2 overflows float32
    result = norms_of(NAMES, tiled(buffer, SHAPES))()
    assert result["affine1/W"] == pytest.approx(1e30, rel=1e-6)
    assert result["global"] == pytest.approx(1e30, rel=1e-6)


@pytest.mark.parametrize("case", ["separate arrays", "over the limit", "an empty parameter"])
def test_norms_of_falls_back_to_a_dot_per_array(case) -> None:
    shapes = SHAPES
    if case == "separate arrays":
        grads = [np.ones(shape) for shape in shapes]
    else:
        if case == "over the limit":
            shapes = [(SEGMENT_SUM_LIMIT,), (1,)]
        else:
            shapes = [(2, 10), (0,), (10, 3), (3,)]
        grads = tiled(np.ones(sum(int(np.prod(shape)) for shape in shapes)), shapes)
    names = NAMES[:len(shapes)]
    compute = norms_of(names, grads)

    assert not isinstance(compute, BufferNorms)
    assert compute() == norms(names, grads)


def test_norms_of_rejects_a_name_count_that_does_not_match() -> None:
    with pytest.raises(ValueError, match="3 names for 4 gradients"):
        norms_of(NAMES[:3], tiled(np.zeros(63), SHAPES))

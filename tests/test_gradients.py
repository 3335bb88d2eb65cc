"""Tests of nnframe.gradients."""

from __future__ import annotations

import numpy as np
import pytest

from nnframe.errors import ConfigError
from nnframe.gradients import clip_grad_norm, first_nonfinite, global_norm, norms, squared_norm


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

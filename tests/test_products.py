"""The matrix products of MatMul and Affine: the same values as ``@`` and ``sum``, whatever the dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from nnframe.nodes import Affine, products
from nnframe.nodes.products import column_sums, product, product_into

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
def test_product_is_the_matrix_product_for_any_batch_shape(shape):
    a, b = RNG.standard_normal(shape), RNG.standard_normal((4, 3))
    result = product(a, b)
    assert result.shape == (*shape[:-1], 3)
    np.testing.assert_array_equal(result, a @ b)


def test_product_into_writes_the_product_into_out():
    a, b = RNG.standard_normal((6, 4)), RNG.standard_normal((6, 3))
    out = np.empty((4, 3))
    assert product_into(a.T, b, out) is out
    np.testing.assert_allclose(out, a.T @ b, rtol=1e-15)


def test_product_into_casts_float64_inputs_into_a_float32_out():
    a, b = RNG.standard_normal((6, 4)), RNG.standard_normal((6, 3))
    out = np.empty((4, 3), np.float32)
    product_into(a.T, b, out)
    np.testing.assert_array_equal(out, (a.T @ b).astype(np.float32))


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 1e-5)])
@pytest.mark.parametrize("rows", [1, 30, 256])
def test_column_sums_are_the_sums_down_the_columns(dtype, rtol, rows):
    values = RNG.standard_normal((rows, 10)).astype(dtype)
    out = np.empty(10, dtype)
    assert column_sums(values, out) is out
    np.testing.assert_allclose(out, values.sum(axis=0, dtype=np.float64), rtol=rtol, atol=rtol)


def test_column_sums_of_float64_rows_into_a_float32_out():
    values = RNG.standard_normal((30, 10))
    out = np.empty(10, np.float32)
    column_sums(values, out)
    np.testing.assert_allclose(out, values.sum(axis=0), rtol=1e-6)


def test_column_sums_keep_infinities_and_nans():
    values = np.array([[1.0, np.inf, np.nan], [2.0, 1.0, 0.0]])
    out = np.empty(3)
    column_sums(values, out)
    np.testing.assert_array_equal(out, [3.0, np.inf, np.nan])


def test_the_ones_shared_by_every_sum_are_read_only():
    values = RNG.standard_normal((7, 3))
    column_sums(values, np.empty(3))
    with pytest.raises(ValueError, match="read-only"):
        products._ones(7, values.dtype)[0] = 2.0


def test_an_affine_of_float32_parameters_trains_on_float64_data():
    W, b = RNG.standard_normal((4, 3)).astype(np.float32), np.zeros(3, np.float32)
    node = Affine(W, b)
    x, dout = RNG.standard_normal((5, 4)), RNG.standard_normal((5, 3))
    assert node.forward(x).dtype == np.float64
    dx = node.backward(dout)
    assert dx.dtype == np.float64
    assert node.grads[0].dtype == node.grads[1].dtype == np.float32
    np.testing.assert_allclose(node.grads[0], x.T @ dout, rtol=1e-5)
    np.testing.assert_allclose(node.grads[1], dout.sum(axis=0), rtol=1e-5)

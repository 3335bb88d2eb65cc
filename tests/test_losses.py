"""The built-in losses: gradients, batch-mean scale, target forms, stability and dtype."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nnframe.errors import DataError
from nnframe.losses import Loss, MeanSquaredError, SigmoidWithLoss, SoftmaxWithLoss
from nnframe.nodes.softmax import REPEATED_SUM_ROWS, SHORT_ROW, shifted_exp, softmax
from nnframe.plugins import get_plugin_manager
from nnframe.testing import check_gradients

BUILTIN_LOSSES = {"softmax_cross_entropy", "sigmoid_cross_entropy", "mse"}

# Every floating-point category numpy warns about by default now raises; underflow
# keeps numpy's default (ignored), since a term underflowing to 0 is the exact result.
WARNING_CATEGORIES_RAISE = {"over": "raise", "divide": "raise", "invalid": "raise", "under": "ignore"}


def index_targets(rng, n, c):
    return rng.integers(0, c, size=n)


def one_hot_targets(rng, n, c):
    return np.eye(c)[rng.integers(0, c, size=n)]


def binary_targets(rng, n, c):
    return rng.integers(0, 2, size=(n, c)).astype(np.float64)


def real_targets(rng, n, c):
    return rng.standard_normal((n, c))


# registry name -> target makers; every row is checked at N = 1 and N = 5
TARGETS = {
    "softmax_cross_entropy": [index_targets, one_hot_targets],
    "sigmoid_cross_entropy": [binary_targets],
    "mse": [real_targets],
}
TABLE = [(name, make, n, c) for name, makers in TARGETS.items() for make in makers for n in (1, 5) for c in (1, 3)
         if not (name == "softmax_cross_entropy" and c == 1)]
IDS = [f"{name}-{make.__name__}-N{n}-C{c}" for name, make, n, c in TABLE]


@pytest.fixture
def plugins():
    return get_plugin_manager()


def build(plugins, name: str) -> Loss:
    component = plugins.losses.get(name)
    return component.build(component.params())


def test_every_builtin_loss_is_registered_and_in_the_table(plugins):
    builtin = {name for name in plugins.losses.names() if plugins.losses.plugin_of(name).dist == "nnframe"}
    assert builtin == BUILTIN_LOSSES == set(TARGETS)


def test_only_mse_is_not_a_classification_loss(plugins):
    flags = {name: plugins.losses.get(name).extra["classification"] for name in BUILTIN_LOSSES}
    assert flags == {"softmax_cross_entropy": True, "sigmoid_cross_entropy": True, "mse": False}


@pytest.mark.parametrize(("name", "make", "n", "c"), TABLE, ids=IDS)
def test_gradients(plugins, name, make, n, c):
    rng = np.random.default_rng(0)
    loss = build(plugins, name)
    assert loss.params == [] and loss.grads == []
    check_gradients(loss, rng.standard_normal((n, c)), target=make(rng, n, c))


@pytest.mark.parametrize(("name", "make", "n", "c"), TABLE, ids=IDS)
def test_loss_is_a_batch_mean(plugins, name, make, n, c):
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((n, c)), make(rng, n, c)
    loss = build(plugins, name)
    value, dx = loss.forward(x, t), loss.backward()
    doubled, ddx = loss.forward(np.concatenate([x, x]), np.concatenate([t, t])), loss.backward()
    assert isinstance(value, float)
    assert doubled == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(ddx, np.concatenate([dx, dx]) / 2)


@pytest.mark.parametrize(("name", "make", "n", "c"), TABLE, ids=IDS)
def test_float32_scores_give_float32_gradient(plugins, name, make, n, c):
    rng = np.random.default_rng(2)
    x64 = rng.standard_normal((n, c))
    t = make(rng, n, c)
    loss = build(plugins, name)
    value32 = loss.forward(x64.astype(np.float32), t)
    dx = loss.backward()
    assert dx.dtype == np.float32 and dx.shape == (n, c)
    assert value32 == pytest.approx(loss.forward(x64, t), rel=1e-5)


@pytest.mark.parametrize("name", sorted(BUILTIN_LOSSES))
def test_backward_scales_with_dout(plugins, name):
    x = np.array([[0.5, -1.0], [2.0, 0.0]])
    t = np.array([[1.0, 0.0], [0.0, 1.0]])
    loss = build(plugins, name)
    loss.forward(x, t)
    np.testing.assert_allclose(loss.backward(2.5), 2.5 * loss.backward(1.0))


@pytest.mark.parametrize("name", sorted(BUILTIN_LOSSES))
def test_backward_takes_one_number_and_refuses_an_array_it_would_broadcast(plugins, name):
    loss = build(plugins, name)
    loss.forward(np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]))
    expected = loss.backward(2.0)
    for dout in (2, np.float32(2.0), np.array(2.0)):
        np.testing.assert_array_equal(loss.backward(dout), expected)
    for dout, found in ((np.full(2, 2.0), r"ndarray shape \(2,\)"), ([2.0], r"list shape \(1,\)"),
                        ("2", "str '2'"), (True, "bool True"), (None, "NoneType None")):
        with pytest.raises(ValueError, match=rf"{type(loss).__name__}.backward: dout is the gradient of the loss, "
                                             rf"one number \(1.0 by default\); found {found}"):
            loss.backward(dout)


def test_one_hot_and_index_targets_agree():
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((6, 4)), rng.integers(0, 4, size=6)
    loss = SoftmaxWithLoss()
    by_index, dx_index = loss.forward(x, t), loss.backward()
    by_one_hot, dx_one_hot = loss.forward(x, np.eye(4)[t]), loss.backward()
    assert by_index == pytest.approx(by_one_hot, rel=1e-12)
    np.testing.assert_allclose(dx_index, dx_one_hot)


def test_softmax_cross_entropy_hand_worked():
    loss = SoftmaxWithLoss()
    # y = softmax(0, ln 3) = (1/4, 3/4); L = -ln(3/4) for class 1, -ln(1/4) for class 0; mean of both
    x = np.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)]])
    assert loss.forward(x, np.array([1, 0])) == pytest.approx((-np.log(0.75) - np.log(0.25)) / 2)
    # dx = (y - t) / N = ((1/4, -1/4), (-3/4, 3/4)) / 2
    np.testing.assert_allclose(loss.backward(), [[0.125, -0.125], [-0.375, 0.375]])


def test_softmax_cross_entropy_is_finite_at_logits_of_1000():
    loss = SoftmaxWithLoss()
    x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]])
    with warnings.catch_warnings(), np.errstate(**WARNING_CATEGORIES_RAISE):
        warnings.simplefilter("error")
        # row 0: log y_0 = 0; row 1: log y_0 = -1000 - 1000 = -2000; mean (0 + 2000) / 2
        value = loss.forward(x, np.array([0, 0]))
        dx = loss.backward()
    assert value == pytest.approx(1000.0)
    # y = (1, 0, 0) and (0, 1, 0) up to exp(-1000); dx = (y - t) / 2
    np.testing.assert_allclose(dx, [[0.0, 0.0, 0.0], [-0.5, 0.5, 0.0]], atol=1e-300)


def test_sigmoid_cross_entropy_hand_worked_and_stable():
    loss = SigmoidWithLoss()
    # sigmoid(0) = 1/2: L = -ln(1/2) = ln 2; dx = (1/2 - 1) / 1
    assert loss.forward(np.array([[0.0]]), np.array([1.0])) == pytest.approx(np.log(2.0))
    np.testing.assert_allclose(loss.backward(), [[-0.5]])
    with warnings.catch_warnings(), np.errstate(**WARNING_CATEGORIES_RAISE):
        warnings.simplefilter("error")
        # x = 1000, t = 1: L = 0; x = -1000, t = 1: L = 1000; mean 500
        value = loss.forward(np.array([[1000.0], [-1000.0]]), np.array([[1.0], [1.0]]))
        dx = loss.backward()
    assert value == pytest.approx(500.0)
    np.testing.assert_allclose(dx, [[0.0], [-0.5]])


def test_mse_hand_worked():
    loss = MeanSquaredError()
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    # (1 + 4 + 9 + 16) / (2 * 2)
    assert loss.forward(x, np.zeros((2, 2))) == pytest.approx(7.5)
    np.testing.assert_allclose(loss.backward(), x / 2)


def test_mse_takes_whole_number_scores_as_the_other_losses_do():
    loss = MeanSquaredError()
    assert loss.forward(np.array([[1, 2], [3, 4]]), np.array([[0.5, 0.0], [0.0, 0.0]])) == pytest.approx(7.3125)
    np.testing.assert_allclose(loss.backward(), [[0.25, 1.0], [1.5, 2.0]])
    assert loss.backward().dtype == np.float64


@pytest.mark.parametrize("loss", [SigmoidWithLoss(), MeanSquaredError()], ids=repr)
def test_column_scores_accept_flat_targets(loss):
    x, t = np.array([[0.3], [-1.2], [2.0]]), np.array([1.0, 0.0, 1.0])
    flat, dx_flat = loss.forward(x, t), loss.backward()
    column, dx_column = loss.forward(x, t[:, None]), loss.backward()
    assert flat == column
    np.testing.assert_array_equal(dx_flat, dx_column)


def test_softmax_cross_entropy_over_sequences_matches_flattened():
    rng = np.random.default_rng(4)
    x, t = rng.standard_normal((2, 3, 4)), rng.integers(0, 4, size=(2, 3))
    loss = SoftmaxWithLoss()
    value, dx = loss.forward(x, t), loss.backward()
    flat, dx_flat = loss.forward(x.reshape(6, 4), t.reshape(6)), loss.backward()
    assert value == pytest.approx(flat)
    np.testing.assert_allclose(dx, dx_flat.reshape(2, 3, 4))


@pytest.mark.parametrize(("loss", "x", "t", "match"), [
    (SoftmaxWithLoss(), np.zeros((2, 3)), np.array([0, 3]), r"\[0, 2\].*from 0 to 3"),
    (SoftmaxWithLoss(), np.zeros((2, 3)), np.array([-1, 0]), r"\[0, 2\]"),
    (SoftmaxWithLoss(), np.zeros((2, 3)), np.array([0.5, 1.0]), "whole numbers, found 0.5"),
    (SoftmaxWithLoss(), np.zeros((0, 3)), np.zeros((0,), dtype=int), r"batch is empty.*\(0, 3\)"),
    (SoftmaxWithLoss(), np.zeros((0, 3)), np.zeros((0, 3)), "batch is empty"),
    (SigmoidWithLoss(), np.zeros((0, 1)), np.zeros((0,)), "batch is empty"),
    (MeanSquaredError(), np.zeros((0, 2)), np.zeros((0, 2)), "batch is empty"),
    (SigmoidWithLoss(), np.zeros((1, 1)), np.array([2]), r"\[0, 1\].*found 2"),
    (SigmoidWithLoss(), np.zeros((2, 1)), np.array([-1, 1]), r"found -1.*-1 and 1 need mapping"),
    (SigmoidWithLoss(), np.zeros((1, 1)), np.array([np.nan]), r"\[0, 1\]"),
    (SoftmaxWithLoss(), np.zeros((2, 3)), np.zeros((3,), dtype=int), r"shape \(3,\)"),
    (SoftmaxWithLoss(), np.zeros(3), np.zeros(3), r"\(N, C\)"),
    (SigmoidWithLoss(), np.zeros((2, 3)), np.zeros((2,)), r"\(2, 3\).*found shape \(2,\)"),
    (MeanSquaredError(), np.zeros((2, 1)), np.zeros((3,)), r"found shape \(3,\)"),
], ids=lambda v: repr(v) if isinstance(v, Loss) else "")
def test_bad_targets_are_data_errors(loss, x, t, match):
    with pytest.raises(DataError, match=match):
        loss.forward(x, t)


def test_soft_and_boolean_targets_are_probabilities_sigmoid_cross_entropy_accepts():
    loss = SigmoidWithLoss()
    assert loss.forward(np.zeros((2, 1)), np.array([0.25, 1.0])) == pytest.approx(np.log(2))
    assert loss.forward(np.zeros((2, 1)), np.array([True, False])) == pytest.approx(np.log(2))


@pytest.mark.parametrize("loss", [SoftmaxWithLoss(), SigmoidWithLoss(), MeanSquaredError()], ids=repr)
def test_a_backward_before_any_forward_says_so(loss):
    with pytest.raises(RuntimeError, match="backward was called before forward"):
        loss.backward()


def test_whole_number_float_indices_are_accepted():
    loss = SoftmaxWithLoss()
    x = np.array([[1.0, 2.0, 0.5]])
    assert loss.forward(x, np.array([2.0])) == loss.forward(x, np.array([2]))


def test_target_range_check_can_be_left_to_the_caller():
    loss = SoftmaxWithLoss()
    x, t = np.zeros((2, 3)), np.array([0, 2])
    with pytest.raises(DataError, match="class indices"):
        loss.forward(x, np.array([0, 3]))
    loss.validate_targets = False
    # uniform scores: L = log 3 whatever the (valid) targets
    assert loss.forward(x, t) == pytest.approx(np.log(3))
    with pytest.raises(DataError, match="whole numbers"):
        loss.forward(x, np.array([0.5, 1.0]))  # the dtype is still checked


@pytest.mark.parametrize("t", [
    np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]),   # two labels in a row, a row of no label
    np.array([[0.5, 0.2, 0.1], [2.0, 0.0, 1.0]]),   # weights that do not sum to 1
])
def test_softmax_gradient_is_right_for_rows_that_are_not_probabilities(t):
    x = np.random.default_rng(3).standard_normal((2, 3))
    assert check_gradients(SoftmaxWithLoss(), x, target=t).ok


def test_softmax_of_one_class_with_a_column_of_zeros_has_no_gradient():
    loss = SoftmaxWithLoss()
    assert loss.forward(np.array([[0.3], [-1.2], [2.0]]), np.zeros((3, 1), dtype=int)) == 0.0
    assert np.array_equal(loss.backward(), np.zeros((3, 1)))


def test_a_plugins_loss_subclasses_the_public_loss_and_is_checked_like_a_builtin():
    import nnframe
    from nnframe.testing import check_gradients

    class HalfSquare(nnframe.Loss):  # as the README's loss paragraph says
        def forward(self, x, t):
            self.diff = x - t
            return float(np.mean(np.sum(self.diff ** 2, axis=1)) / 2)

        def backward(self, dout=1.0):
            return dout * self.diff / len(self.diff)

    rng = np.random.default_rng(3)
    assert check_gradients(HalfSquare(), rng.standard_normal((4, 2)), target=rng.standard_normal((4, 2))).ok
    assert nnframe.Dataset(np.zeros((2, 1)), np.zeros(2)).n_train == 2


@pytest.mark.parametrize("loss, target, found, words", [
    (SoftmaxWithLoss(), -np.eye(3), "-1.0", "rows of class weights"),
    (SoftmaxWithLoss(), np.array([[0.5, np.nan, 0.5]] * 3), "nan", "at least 0"),
    (SigmoidWithLoss(), np.array([[-1.0], [1.0], [0.0]]), "-1.0", "in \\[0, 1\\]"),
])
def test_cross_entropy_refuses_targets_that_would_give_a_negative_loss(loss, target, found, words) -> None:
    scores = np.random.default_rng(0).standard_normal((3, target.shape[1]))
    with pytest.raises(DataError, match=rf"{type(loss).__name__}: targets .*{words}.*found {found}"):
        loss.forward(scores, target)


def shifted_exp_by_numpy_reductions(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return shifted, e, e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("width", [5, 12])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_the_row_path_of_shifted_exp_gives_what_numpys_reductions_give(dtype, layout, width):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((9, width)) * 30).astype(dtype)
    x[1, :5] = [np.nan, 2.0, np.nan, 1.0, 0.0]
    x[2, :5] = [1.0, np.inf, 3.0, np.inf, 0.0]
    x[3] = -np.inf
    x[4] = 5.0
    x[5, 2] = -np.inf
    x = {"C": x, "F": np.asfortranarray(x), "strided": np.repeat(x, 2, axis=1)[:, ::2]}[layout]
    with np.errstate(invalid="ignore"):
        expected = shifted_exp_by_numpy_reductions(x)
        found = shifted_exp(x)
    sums, want_sums = found[2], expected[2]
    assert sums.shape == (x.shape if width <= SHORT_ROW else want_sums.shape)  # a short row's sum comes along the row
    for got, want in zip(found, (*expected[:2], np.broadcast_to(want_sums, sums.shape))):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("rows", [1, 2, 30, REPEATED_SUM_ROWS, REPEATED_SUM_ROWS + 1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_batchs_short_rows_get_each_sum_repeated_to_the_bit(rows, dtype):
    rng = np.random.default_rng(rows)
    for width in (2, 5, SHORT_ROW):
        x = rng.standard_normal((rows, width)).astype(dtype)
        sums = shifted_exp(x)[2]
        if 1 < rows <= REPEATED_SUM_ROWS:  # one row goes to BLAS's gemv, whose columns may round apart
            assert sums.shape == x.shape and (sums == sums[:, :1]).all()
        else:
            assert sums.shape == (rows, 1)


def test_a_long_batchs_softmax_does_not_depend_on_how_many_threads_blas_runs():
    from threadpoolctl import threadpool_limits

    x = (np.random.default_rng(0).standard_normal((20000, SHORT_ROW)) * 3).astype(np.float32)
    with threadpool_limits(1):
        one = softmax(x)
    with threadpool_limits(2):
        two = softmax(x)
    np.testing.assert_array_equal(one, two)


def test_softmax_cross_entropy_reads_scores_of_any_memory_layout_alike():
    rng = np.random.default_rng(8)
    x, t = rng.standard_normal((6, 4)), rng.integers(0, 4, size=6)
    loss = SoftmaxWithLoss()
    value, dx = loss.forward(x, t), loss.backward()
    for other in (np.asfortranarray(x), np.repeat(x, 2, axis=1)[:, ::2]):
        assert loss.forward(other, t) == value
        np.testing.assert_array_equal(loss.backward(), dx)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint64, np.int32, np.int64])
def test_softmax_cross_entropy_takes_class_indices_of_any_integer_type(dtype):
    x, t = np.random.default_rng(9).standard_normal((3, 4)), np.array([0, 3, 2])
    loss = SoftmaxWithLoss()
    expected, dx = loss.forward(x, t), loss.backward()
    assert loss.forward(x, t.astype(dtype)) == expected
    np.testing.assert_array_equal(loss.backward(), dx)


def test_float32_losses_are_summed_in_float64():
    scores = np.array([[0.0, -1e8], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], np.float32)
    loss = SoftmaxWithLoss().forward(scores, np.array([1, 0, 0, 0]))
    assert abs(loss - (1e8 + 3 * np.log(2)) / 4) < 0.01  # a float32 sum stays at 1e8: 0.52 less


def test_a_long_batchs_loss_does_not_depend_on_how_many_threads_blas_runs():
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((60000, 3)), rng.integers(0, 3, 60000)
    with threadpool_limits(1):
        one = SoftmaxWithLoss().forward(x, t)
    with threadpool_limits(2):
        two = SoftmaxWithLoss().forward(x, t)
    assert one == two

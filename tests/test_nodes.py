"""Every built-in node, table-driven through the registry, plus the seed's worked relations."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from pydantic import ValidationError

from nnframe.components import NodeContext
from nnframe.errors import ConfigError, DataError, GraphError
from nnframe.nodes import Add, Affine, Dropout, MatMul, Mul, ReLU, Repeat, Sigmoid, Softmax, Sum, Tanh
from nnframe.nodes import fixed_arrays
from nnframe.nodes.affine import column_sums
from nnframe.nodes.matmul import product, product_into
from nnframe.plugins import get_plugin_manager
from nnframe.testing import check_gradients

BUILTIN_NODES = {"matmul", "affine", "add", "mul", "repeat", "sum",
                 "sigmoid", "relu", "tanh", "softmax", "dropout", "flatten"}
ELEMENTWISE = [({}, [(1, 4)], (1, 4)), ({}, [(5, 3)], (5, 3)), ({}, [(2, 3, 4)], (2, 3, 4))]
TWO_INPUTS = [
    ({}, [(1, 3), (1, 3)], (1, 3)),
    ({}, [(4, 3), (4, 3)], (4, 3)),
    ({}, [(4, 3), (1, 3)], (4, 3)),
    ({}, [(4, 3), (3,)], (4, 3)),
    ({}, [(4, 1), (1, 3)], (4, 3)),
]
# name -> [(params, input shapes, expected output shape)]; batch size 1 in every row.
CASES: dict[str, list[tuple[dict, list[tuple[int, ...]], tuple[int, ...]]]] = {
    "matmul": [({"out": 3}, [(1, 4)], (1, 3)), ({"out": 2, "init": "he"}, [(5, 4)], (5, 2)),
               ({"out": 2, "init": "xavier"}, [(2, 3, 4)], (2, 3, 2))],
    "affine": [({"out": 3}, [(1, 4)], (1, 3)), ({"out": 2, "init": "xavier"}, [(5, 4)], (5, 2)),
               ({"out": 2, "scale": 0.5}, [(2, 3, 4)], (2, 3, 2)), ({"out": 2, "bias": False}, [(3, 4)], (3, 2))],
    "add": TWO_INPUTS,
    "mul": TWO_INPUTS,
    "repeat": [({"n": 3}, [(1, 4)], (3, 4)), ({"n": 2, "axis": 1}, [(3, 1)], (3, 2)),
               ({"n": 2}, [(2, 3)], (4, 3)), ({"n": 2, "axis": -1}, [(2, 2, 3)], (2, 2, 6))],
    "sum": [({}, [(1, 4)], (1, 4)), ({}, [(5, 4)], (1, 4)), ({"axis": 1}, [(3, 4)], (3, 1)),
            ({"axis": -1}, [(2, 3, 4)], (2, 3, 1))],
    "sigmoid": ELEMENTWISE,
    "relu": ELEMENTWISE,
    "tanh": ELEMENTWISE,
    "softmax": [({}, [(1, 4)], (1, 4)), ({}, [(5, 3)], (5, 3)), ({"axis": 0}, [(5, 3)], (5, 3))],
    "dropout": [({"ratio": 0.5}, [(1, 4)], (1, 4)), ({"ratio": 0.3}, [(6, 5)], (6, 5)),
                ({"ratio": 0.0}, [(3, 2)], (3, 2))],
    "flatten": [({}, [(5, 1, 4, 4)], (5, 16)), ({}, [(3, 2, 3)], (3, 6)), ({}, [(4, 3)], (4, 3)), ({}, [(2,)], (2, 1))],
}
TABLE = [(name, *case) for name, cases in CASES.items() for case in cases]
TABLE_IDS = [f"{name}-{i}" for name, cases in CASES.items() for i in range(len(cases))]

# Every floating-point category numpy warns about by default now raises; underflow
# keeps numpy's default (ignored), since a term underflowing to 0 is the exact result.
WARNING_CATEGORIES_RAISE = {"over": "raise", "divide": "raise", "invalid": "raise", "under": "ignore"}


@pytest.fixture
def plugins():
    return get_plugin_manager()


def build(plugins, name: str, params: dict, shapes: list, dtype=np.float64, seed: int = 0):
    component = plugins.nodes.get(name)
    ctx = NodeContext(f"{name}1", [tuple(s) for s in shapes], np.dtype(dtype), np.random.default_rng(seed))
    return component.build(component.params(**params), ctx)


def make_inputs(shapes: list, dtype=np.float64, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape in shapes]


def as_tuple(grads) -> tuple:
    return grads if isinstance(grads, tuple) else (grads,)


def test_every_builtin_node_is_registered_and_in_the_table(plugins):
    builtin = {name for name in plugins.nodes.names() if plugins.nodes.plugin_of(name).dist == "nnframe"}
    assert builtin == BUILTIN_NODES == set(CASES)


@pytest.mark.parametrize(("name", "params", "shapes", "out_shape"), TABLE, ids=TABLE_IDS)
def test_shape_and_float64_gradients(plugins, name, params, shapes, out_shape):
    node = build(plugins, name, params, shapes)
    inputs = make_inputs(shapes)
    assert node.forward(*inputs).shape == out_shape
    result = check_gradients(node, *inputs)
    assert set(result.errors) >= {f"input{i}" for i in range(len(shapes))} | set(node.param_names)


@pytest.mark.parametrize(("name", "params", "shapes", "out_shape"), TABLE, ids=TABLE_IDS)
def test_float32_in_float32_out_and_grads(plugins, name, params, shapes, out_shape):
    node = build(plugins, name, params, shapes, dtype=np.float32)
    inputs = make_inputs(shapes, np.float32)
    out = node.forward(*inputs)
    dxs = as_tuple(node.backward(np.ones_like(out)))
    assert out.dtype == np.float32
    assert [dx.dtype for dx in dxs] == [np.float32] * len(inputs)
    assert [dx.shape for dx in dxs] == [x.shape for x in inputs]
    assert all(p.dtype == g.dtype == np.float32 for p, g in zip(node.params, node.grads))


@pytest.mark.parametrize(("name", "params", "shapes", "out_shape"), TABLE, ids=TABLE_IDS)
def test_params_and_grads_pair_up(plugins, name, params, shapes, out_shape):
    node = build(plugins, name, params, shapes)
    assert len(node.params) == len(node.grads) == len(node.param_names)
    assert [p.shape for p in node.params] == [g.shape for g in node.grads]
    assert [n for n, _, _ in node.named_params()] == list(node.param_names)
    assert repr(node).startswith(type(node).__name__) and " object at " not in repr(node)


@pytest.mark.parametrize(("name", "params", "shapes", "out_shape"),
                         [row for row in TABLE if row[0] in {"matmul", "affine"}],
                         ids=[i for i, row in zip(TABLE_IDS, TABLE) if row[0] in {"matmul", "affine"}])
def test_grads_are_written_in_place(plugins, name, params, shapes, out_shape):
    node = build(plugins, name, params, shapes)
    held = list(node.grads)
    ids = [id(g) for g in node.grads]
    out = node.forward(*make_inputs(shapes))
    node.backward(np.ones_like(out))
    first = [g.copy() for g in held]
    node.backward(3 * np.ones_like(out))
    assert [id(g) for g in node.grads] == ids
    for g, before in zip(held, first):
        np.testing.assert_allclose(g, 3 * before)


@pytest.mark.parametrize(("params", "shape"), [({"out": 3}, (2, 4)), ({"out": 3, "bias": False}, (2, 4))])
def test_affine_and_matmul_skip_dx_when_not_needed(plugins, params, shape):
    node = build(plugins, "affine", params, [shape])
    node.need_dx = False
    x = make_inputs([shape])[0]
    dout = np.ones((shape[0], params["out"]))
    node.forward(x)
    assert node.backward(dout) is None
    np.testing.assert_allclose(node.grads[0], x.T @ dout)


def test_affine_without_bias_is_matmul(plugins):
    assert type(build(plugins, "affine", {"out": 2, "bias": False}, [(1, 3)])) is MatMul
    assert type(build(plugins, "affine", {"out": 2}, [(1, 3)])) is Affine


def test_matmul_hand_worked():
    W = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    node = MatMul(W)
    # y = [1, 2] W = [1+8, 2+10, 3+12]
    np.testing.assert_array_equal(node.forward(np.array([[1.0, 2.0]])), [[9.0, 12.0, 15.0]])
    # dx = dy Wᵀ = [1*1 - 1*3, 1*4 - 1*6]; dW = xᵀ dy = [[1, 0, -1], [2, 0, -2]]
    dx = node.backward(np.array([[1.0, 0.0, -1.0]]))
    np.testing.assert_array_equal(dx, [[-2.0, -2.0]])
    np.testing.assert_array_equal(node.grads[0], [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0]])


def test_affine_bias_gradient_sums_over_the_batch():
    node = Affine(np.zeros((2, 1)), np.array([0.5]))
    # y = 0 + 0.5 for both rows; db = 1 + 2
    np.testing.assert_array_equal(node.forward(np.ones((2, 2))), [[0.5], [0.5]])
    node.backward(np.array([[1.0], [2.0]]))
    np.testing.assert_array_equal(node.grads[1], [3.0])


def test_matmul_batched_input_folds_leading_axes():
    rng = np.random.default_rng(0)
    x, W, dy = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal((2, 3, 5))
    node = MatMul(W)
    np.testing.assert_allclose(node.forward(x), np.einsum("btd,dh->bth", x, W))
    dx = node.backward(dy)
    np.testing.assert_allclose(dx, np.einsum("bth,dh->btd", dy, W))
    np.testing.assert_allclose(node.grads[0], np.einsum("btd,bth->dh", x, dy))


def test_repeat_forward_is_sum_backward_and_back():
    x = np.array([[1.0, 2.0, 3.0]])
    repeat, total = Repeat(2, axis=0), Sum(axis=0)
    copies = repeat.forward(x)
    np.testing.assert_array_equal(copies, [[1, 2, 3], [1, 2, 3]])
    total.forward(copies)
    np.testing.assert_array_equal(total.backward(x), copies)

    y = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    # Sum: [1+4, 2+5, 3+6]; Repeat's backward sums the two copies' gradients the same way
    np.testing.assert_array_equal(total.forward(y), [[5.0, 7.0, 9.0]])
    np.testing.assert_array_equal(repeat.backward(y), total.forward(y))


def test_repeat_general_sizes_send_each_copy_back_to_its_slice():
    node = Repeat(2, axis=1)
    np.testing.assert_array_equal(node.forward(np.array([[1.0, 2.0]])), [[1, 1, 2, 2]])
    # copies of x0 get 1 and 2, copies of x1 get 3 and 4
    np.testing.assert_array_equal(node.backward(np.array([[1.0, 2.0, 3.0, 4.0]])), [[3.0, 7.0]])


def test_add_returns_two_gradients_that_do_not_alias():
    node = Add()
    out = node.forward(np.ones((2, 3)), np.ones((2, 3)))
    dx, dy = node.backward(np.ones_like(out))
    assert dx is not dy
    # y of shape (3,) broadcast over 2 rows: each column's gradient is 1 + 1
    node.forward(np.ones((2, 3)), np.ones(3))
    np.testing.assert_array_equal(node.backward(np.ones((2, 3)))[1], [2.0, 2.0, 2.0])


def test_mul_swaps_inputs_in_backward():
    node = Mul()
    node.forward(np.array([[2.0, 3.0]]), np.array([[5.0, 7.0]]))
    dx, dy = node.backward(np.array([[1.0, 10.0]]))
    np.testing.assert_array_equal(dx, [[5.0, 70.0]])
    np.testing.assert_array_equal(dy, [[2.0, 30.0]])


@pytest.mark.parametrize("node", [Sigmoid(), Tanh(), Softmax(), ReLU()], ids=repr)
def test_activations_are_finite_at_extreme_inputs(node):
    x = np.array([[1000.0, -1000.0, 0.0]])
    with warnings.catch_warnings(), np.errstate(**WARNING_CATEGORIES_RAISE):
        warnings.simplefilter("error")
        out = node.forward(x)
        dx = node.backward(np.ones_like(x))
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx))


def test_hand_worked_activation_values():
    # sigmoid(0) = 1/2; sigmoid'(0) = 1/2 * 1/2
    sig = Sigmoid()
    np.testing.assert_allclose(sig.forward(np.array([0.0, 1000.0, -1000.0])), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(sig.backward(np.ones(3)), [0.25, 0.0, 0.0])
    # softmax of equal scores is uniform; of (0, ln 3) is (1/4, 3/4)
    np.testing.assert_allclose(Softmax().forward(np.array([[0.0, np.log(3.0)]])), [[0.25, 0.75]])
    relu = ReLU()
    np.testing.assert_array_equal(relu.forward(np.array([-1.0, 0.0, 2.0])), [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(relu.backward(np.array([5.0, 5.0, 5.0])), [0.0, 0.0, 5.0])


def test_relu_handles_a_changing_batch_size():
    node = ReLU()
    node.forward(np.ones((3, 2)))
    node.forward(-np.ones((1, 2)))
    np.testing.assert_array_equal(node.backward(np.ones((1, 2))), [[0.0, 0.0]])


def test_dropout_training_drops_and_scales_eval_is_identity():
    x = np.ones((200, 500))
    node = Dropout(0.3, rng=np.random.default_rng(0))
    out = node.forward(x)
    assert set(np.unique(out)) == {0.0, 1 / 0.7}
    assert abs((out == 0).mean() - 0.3) < 0.01
    assert abs(out.mean() - 1.0) < 0.01
    dx = node.backward(np.full_like(x, 2.0))
    np.testing.assert_array_equal(dx, 2 * out)

    node.training = False
    assert node.forward(x) is x
    dout = np.full_like(x, 2.0)
    assert node.backward(dout) is dout


def test_dropout_masks_come_from_its_generator():
    x = np.ones((4, 5))
    kept = np.random.get_state()
    try:
        np.random.seed(0)
        first, second = Dropout(0.5).forward(x), Dropout(0.5).forward(x)
        assert not np.array_equal(first, second)  # two layers made by hand drop different units
        np.random.seed(0)
        np.testing.assert_array_equal(Dropout(0.5).forward(x), first)  # and np.random.seed repeats them
    finally:
        np.random.set_state(kept)
    assert isinstance(Dropout(0.5).rng, np.random.Generator)
    node = Dropout(0.5, rng=np.random.default_rng(3))
    assert not np.array_equal(node.forward(np.ones((10, 10))), node.forward(np.ones((10, 10))))


def test_dropout_built_from_context_draws_its_own_stream(plugins):
    masks = [build(plugins, "dropout", {}, [(8, 8)], seed=seed).forward(np.ones((8, 8))) for seed in (0, 0, 1)]
    np.testing.assert_array_equal(masks[0], masks[1])
    assert not np.array_equal(masks[0], masks[2])


@pytest.mark.parametrize("ratio", [-0.1, 1.0])
def test_dropout_rejects_bad_ratio(ratio):
    with pytest.raises(ConfigError, match="ratio"):
        Dropout(ratio)


@pytest.mark.parametrize(("name", "params"), [
    ("affine", {"out": 0}), ("affine", {"out": 2, "init": "uniform"}), ("affine", {"out": 2, "scale": 0}),
    ("affine", {"out": 2, "outs": 3}), ("matmul", {}), ("repeat", {"n": 0}), ("dropout", {"ratio": 1.0}),
    ("dropout", {"ratio": -0.5}), ("sigmoid", {"axis": 1}),
])
def test_params_reject_bad_values(plugins, name, params):
    with pytest.raises(ValidationError):
        plugins.nodes.get(name).params(**params)


@pytest.mark.parametrize(("name", "params", "shapes", "error"), [
    ("add", {}, [(2, 3)], GraphError),
    ("mul", {}, [(2, 3), (2, 3), (2, 3)], GraphError),
    ("affine", {"out": 2}, [(2, 3), (2, 3)], GraphError),
    ("repeat", {"n": 2, "axis": 2}, [(2, 3)], ConfigError),
    ("sum", {"axis": -3}, [(2, 3)], ConfigError),
    ("softmax", {"axis": 5}, [(2, 3)], ConfigError),
])
def test_build_rejects_wrong_inputs_naming_the_node(plugins, name, params, shapes, error):
    with pytest.raises(error, match=f"'{name}1'"):
        build(plugins, name, params, shapes)


def test_every_builtin_component_documents_its_fields(plugins):
    for component in plugins.nodes:
        if plugins.nodes.plugin_of(component.name).dist != "nnframe":
            continue
        assert component.summary(), component.name
        for field_name, info in component.params.model_fields.items():
            assert info.description, f"{component.name}.{field_name}"


@pytest.mark.parametrize(("dtype", "rtol"), [(np.float64, 1e-13), (np.float32, 1e-5)])
@pytest.mark.parametrize("rows", [0, 1, 30, 256])
def test_affine_bias_gradient_is_the_sum_down_the_columns(dtype, rtol, rows):
    values = np.random.default_rng(rows).standard_normal((rows, 10)).astype(dtype)
    out = np.empty(10, dtype)
    assert column_sums(values, out) is out
    np.testing.assert_allclose(out, values.sum(axis=0, dtype=np.float64), rtol=rtol, atol=rtol)


def test_affine_bias_gradient_keeps_infinities_and_nans():
    out = np.empty(3)
    column_sums(np.array([[1.0, np.inf, np.nan], [2.0, 1.0, 0.0]]), out)
    np.testing.assert_array_equal(out, [3.0, np.inf, np.nan])


def test_the_ones_shared_by_every_bias_gradient_are_read_only():
    values = np.ones((7, 3))
    column_sums(values, np.empty(3))
    with pytest.raises(ValueError, match="read-only"):
        fixed_arrays.ones(7, values.dtype)[0] = 2.0


def test_the_shared_arrays_of_a_whole_dataset_are_not_kept(monkeypatch):
    monkeypatch.setattr(fixed_arrays, "_kept", {})  # earlier tests' shapes may have filled it
    kept = dict(fixed_arrays._kept)
    big = fixed_arrays.row_starts(fixed_arrays.KEPT_SIZE_LIMIT + 1, 3)
    assert big[-1] == 3 * fixed_arrays.KEPT_SIZE_LIMIT and not big.flags.writeable
    assert fixed_arrays._kept == kept
    small = fixed_arrays.row_starts(5, 3)
    assert small is fixed_arrays.row_starts(5, 3) and small.tolist() == [0, 3, 6, 9, 12]


@pytest.mark.parametrize("x_shape", [(30, 2), (1, 2), (4, 3, 2), (2,)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_nodes_product_is_matmuls_to_the_bit(x_shape, dtype):
    rng = np.random.default_rng(1)
    x, W = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal((2, 10)).astype(dtype)
    got = product(x, W)
    assert got.dtype == (x @ W).dtype and got.shape == (x @ W).shape
    np.testing.assert_array_equal(got, x @ W)
    np.testing.assert_array_equal(product(x, W[:, 0]), x @ W[:, 0])


def test_the_nodes_product_of_strided_operands_is_a_product():
    rng = np.random.default_rng(3)
    data, W = rng.standard_normal((20, 50)), rng.standard_normal((50, 1))
    np.testing.assert_allclose(product(data[::2], W), data[::2] @ W, rtol=1e-14)
    np.testing.assert_allclose(product(data[:1, ::-1], W), data[:1, ::-1] @ W, rtol=1e-14)


@pytest.mark.parametrize("operands", ["strings", "masked W", "times"])
def test_the_nodes_product_fails_where_matmul_fails(operands):
    W = np.ones((2, 3))
    x = np.ones((4, 2))
    if operands == "strings":
        x = np.array([["a", "b"]] * 4)
    elif operands == "masked W":
        W = np.ma.masked_array(W, mask=[[True, False, False], [False, False, False]])
    else:
        x = np.ones((4, 2), "m8[s]")
    with pytest.raises(Exception) as expected:
        x @ W
    with pytest.raises(type(expected.value)):
        product(x, W)


@pytest.mark.parametrize(("out_dtype", "strided"), [(np.float64, False), (np.float32, False), (np.float64, True)])
def test_a_product_into_an_array_numpys_dot_refuses_still_lands_there(out_dtype, strided):
    rng = np.random.default_rng(2)
    x, rows = rng.standard_normal((30, 4)), rng.standard_normal((30, 3))
    target = np.zeros((4, 6), out_dtype)
    out = target[:, ::2] if strided else target[:, :3].copy()
    assert product_into(x.T, rows, out) is out
    np.testing.assert_allclose(out, np.matmul(x.T, rows).astype(out_dtype), rtol=1e-6 if out_dtype == np.float32 else 0)
    if strided:
        assert not target[:, 1::2].any()


def test_an_affine_of_float32_parameters_trains_on_float64_data():
    rng = np.random.default_rng(0)
    node = Affine(rng.standard_normal((4, 3)).astype(np.float32), np.zeros(3, np.float32))
    x, dout = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    assert node.forward(x).dtype == np.float64
    assert node.backward(dout).dtype == np.float64
    assert node.grads[0].dtype == node.grads[1].dtype == np.float32
    np.testing.assert_allclose(node.grads[0], x.T @ dout, rtol=1e-5)
    np.testing.assert_allclose(node.grads[1], dout.sum(axis=0), rtol=1e-5)


@pytest.mark.parametrize("node", [Affine(np.zeros((2, 3)), np.zeros(3)), MatMul(np.zeros((2, 3))), Sigmoid(), ReLU(),
                                  Tanh(), Softmax(), Repeat(2), Sum(), Add(), Mul()], ids=repr)
def test_a_backward_before_any_forward_says_so(node):
    with pytest.raises(RuntimeError, match=f"{type(node).__name__}.backward was called before forward"):
        node.backward(np.ones((2, 3)))


@pytest.mark.parametrize(("name", "params", "shapes", "out_shape"), TABLE, ids=TABLE_IDS)
def test_every_builtin_node_refuses_a_dout_of_another_shape_than_its_output(plugins, name, params, shapes,
                                                                            out_shape):
    node = build(plugins, name, params, shapes)
    node.forward(*make_inputs(shapes))
    with pytest.raises(ValueError, match=rf"dout has shape \({', '.join(map(str, out_shape))}, 1\), but forward's "
                                         rf"output had shape {re.escape(str(out_shape))}"):
        node.backward(np.ones(out_shape + (1,)))


@pytest.mark.parametrize(("name", "params", "shapes", "out_shape"), TABLE, ids=TABLE_IDS)
def test_every_builtin_node_takes_a_dout_of_the_right_shape_as_nested_lists(plugins, name, params, shapes,
                                                                             out_shape):
    inputs, dout = make_inputs(shapes), np.random.default_rng(2).standard_normal(out_shape)
    grads = []
    for given in (dout, dout.tolist()):
        node = build(plugins, name, params, shapes)  # alike, seeded alike: a Dropout draws the same mask
        node.forward(*inputs)
        grads.append(as_tuple(node.backward(given)) + tuple(node.grads))
    assert all(np.array_equal(a, b) for a, b in zip(*grads))


@pytest.mark.parametrize("node", [Sigmoid(), Tanh()], ids=repr)
@pytest.mark.parametrize("x", [0.3, np.float64(0.3), np.array(0.3)], ids=["float", "numpy-scalar", "0-d"])
def test_sigmoid_and_tanh_of_a_single_number_as_in_the_book(node, x):
    y = node.forward(x)
    function = {"Sigmoid()": lambda v: 1 / (1 + np.exp(-v)), "Tanh()": np.tanh}[repr(node)]
    assert float(y) == pytest.approx(function(0.3))
    slope = (function(0.3 + 1e-6) - function(0.3 - 1e-6)) / 2e-6
    assert float(node.backward(2.0)) == pytest.approx(2 * slope, rel=1e-8)


@pytest.mark.parametrize(("dout", "message"), [
    ([[1.0, 2.0], [3.0]], r"Sigmoid.backward: dout is not an array of numbers \(its nested lists are uneven\); "
                          r"forward's output had shape \(2, 2\)"),
    ([["a", "b"], ["c", "d"]], r"Sigmoid.backward: dout must hold numbers, found dtype <U1"),
], ids=["ragged", "strings"])
def test_a_dout_of_the_right_shape_that_is_no_array_of_numbers_is_named(dout, message):
    node = Sigmoid()
    node.forward(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=message):
        node.backward(dout)


def evaluating(node: Dropout) -> Dropout:
    node.training = False
    return node


@pytest.mark.parametrize(("node", "x", "dout"), [
    (Sum(), np.ones((4, 3)), np.ones(3)),        # a sum without keepdims
    (Sum(), np.ones((4, 3)), np.ones((4, 3))),
    (Repeat(3), np.ones((1, 3)), np.ones((3, 1))),
    (Sigmoid(), np.ones((4, 3)), np.ones((1, 3))),  # each would be broadcast into wrong values of the right shape
    (Tanh(), np.ones((4, 3)), np.ones(3)),
    (ReLU(), np.ones((4, 3)), np.ones((4, 1))),
    (Softmax(), np.ones((4, 3)), 1.0),
    (Dropout(0.5, np.random.default_rng(0)), np.ones((4, 3)), np.ones(3)),
    (evaluating(Dropout(0.5)), np.ones((4, 3)), np.ones(3)),
    (Add(), (np.ones((4, 3)), np.ones(3)), np.ones(3)),
    (Mul(), (np.ones((4, 1)), np.ones(3)), np.ones((4, 1))),
    (Affine(np.ones((2, 3)), np.zeros(3)), np.ones((5, 4, 2)), np.ones((4, 5, 3))),  # would be refolded silently
    (MatMul(np.ones((2, 3))), np.ones((5, 4, 2)), np.ones((20, 3))),
    (MatMul(np.ones(2)), np.ones((4, 2)), np.ones((4, 1))),
], ids=["sum-flat", "sum-input-shaped", "repeat-transposed", "sigmoid-row", "tanh-flat", "relu-column",
        "softmax-scalar", "dropout-flat", "dropout-evaluating", "add-the-second-inputs-shape",
        "mul-the-first-inputs-shape", "affine-batch-axes-swapped", "matmul-batch-folded", "matmul-dot-column"])
def test_nodes_refuse_a_dout_of_another_shape_than_their_output(node, x, dout):
    out = node.forward(*x) if isinstance(x, tuple) else node.forward(x)
    with pytest.raises(ValueError, match=rf"{type(node).__name__}.backward: dout has shape "
                                         rf"{re.escape(str(np.shape(dout)))}, but forward's output had shape "
                                         rf"{re.escape(str(out.shape))}"):
        node.backward(dout)


@pytest.mark.parametrize(("n", "error", "match"), [(2.5, TypeError, "whole number of copies, found 2.5"),
                                                   (0, ValueError, "at least 1, found 0"),
                                                   (-1, ValueError, "at least 1")])
def test_repeat_takes_a_whole_number_of_copies_at_least_one(n, error, match):
    with pytest.raises(error, match=match):
        Repeat(n)


def test_sum_along_a_missing_axis_is_numpys_axis_error():
    with pytest.raises(np.exceptions.AxisError, match="axis 2 is out of bounds"):
        Sum(axis=2).forward(np.ones((2, 3)))


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda: Affine(np.zeros((2, 3)), np.zeros((1, 3))), ValueError,
     r"Affine: b must have shape \(3,\), found \(1, 3\)"),
    (lambda: Affine(np.zeros((2, 3)), np.zeros(2)), ValueError, r"b must have shape \(3,\), found \(2,\)"),
    (lambda: Affine(np.zeros(3), np.zeros(3)), ValueError, r"W must have shape \(any, any\), found \(3,\)"),
    (lambda: Affine(np.zeros((2, 3), dtype=int), np.zeros(3)), TypeError, "W must be a floating-point array"),
    (lambda: Affine(np.zeros((2, 3)), None), TypeError, "b must be a floating-point array, found NoneType"),
    (lambda: MatMul(np.ones((2, 3), dtype=np.int64)), TypeError, "MatMul: W must be a floating-point array"),
], ids=["bias-row", "bias-width", "vector-weight", "int-weight", "no-bias", "int-matmul"])
def test_affine_and_matmul_refuse_parameters_they_cannot_train(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_affine_keeps_the_callers_arrays_and_makes_lists_into_arrays():
    W, b = np.zeros((2, 3)), np.zeros(3)
    affine = Affine(W, b)
    assert affine.params[0] is W and affine.params[1] is b
    listed = Affine([[1.0, 2.0], [3.0, 4.0]], [0.0, 0.0])
    assert all(isinstance(p, np.ndarray) for p in listed.params)
    np.testing.assert_array_equal(listed.forward(np.eye(2)), [[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize("x_shape", [(3,), (5, 3), (2, 4, 3)])
def test_matmul_with_a_vector_weight_is_a_dot_product_with_its_gradients(x_shape):
    rng = np.random.default_rng(0)
    check_gradients(MatMul(rng.standard_normal(3)), rng.standard_normal(x_shape))


def test_matmul_refuses_a_weight_that_is_neither_matrix_nor_vector():
    with pytest.raises(ValueError, match=r"MatMul: W must be a matrix \(or a vector, for a dot product\)"):
        MatMul(np.ones((2, 2, 2)))


def test_add_and_mul_of_zero_dimensional_inputs_take_a_python_number_as_the_gradient():
    for node in (Add(), Mul()):
        node.forward(np.array(2.0), np.array(3.0))
        dx, dy = node.backward(1.0)
        assert (np.shape(dx), np.shape(dy)) == ((), ())


@pytest.mark.parametrize(("node", "x", "message"), [
    (Affine(np.ones((2, 8)), np.zeros(8)), np.zeros((5, 3)), r"Affine: x has 3 features \(shape \(5, 3\)\), but W "
                                                             r"\(2, 8\) takes 2"),
    (MatMul(np.ones((2, 8))), np.zeros((4, 5, 3)), r"MatMul: x has 3 features \(shape \(4, 5, 3\)\), but W \(2, 8\) "
                                                   r"takes 2"),
    (MatMul(np.ones(3)), np.zeros(4), r"MatMul: x has 4 features \(shape \(4,\)\), but W \(3,\) takes 3"),
], ids=["affine", "matmul-batched", "matmul-dot"])
def test_an_input_of_another_width_than_the_weight_is_named_in_the_books_terms(node, x, message):
    with pytest.raises(ValueError, match=message):
        node.forward(x)


@pytest.mark.parametrize("node", [Add(), Mul()], ids=repr)
def test_add_and_mul_name_inputs_that_do_not_broadcast(node):
    with pytest.raises(ValueError, match=rf"{type(node).__name__}: x of shape \(4, 3\) and y of shape \(4, 2\) do "
                                         r"not broadcast together: each axis, counted from the last, must be equal"):
        node.forward(np.ones((4, 3)), np.ones((4, 2)))


@pytest.mark.parametrize("ids, found", [
    (np.array([0.0, 2.5]), "index 2.5 at (1,) is not one of its 4 rows"),
    (np.array([[1.0, -1.0]]), "index -1.0 at (0, 1) is not one of its 4 rows"),
    (np.array([3, 4]), "index 4 at (1,) is not one of its 4 rows; indices must be whole numbers 0..3"),
    (np.array([np.nan]), "index nan at (0,)"),
])
def test_indices_refuses_what_astype_would_read_as_another_row(ids: np.ndarray, found: str) -> None:
    from nnframe.errors import DataError
    from nnframe.node import indices

    with pytest.raises(DataError, match=re.escape(f"Sigmoid: {found}")):
        indices(ids, 4, Sigmoid())


def test_indices_gives_whole_float_ids_as_intp() -> None:
    from nnframe.node import indices

    got = indices(np.array([[0.0, 3.0], [2.0, 1.0]], dtype=np.float32), 4, Sigmoid())
    assert got.dtype == np.intp and got.tolist() == [[0, 3], [2, 1]]


def test_flatten_takes_an_empty_batch_and_refuses_a_single_number() -> None:
    from nnframe.nodes import Flatten

    flatten = Flatten()
    assert flatten.forward(np.zeros((0, 2, 3))).shape == (0, 6)
    assert flatten.backward(np.zeros((0, 6))).shape == (0, 2, 3)
    with pytest.raises(DataError, match=r"Flatten: the input must be a batch of shape \(N, \.\.\.\)"):
        flatten.forward(np.float64(3.0))

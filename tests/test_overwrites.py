"""Nodes that write over arrays: only where the model grants it, and never visibly to anyone else."""

from __future__ import annotations

import numpy as np
import pytest

from nnframe.errors import NodeProtocolError
from nnframe.graph import Graph, GraphNode
from nnframe.nodes import Add, Affine, ReLU, Sigmoid
from nnframe.testing import check_gradients


class CopyingReLU(ReLU):
    """The same node, never writing over anything: the reference."""

    can_overwrite = False


def grants_seen(node: ReLU) -> dict[str, bool]:
    """The flags ``node`` held each time it last ran, as the model set them for that pass."""
    seen: dict[str, bool] = {}
    forward, backward = node.forward, node.backward

    def watched_forward(x):
        seen["input"] = node.overwrite_input
        return forward(x)

    def watched_backward(dout):
        seen["dout"] = node.overwrite_dout
        return backward(dout)

    node.forward, node.backward = watched_forward, watched_backward
    return seen


def affine(rng: np.random.Generator, d: int, h: int) -> Affine:
    return Affine(rng.standard_normal((d, h)), rng.standard_normal(h))


def mlp(relu_class: type[ReLU], seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    return Graph.sequential([("affine1", affine(rng, 4, 6)), ("relu1", relu_class()),
                             ("affine2", affine(rng, 6, 3)), ("relu2", relu_class())])


def test_between_two_affines_relu_writes_over_both_and_computes_the_same():
    model, reference = mlp(ReLU), mlp(CopyingReLU)
    model.need_input_grad = reference.need_input_grad = True
    x = np.random.default_rng(1).standard_normal((5, 4))
    seen = {}
    relu1 = model["relu1"]
    forward, backward = relu1.forward, relu1.backward
    relu1.forward = lambda v: seen.setdefault("forward", (v, forward(v)))[1]
    relu1.backward = lambda d: seen.setdefault("backward", (d, backward(d)))[1]
    dout = np.random.default_rng(2).standard_normal((5, 3))
    np.testing.assert_array_equal(model.forward(x), reference.forward(x))
    np.testing.assert_array_equal(model.backward(dout.copy()), reference.backward(dout.copy()))
    for got, expected in zip(model.grads, reference.grads):
        np.testing.assert_array_equal(got, expected)
    assert seen["forward"][0] is seen["forward"][1]
    assert seen["backward"][0] is seen["backward"][1]


def test_the_last_relu_leaves_the_callers_gradient_and_the_first_the_callers_input():
    model = Graph.sequential([("relu1", ReLU()), ("affine1", affine(np.random.default_rng(0), 4, 3)),
                              ("relu2", ReLU())])
    model.need_input_grad = True
    x = np.random.default_rng(1).standard_normal((5, 4))
    dout = np.random.default_rng(2).standard_normal((5, 3))
    x_before, dout_before = x.copy(), dout.copy()
    first, last = grants_seen(model["relu1"]), grants_seen(model["relu2"])
    model.forward(x)
    model.backward(dout)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dout, dout_before)
    assert first == {"input": False, "dout": True}  # it reads the caller's input; its gradient is affine1's new array
    assert last == {"input": True, "dout": False}


def test_no_overwrite_of_a_value_another_node_reads_or_keeps():
    rng = np.random.default_rng(0)
    nodes = [GraphNode("affine1", affine(rng, 4, 4), "x"),
             GraphNode("relu1", ReLU(), "affine1"),
             GraphNode("add", Add(), ("affine1", "relu1")),  # reads the value relu1 reads
             GraphNode("sigmoid", Sigmoid(), "add"),  # keeps its output for backward
             GraphNode("relu2", ReLU(), "sigmoid")]
    model = Graph(nodes)
    model.need_input_grad = True
    x = rng.standard_normal((3, 4))
    check_gradients(model, x)
    first, last = grants_seen(model["relu1"]), grants_seen(model["relu2"])
    model.forward(x)
    model.backward(np.ones((3, 4)))
    assert first == {"input": False, "dout": False}  # its gradient comes from Add, which hands one array to both
    assert last == {"input": False, "dout": False}


def test_trace_shows_each_output_as_it_was_made():
    model = mlp(ReLU)
    x = np.random.default_rng(1).standard_normal((50, 4))
    seen = grants_seen(model["relu1"])
    model.forward(x)
    assert seen["input"]
    outputs = model.trace(x)
    assert not seen["input"]
    assert (outputs["affine1"] < 0).any()
    np.testing.assert_array_equal(outputs["relu1"], np.maximum(outputs["affine1"], 0))


def test_a_node_shared_with_another_graph_follows_the_graph_it_runs_in():
    rng = np.random.default_rng(0)
    relu = ReLU()
    first = Graph.sequential([("affine1", affine(rng, 4, 4)), ("relu1", relu)])
    second = Graph.sequential([("relu1", relu), ("affine1", affine(rng, 4, 2))])
    x = rng.standard_normal((5, 4))
    first.forward(x)
    before = x.copy()
    second.forward(x)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("cls", [ReLU, CopyingReLU])
def test_the_whole_model_passes_the_gradient_check(cls):
    model = mlp(cls)
    model.need_input_grad = True
    check_gradients(model, np.random.default_rng(3).standard_normal((5, 4)))


def test_a_relu_on_its_own_never_overwrites():
    relu, x = ReLU(), np.array([[-1.0, 2.0]])
    y = relu.forward(x)
    dout = np.ones((1, 2))
    dx = relu.backward(dout)
    assert y is not x and dx is not dout
    np.testing.assert_array_equal(x, [[-1.0, 2.0]])


class KeepingAffine(Affine):
    """A plugin's Affine that keeps its output: it rewrote forward, so Affine's promise does not carry over."""

    def forward(self, x):
        self.out = super().forward(x)
        return self.out


class SeededAffine(Affine):
    """A plugin's Affine that only builds itself differently: Affine's promise still holds."""

    def __init__(self, d: int, h: int) -> None:
        rng = np.random.default_rng(d * h)
        super().__init__(rng.standard_normal((d, h)), np.zeros(h))


class WatchingReLU(ReLU):
    """Keeps its input: it rewrote forward, so ReLU's can_overwrite covers only the backward it kept."""

    def forward(self, x):
        self.seen = x
        return super().forward(x)


@pytest.mark.parametrize("first, relu, on_input, on_dout", [
    (lambda: KeepingAffine(np.eye(4), np.zeros(4)), ReLU, False, True),
    (lambda: SeededAffine(4, 4), ReLU, True, True),
    (lambda: affine(np.random.default_rng(0), 4, 4), WatchingReLU, False, True),
])
def test_a_subclass_that_rewrites_a_method_keeps_no_promise_about_it(first, relu, on_input, on_dout):
    model = Graph.sequential([("first", first()), ("relu", relu()), ("last", affine(np.random.default_rng(1), 4, 2))])
    x = np.random.default_rng(2).standard_normal((5, 4)) - 0.5
    seen = grants_seen(model["relu"])
    model.forward(x)
    model.backward(np.ones((5, 2)))
    assert seen == {"input": on_input, "dout": on_dout}
    if isinstance(model["first"], KeepingAffine):
        assert (model["first"].out < 0).any()  # its kept output is as it made it
    if isinstance(model["relu"], WatchingReLU):
        assert (model["relu"].seen < 0).any()


def test_after_a_pass_the_node_on_its_own_writes_over_nothing():
    model = mlp(ReLU)
    model.need_input_grad = True
    x = np.random.default_rng(1).standard_normal((5, 4))
    model.forward(x)
    model.backward(np.ones((5, 3)))
    relu = model["relu1"]
    assert not relu.overwrite_input and not relu.overwrite_dout
    z, d = np.array([[-1.0, 2.0]]), np.array([[3.0, 4.0]])
    relu.forward(z)
    relu.backward(d)
    np.testing.assert_array_equal(z, [[-1.0, 2.0]])
    np.testing.assert_array_equal(d, [[3.0, 4.0]])


def test_a_product_of_two_vectors_is_a_scalar_relu_leaves_as_it_was_made():
    from nnframe.nodes import MatMul

    model = Graph.sequential([("matmul", MatMul(np.array([1.0, -2.0, 0.5]))), ("relu", ReLU())])
    assert model.forward(np.array([1.0, 1.0, 2.0])) == 0.0
    assert model.forward(np.array([4.0, 1.0, 2.0])) == 3.0


class KeptExp(Sigmoid):
    """``y = exp(x)``, kept for its backward, yet declared fresh: a node that writes over ``y`` changes its dx."""

    output_is_fresh = True

    def forward(self, x):
        self.out = np.exp(x)
        return self.out

    def backward(self, dout):
        return dout * self.out


class KeptDx(Sigmoid):
    """``y = 2 x``, whose backward keeps the ``dx`` it returns (in a list), yet declares it fresh."""

    dx_is_fresh = True

    def forward(self, x):
        return 2 * x

    def backward(self, dout):
        self.history = [2 * dout]
        return self.history[0]


def test_a_node_that_keeps_an_output_it_declares_fresh_is_named_at_the_first_forward():
    model = Graph.sequential([("affine1", affine(np.random.default_rng(0), 4, 3)), ("exp1", KeptExp()),
                              ("relu1", ReLU())])
    with pytest.raises(NodeProtocolError) as caught:
        model.forward(np.random.default_rng(1).standard_normal((5, 4)))
    message = str(caught.value)
    assert "node 'exp1'" in message and "output_is_fresh" in message and "self.out" in message
    assert "'relu1' writes over that output" in message


def test_a_node_that_keeps_an_input_gradient_it_declares_fresh_is_named_at_the_first_backward():
    model = Graph.sequential([("affine1", affine(np.random.default_rng(0), 4, 3)), ("relu1", ReLU()),
                              ("double1", KeptDx())])
    model.forward(np.random.default_rng(1).standard_normal((5, 4)))
    with pytest.raises(NodeProtocolError) as caught:
        model.backward(np.ones((5, 3)))
    message = str(caught.value)
    assert "node 'double1'" in message and "dx_is_fresh" in message and "self.history[0]" in message
    assert "'relu1' writes over that input gradient" in message


def test_a_node_that_keeps_its_declared_fresh_output_is_fine_where_nothing_writes_over_it():
    model = Graph.sequential([("affine1", affine(np.random.default_rng(0), 4, 3)), ("exp1", KeptExp()),
                              ("affine2", affine(np.random.default_rng(2), 3, 2))])
    model.forward(np.random.default_rng(1).standard_normal((5, 4)))
    model.backward(np.ones((5, 2)))

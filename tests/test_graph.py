"""Tests for nnframe.graph: order, the branch rule, validation, params and switches."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import nnframe
from nnframe.errors import GraphError, NNFrameError, NodeProtocolError
import nnframe.graph as graph_module
from nnframe.graph import Graph, GraphNode, sequential_names
from nnframe.losses import SoftmaxWithLoss
from nnframe.node import Node
from nnframe.nodes import Add, Affine, Dropout, Mul, Sigmoid, Tanh
from nnframe.testing import GradientCheckError, check_gradients


class AliasingAdd(Node):
    """z = x + y whose backward hands the very same dout object to both inputs (allowed)."""

    def forward(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x + y

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return dout, dout


class Scale(Node):
    """y = k x; backward returns a buffer the node owns, to catch a graph that writes into it."""

    def __init__(self, k: float) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.dx = np.empty_like(x)
        return self.k * x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.dx[...] = self.k * dout
        return self.dx


class Recorder(Node):
    """Identity that logs its name on forward and backward into a shared list."""

    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__()
        self.name, self.log = name, log

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        self.log.append(f"forward {self.name}")
        self.n_inputs = len(xs)
        return sum(xs)

    def backward(self, dout: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        self.log.append(f"backward {self.name}")
        return dout if self.n_inputs == 1 else (dout,) * self.n_inputs


def count_backward(node: Node) -> Node:
    """Wrap node.backward so that node.backward_calls counts the calls."""
    backward = node.backward
    node.backward_calls = 0

    def counted(dout):
        node.backward_calls += 1
        return backward(dout)

    node.backward = counted
    return node


def numerical_gradient(f, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f() with respect to array, changed in place."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + eps
        plus = f()
        array[index] = saved - eps
        minus = f()
        array[index] = saved
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def check_graph_gradients(graph: Graph, *xs: np.ndarray) -> None:
    """Analytic gradients of sum(graph(*xs) * dout) against central differences, float64."""
    rng = np.random.default_rng(0)
    out = graph.forward(*xs)
    dout = rng.standard_normal(out.shape)
    graph.need_input_grad = True
    dxs = graph.backward(dout)
    dxs = dxs if isinstance(dxs, tuple) else (dxs,)
    grads = [g.copy() for g in graph.grads]

    def loss() -> float:
        return float(np.sum(graph.forward(*xs) * dout))

    for x, dx in zip(xs, dxs):
        np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    for name, param, grad in zip(graph.param_names, graph.params, grads):
        np.testing.assert_allclose(grad, numerical_gradient(loss, param), rtol=1e-6, atol=1e-8,
                                   err_msg=name)


def f64(values) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def affine(W) -> Affine:
    W = f64(W)
    return Affine(W, np.zeros(W.shape[1], dtype=W.dtype))


def random_affine(rng: np.random.Generator, d: int, h: int) -> Affine:
    return count_backward(Affine(rng.standard_normal((d, h)), rng.standard_normal(h)))


# --- forward and the chain rule ------------------------------------------------------------


def test_sequential_forward_matches_hand_computation():
    # x = [1, 2]; W1 = [[1, 0, 1], [0, 1, 1]], b1 = [0, 0, -3] -> h = [1, 2, 0]
    # tanh(h) = [0.7616, 0.9640, 0]; W2 = [[1], [1], [5]], b2 = [1] -> y = 0.7616 + 0.9640 + 1
    graph = Graph.sequential([
        ("affine1", Affine(f64([[1, 0, 1], [0, 1, 1]]), f64([0, 0, -3]))),
        ("tanh1", Tanh()),
        ("affine2", Affine(f64([[1], [1], [5]]), f64([1]))),
    ])
    y = graph.forward(f64([[1, 2]]))
    np.testing.assert_allclose(y, [[np.tanh(1) + np.tanh(2) + 1]])
    assert list(graph.nodes) == ["affine1", "tanh1", "affine2"]
    assert graph.inputs == ["x"] and graph.output == "affine2"


def test_nodes_listed_out_of_order_run_in_topological_order():
    log: list[str] = []
    nodes = [
        GraphNode("c", Recorder("c", log), ("a", "b")),
        GraphNode("b", Recorder("b", log), ("a",)),
        GraphNode("a", Recorder("a", log), ("x",)),
    ]
    graph = Graph(nodes, output="c")
    graph.need_input_grad = True
    # c = a + b = x + x
    assert graph.forward(f64([3.0])) == pytest.approx([6.0])
    graph.backward(f64([1.0]))
    assert log == ["forward a", "forward b", "forward c", "backward c", "backward b", "backward a"]
    assert list(graph.nodes) == ["a", "b", "c"]


def test_already_ordered_list_keeps_its_order():
    log: list[str] = []
    nodes = [GraphNode(name, Recorder(name, log), ("x",)) for name in ("p", "q", "r")]
    nodes.append(GraphNode("s", Recorder("s", log), ("r", "q", "p")))
    Graph(nodes, output="s").forward(f64([1.0]))
    assert log == ["forward p", "forward q", "forward r", "forward s"]


# --- the branch rule --------------------------------------------------------------------


def branch_graph(a: Node, b: Node, add: Node | None = None) -> Graph:
    """y = a(x) + b(x)."""
    return Graph([
        GraphNode("a", a, ("x",)),
        GraphNode("b", b, ("x",)),
        GraphNode("y", add or Add(), ("a", "b")),
    ], output="y")


def test_branch_gradient_is_the_sum_of_both_paths_by_hand():
    # y = x Wa + x Wb with Wa = [[1], [2]], Wb = [[3], [4]], x = [1, 2]
    # y = (1 + 4) + (3 + 8) = 16; dx = dout (Wa + Wb)^T = [1 + 3, 2 + 4] = [4, 6]
    graph = branch_graph(affine([[1], [2]]), affine([[3], [4]]))
    graph.need_input_grad = True
    x = f64([[1, 2]])
    np.testing.assert_allclose(graph.forward(x), [[16.0]])
    np.testing.assert_allclose(graph.backward(f64([[1.0]])), [[4.0, 6.0]])
    # dWa = dWb = x^T dout = [[1], [2]]
    np.testing.assert_allclose(graph.grads[0], [[1.0], [2.0]])
    np.testing.assert_allclose(graph.grads[2], [[1.0], [2.0]])


def test_branch_gradient_matches_numerical_gradient():
    rng = np.random.default_rng(1)
    graph = Graph([
        GraphNode("h", random_affine(rng, 3, 4), ("x",)),
        GraphNode("a", Sigmoid(), ("h",)),
        GraphNode("b", random_affine(rng, 4, 4), ("h",)),
        GraphNode("c", Tanh(), ("h",)),
        GraphNode("ab", Mul(), ("a", "b")),
        GraphNode("y", Add(), ("ab", "c")),
    ], output="y")
    check_graph_gradients(graph, rng.standard_normal((5, 3)))


def test_whole_model_passes_the_library_gradient_check():
    rng = np.random.default_rng(10)
    graph = Graph([
        GraphNode("h", random_affine(rng, 3, 4), ("x",)),
        GraphNode("drop", Dropout(0.3, np.random.default_rng(11)), ("h",)),
        GraphNode("a", Sigmoid(), ("drop",)),
        GraphNode("b", Tanh(), ("h",)),
        GraphNode("y", Add(), ("a", "b")),
    ], output="y")
    graph.need_input_grad = True
    result = check_gradients(graph, rng.standard_normal((5, 3)))
    assert set(result.errors) == {"input0", "h/W", "h/b"}
    assert result.worst_error < 1e-7


def test_value_used_three_times_gets_three_gradients():
    # h = x; y = 2h + 3h + 5h = 10x, so dx = 10 dout
    sum3 = Recorder("sum3", [])
    sum3.backward = lambda dout: (dout, dout, dout)
    graph = Graph([
        GraphNode("h", Scale(1.0), ("x",)),
        GraphNode("s2", Scale(2.0), ("h",)),
        GraphNode("s3", Scale(3.0), ("h",)),
        GraphNode("s5", Scale(5.0), ("h",)),
        GraphNode("y", sum3, ("s2", "s3", "s5")),
    ], output="y")
    graph.need_input_grad = True
    x = f64([[1.0, -2.0]])
    np.testing.assert_allclose(graph.forward(x), [[10.0, -20.0]])
    dout = f64([[1.0, 0.5]])
    dx = graph.backward(dout)
    np.testing.assert_allclose(dx, [[10.0, 5.0]])
    # the sum went into a new array: each node's own dx buffer holds its own share only
    for name, k in (("s2", 2.0), ("s3", 3.0), ("s5", 5.0)):
        np.testing.assert_allclose(graph[name].dx, k * dout)
    np.testing.assert_allclose(dout, [[1.0, 0.5]])


def test_branch_sum_does_not_write_into_the_callers_dout():
    # the add hands dout itself to both branches; their sum must go into a new array
    graph = branch_graph(Scale(1.0), Scale(1.0), AliasingAdd())
    graph.need_input_grad = True
    graph.forward(f64([[1.0, 2.0]]))
    dout = f64([[1.0, 1.0]])
    np.testing.assert_allclose(graph.backward(dout), [[2.0, 2.0]])
    np.testing.assert_allclose(dout, [[1.0, 1.0]])


def test_branch_keeps_float32():
    rng = np.random.default_rng(2)
    a = Affine(rng.standard_normal((3, 2)).astype(np.float32), np.zeros(2, np.float32))
    b = Affine(rng.standard_normal((3, 2)).astype(np.float32), np.zeros(2, np.float32))
    graph = branch_graph(a, b)
    graph.need_input_grad = True
    x = rng.standard_normal((4, 3)).astype(np.float32)
    y = graph.forward(x)
    dx = graph.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in graph.grads)


def test_multi_input_graph_returns_one_gradient_per_input():
    # z = x * (y W) with W = [[2], [1]]: x = [3], y = [1, 4] -> yW = 6, z = 18
    # dz/dx = yW = 6; dz/dy = x W^T = [6, 3]
    graph = Graph([
        GraphNode("h", affine([[2], [1]]), ("y",)),
        GraphNode("z", Mul(), ("x", "h")),
    ], inputs=["x", "y"], output="z")
    x, y = f64([[3.0]]), f64([[1.0, 4.0]])
    np.testing.assert_allclose(graph.forward(x, y), [[18.0]])
    dx, dy = graph.backward(f64([[1.0]]))
    np.testing.assert_allclose(dx, [[6.0]])
    np.testing.assert_allclose(dy, [[6.0, 3.0]])
    check_graph_gradients(graph, x, y)


def test_graph_nested_as_a_node():
    rng = np.random.default_rng(3)
    inner = branch_graph(random_affine(rng, 3, 3), Tanh())
    outer = Graph([
        GraphNode("first", random_affine(rng, 2, 3), ("x",)),
        GraphNode("block", inner, ("first",)),
        GraphNode("last", random_affine(rng, 3, 1), ("block",)),
    ], output="last")
    assert inner.need_dx is True
    assert outer.param_names[2:4] == ["block/a/W", "block/a/b"]
    check_graph_gradients(outer, rng.standard_normal((4, 2)))


def test_forward_with_wrong_number_of_inputs():
    graph = Graph.sequential([("t", Tanh())])
    with pytest.raises(GraphError, match=r"takes 1 input\(s\) \(x\); got 2"):
        graph.forward(f64([1.0]), f64([2.0]))


def test_multi_input_node_must_return_a_tuple():
    bad = Mul()
    bad.backward = lambda dout: dout
    graph = Graph([GraphNode("m", bad, ("x", "x"))], output="m")
    graph.need_input_grad = True
    graph.forward(f64([2.0]))
    with pytest.raises(NNFrameError, match="node 'm' reads 2 inputs.*tuple of 2"):
        graph.backward(f64([1.0]))


# --- validation ------------------------------------------------------------------------


def chain(*specs: tuple[str, tuple[str, ...]]) -> list[GraphNode]:
    return [GraphNode(name, Recorder(name, []), inputs) for name, inputs in specs]


@pytest.mark.parametrize("nodes, inputs, output, message", [
    (chain(("a", ("x", "c")), ("b", ("a",)), ("c", ("b",))), ["x"], "c",
     r"cycle: a -> b -> c -> a"),
    (chain(("a", ("x",)), ("b", ("b",))), ["x"], "b", r"cycle: b -> b"),
    (chain(("hidden", ("x",)), ("y", ("hiden",))), ["x"], "y",
     r"node 'y': unknown input 'hiden'; available: hidden, x \(did you mean 'hidden'\?\)"),
    (chain(("a", ("x",)), ("spare", ("x",)), ("y", ("a",))), ["x"], "y",
     r"'spare' do not lead to the output 'y'"),
    (chain(("a", ("x",)), ("a", ("a",))), ["x"], "a",
     r"duplicate name 'a': already used by another node"),
    (chain(("x", ("x",))), ["x"], "x", r"duplicate name 'x': already used by a graph input"),
    (chain(("a", ("x",))), ["x", "x"], "a", r"graph input 'x' is listed twice"),
    (chain(("h", ("x",)), ("out", ("h",))), ["x"], "ouf",
     r"unknown graph output 'ouf'; available: h, out \(did you mean 'out'\?\)"),
    (chain(("h", ("x",))), ["x"], "x", r"graph output 'x' is a graph input"),
    (chain(("h", ("x",))), ["x", "t"], "h", r"graph input\(s\) 't' are not read by any node"),
    (chain(("h", ()),), ["x"], "h", r"node 'h' has no inputs"),
    ([], ["x"], "y", r"at least one node"),
], ids=["cycle", "self-loop", "unknown-input", "unreachable", "duplicate-node",
        "node-named-like-input", "duplicate-input", "missing-output", "output-is-input",
        "unused-input", "no-inputs", "empty"])
def test_malformed_graph_is_a_graph_error(nodes, inputs, output, message):
    with pytest.raises(GraphError, match=message):
        Graph(nodes, inputs=inputs, output=output)


def test_wrong_number_of_inputs_for_a_node():
    with pytest.raises(GraphError, match=r"node 'sum' \(Add\) cannot take 1 input\(s\) \['x'\]"):
        Graph([GraphNode("sum", Add(), ("x",))], output="sum")


def test_one_node_object_used_twice():
    shared = Tanh()
    with pytest.raises(GraphError, match="'a' and 'b' are the same node object"):
        Graph.sequential([("a", shared), ("b", shared)])


def test_graph_error_is_a_user_error():
    with pytest.raises(GraphError) as info:
        Graph.sequential([])
    assert info.value.exit_code == 2


def test_graph_node_accepts_a_single_name_or_a_list():
    assert GraphNode("a", Tanh(), "x").inputs == ("x",)
    assert GraphNode("a", Add(), ["x", "y"]).inputs == ("x", "y")


# --- params and grads --------------------------------------------------------------------


def two_layer(rng: np.random.Generator) -> Graph:
    return Graph.sequential([
        ("affine1", random_affine(rng, 2, 3)),
        ("tanh1", Tanh()),
        ("affine2", random_affine(rng, 3, 2)),
    ])


def test_params_and_grads_are_the_nodes_own_arrays_across_steps():
    rng = np.random.default_rng(4)
    graph = two_layer(rng)
    own_params = [p for node in graph.nodes.values() for p in node.params]
    own_grads = [g for node in graph.nodes.values() for g in node.grads]
    params_list, grads_list = graph.params, graph.grads
    for _ in range(3):
        x = rng.standard_normal((5, 2))
        y = graph.forward(x)
        graph.backward(np.ones_like(y))
        for param, grad in zip(graph.params, graph.grads):
            param -= 0.1 * grad
        assert graph.params is params_list and graph.grads is grads_list
        assert all(a is b for a, b in zip(graph.params, own_params))
        assert all(a is b for a, b in zip(graph.grads, own_grads))
        assert len(graph.params) == len(own_params) == 4
    # the last step's db2 = sum over the batch of ones = 5, read through the graph's list
    np.testing.assert_allclose(graph.grads[3], [5.0, 5.0])


def test_param_names_and_named_params():
    graph = two_layer(np.random.default_rng(5))
    assert graph.param_names == ["affine1/W", "affine1/b", "affine2/W", "affine2/b"]
    named = graph.named_params()
    assert [name for name, _, _ in named] == graph.param_names
    assert all(p is q and g is h for (_, p, g), q, h in zip(named, graph.params, graph.grads))
    assert graph.named_params() is named


def test_params_follow_topological_order_not_listing_order():
    rng = np.random.default_rng(6)
    nodes = [
        GraphNode("second", random_affine(rng, 2, 2), ("first",)),
        GraphNode("first", random_affine(rng, 2, 2), ("x",)),
    ]
    graph = Graph(nodes, output="second")
    assert graph.param_names == ["first/W", "first/b", "second/W", "second/b"]
    assert graph.params[0] is nodes[1].node.params[0]


# --- switches ---------------------------------------------------------------------------


def test_train_eval_switch_reaches_every_node():
    graph = Graph.sequential([
        ("affine1", affine(np.eye(2))),
        ("dropout1", Dropout(0.5, np.random.default_rng(7))),
        ("sigmoid1", Sigmoid()),
    ])
    x = np.ones((4, 2))
    assert graph.training and all(node.training for node in graph.nodes.values())
    assert graph.eval() is graph
    assert graph.training is False
    assert not any(node.training for node in graph.nodes.values())
    # dropout is the identity in evaluation: sigmoid(1) everywhere
    np.testing.assert_allclose(graph.forward(x), np.full((4, 2), 1 / (1 + np.exp(-1))))
    graph.train()
    assert all(node.training for node in graph.nodes.values())
    graph.train(False)
    assert not any(node.training for node in graph.nodes.values())


def test_a_graph_returns_its_input_gradient_as_the_books_nets_do():
    graph = two_layer(np.random.default_rng(8))
    assert graph.need_input_grad is True
    assert all(node.need_dx for node in graph.nodes.values())
    y = graph.forward(np.ones((2, 2)))
    assert graph.backward(np.ones_like(y)).shape == (2, 2)


def test_need_input_grad_false_lets_the_first_layer_skip_dx():
    graph = two_layer(np.random.default_rng(8))
    graph.need_input_grad = False
    assert [node.need_dx for node in graph.nodes.values()] == [False, True, True]
    y = graph.forward(np.ones((2, 2)))
    assert graph.backward(np.ones_like(y)) is None
    assert graph["affine1"].backward_calls == 1

    graph.need_input_grad = True
    assert all(node.need_dx for node in graph.nodes.values())
    assert graph.backward(np.ones_like(y)).shape == (2, 2)


def test_parameter_free_nodes_on_the_input_are_not_run_backward():
    # x -> tanh -> affine: no gradient is needed below affine, so tanh is skipped
    rng = np.random.default_rng(9)
    tanh, affine1 = count_backward(Tanh()), random_affine(rng, 2, 2)
    graph = Graph.sequential([("tanh1", tanh), ("affine1", affine1)], need_input_grad=False)
    assert (tanh.need_dx, affine1.need_dx) == (False, False)
    y = graph.forward(np.ones((3, 2)))
    graph.backward(np.ones_like(y))
    assert (tanh.backward_calls, affine1.backward_calls) == (0, 1)
    graph.need_input_grad = True
    assert (tanh.need_dx, affine1.need_dx) == (True, True)
    graph.backward(np.ones_like(y))
    assert (tanh.backward_calls, affine1.backward_calls) == (1, 2)


# --- names and repr ---------------------------------------------------------------------


@pytest.mark.parametrize("types, explicit, expected", [
    (["affine", "sigmoid", "affine"], None, ["affine1", "sigmoid1", "affine2"]),
    ([], None, []),
    (["affine", "affine"], ["h", None], ["h", "affine2"]),
    (["affine", "affine"], [None, "affine1"], ["affine2", "affine1"]),
    (["relu", "affine", "affine"], ["affine2", None, None], ["affine2", "affine1", "affine3"]),
    (["a1", "a"] + ["a"] * 10, None, ["a11", "a1"] + [f"a{k}" for k in range(2, 11)] + ["a12"]),
], ids=["by-type", "empty", "explicit-counts", "collision", "skip-taken", "digit-type"])
def test_sequential_names(types, explicit, expected):
    names = sequential_names(types, explicit)
    assert names == expected
    assert len(set(names)) == len(names)


def test_sequential_names_length_mismatch():
    with pytest.raises(ValueError, match=r"explicit names \(1\) do not match types \(2\)"):
        sequential_names(["a", "b"], ["x"])


def test_repr_len_and_lookup():
    graph = branch_graph(affine(np.zeros((2, 3))), Tanh())
    text = repr(graph)
    assert text.startswith("Graph(inputs=[x], output=y,")
    assert "a: Affine(W(2, 3), b(3,)) <- x" in text
    assert "y: Add() <- a, b" in text
    assert len(graph) == 3
    assert graph["b"] is graph.nodes["b"]
    with pytest.raises(KeyError, match="did you mean 'a'"):
        graph["aa"]


def test_trace_returns_every_node_output_in_order():
    from nnframe.nodes import Affine, Sigmoid

    W, b = np.array([[1.0, -1.0]]), np.zeros(2)
    graph = Graph.sequential([("affine1", Affine(W, b)), ("sigmoid1", Sigmoid())])
    outputs = graph.trace(np.array([[2.0]]))
    assert list(outputs) == ["affine1", "sigmoid1"]
    # affine1: 2 * (1, -1) = (2, -2); sigmoid1: 1 / (1 + e^-2), 1 / (1 + e^2)
    np.testing.assert_allclose(outputs["affine1"], [[2.0, -2.0]])
    np.testing.assert_allclose(outputs["sigmoid1"], [[1 / (1 + np.exp(-2)), 1 / (1 + np.exp(2))]])


# --------------------------------------------------------------------------
# The node protocol, checked for nodes a plugin writes
# --------------------------------------------------------------------------


class Gain(Node):
    """y = x * s, with a gradient written in place, or broken in one of the ways a plugin author might."""

    param_names = ("s",)

    def __init__(self, width: int, mistake: str = "") -> None:
        super().__init__()
        self.mistake = mistake
        self.params = [np.full(width, 0.5)]
        self.grads = [np.zeros(width)]
        if mistake == "unnamed second parameter":
            self.params.append(np.zeros(width))
            self.grads.append(np.zeros(width))
        elif mistake == "no gradient array":
            self.grads = []
        elif mistake == "gradient of another shape":
            self.grads = [np.zeros(width + 1)]

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        if self.mistake == "replaces its parameter":
            self.params[0] = self.params[0].copy()
        if self.mistake == "writes into its input" or (self.mistake == "writes into its input in training"
                                                       and self.training):
            self.x = x.copy()
            x *= self.params[0]
            return x
        return x * self.params[0]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        ds = (dout * self.x).sum(axis=0)
        if self.mistake in ("replaces its gradient", "replaces its gradient list"):
            if self.mistake == "replaces its gradient":
                self.grads[0] = ds
            else:
                self.grads = [ds]
        else:
            self.grads[0][...] = ds
        dx = dout * self.params[0]
        return dx.sum(axis=1) if self.mistake == "misshapen input gradient" else dx


def gain_model(mistake: str = "") -> Graph:
    rng = np.random.default_rng(0)
    return Graph.sequential([("affine1", Affine(rng.standard_normal((2, 3)), np.zeros(3))),
                             ("gain1", Gain(3, mistake))])


@pytest.mark.parametrize(("mistake", "message"), [
    ("unnamed second parameter", r"node 'gain1' \(test_graph.Gain\) has 2 params but param_names \('s',\)"),
    ("no gradient array", r"node 'gain1' \(test_graph.Gain\) has 1 params but 0 grads"),
    ("gradient of another shape", r"grads\[0\] has shape \(4,\) but params\[0\] has \(3,\)"),
])
def test_a_node_whose_arrays_disagree_is_refused_when_the_graph_is_made(mistake: str, message: str) -> None:
    with pytest.raises(NodeProtocolError, match=message):
        gain_model(mistake)


@pytest.mark.parametrize(("mistake", "message"), [
    ("replaces its gradient", r"node 'gain1' \(test_graph.Gain\) replaced grads\[0\] \(s\) with a new array"),
    ("replaces its gradient list", r"replaced grads\[0\] \(s\) with a new array \(or changed the list\)"),
    ("replaces its parameter", r"replaced params\[0\] \(s\) with a new array"),
    ("misshapen input gradient", r"node 'gain1' \(test_graph.Gain\) returned a gradient of shape \(4,\) for its "
                                 r"input 'affine1' of shape \(4, 3\)"),
])
def test_the_first_backward_catches_a_node_that_breaks_the_protocol(mistake: str, message: str) -> None:
    model = gain_model(mistake)
    model.flatten_params()
    model.forward(np.ones((4, 2)))
    with pytest.raises(NodeProtocolError, match=message):
        model.backward(np.ones((4, 3)))


def test_the_first_forward_catches_a_node_that_writes_into_its_input_and_later_ones_pay_nothing() -> None:
    model = gain_model("writes into its input")
    with pytest.raises(NodeProtocolError, match=r"node 'gain1' \(test_graph.Gain\) wrote into its input 'affine1' in "
                                                r"forward: a node never changes the arrays it is given"):
        model.forward(np.ones((4, 2)))
    model = gain_model()
    model.forward(np.ones((4, 2)))
    copied = []
    with pytest.MonkeyPatch.context() as patch:  # a model that only predicts walks the first pass's way every time
        patch.setattr(graph_module, "is_array", lambda x: copied.append(x) or isinstance(x, np.ndarray))
        model.forward(np.ones((4, 2)))
    assert not copied
    model.backward(np.ones((4, 3)))
    assert model._protocol_checked  # the fast walk from here on, which copies nothing


def test_a_node_that_writes_into_its_input_in_training_only_is_caught_after_an_eval_forward() -> None:
    """A model's build runs its first forward in eval mode, which checked nothing that training does."""
    model = gain_model("writes into its input in training")
    model.eval()
    model.forward(np.ones((4, 2)))
    model.train()
    with pytest.raises(NodeProtocolError, match="wrote into its input 'affine1'"):
        model.forward(np.ones((4, 2)))


def test_a_node_that_keeps_the_protocol_passes_and_only_the_first_backward_is_checked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    real_check = graph_module.check_input_gradient
    monkeypatch.setattr(graph_module, "check_input_gradient",
                        lambda name, *args: (checked.append(name), real_check(name, *args)))
    model = gain_model()
    model.need_input_grad = False
    assert model.flatten_params()
    x = np.random.default_rng(1).standard_normal((4, 2))
    for _ in range(3):
        model.forward(x)
        model.backward(np.ones((4, 3)))
    assert checked == ["gain1"]  # affine1 needs no input gradient; later steps take the fast walk
    assert np.shares_memory(model.grads[-1], model.flat_grads)
    check_gradients(model, x)


def test_a_node_may_name_a_parameter_it_does_not_have() -> None:
    rng = np.random.default_rng(0)
    no_bias = Affine(rng.standard_normal((2, 3)), np.zeros(3))
    no_bias.params, no_bias.grads = no_bias.params[:1], no_bias.grads[:1]
    model = Graph.sequential([("affine1", no_bias)])
    assert model.param_names == ["affine1/W"]


class FailsBackward(Node):
    """Broken on purpose: a bug in backward."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise ZeroDivisionError("a bug")


def test_an_exception_in_a_node_is_noted_with_the_nodes_name_and_class() -> None:
    rng = np.random.default_rng(0)
    model = Graph.sequential([("affine1", Affine(rng.standard_normal((2, 3)), np.zeros(3))),
                              ("fails1", FailsBackward())])
    model.forward(np.ones((4, 2)))
    with pytest.raises(ZeroDivisionError, match="a bug") as caught:
        model.backward(np.ones((4, 3)))
    assert caught.value.__notes__ == ["(raised in the backward of node 'fails1' (test_graph.FailsBackward))"]
    assert model.failing_node(caught.value) == "fails1"


def test_a_gradient_of_another_shape_than_the_output_is_refused_on_every_backward():
    model = Graph.sequential([("affine", Affine(np.ones((2, 3)), np.zeros(3))), ("sigmoid", Sigmoid())])
    with pytest.raises(GraphError, match="backward was called before forward"):
        model.backward(np.ones((4, 3)))
    for _ in range(2):  # the first backward checks the nodes; later ones take the fast walk
        model.forward(np.ones((4, 2)))
        with pytest.raises(GraphError, match=r"gradient given to backward has shape \(1, 3\), but the graph's output "
                                             r"has shape \(4, 3\)"):
            model.backward(np.ones((1, 3)))  # numpy would broadcast it into wrong gradients
        model.backward(np.ones((4, 3)))


def test_a_backward_after_a_trace_is_that_traces() -> None:
    model = Graph([GraphNode("h", Affine(np.ones((3, 4)), np.zeros(4)), "x")])
    model.backward(model.forward(np.ones((5, 3))))  # the first backward checks the nodes against the first pass
    model.trace(np.full((2, 3), 7.0))
    model.backward(np.ones((2, 4)))  # the trace's output shape, not the forward's
    assert np.array_equal(model.grads[0], np.full((3, 4), 14.0))


@pytest.mark.parametrize("passes", [0, 2])
def test_a_backward_after_a_failed_forward_is_refused(passes: int) -> None:
    """The nodes before the failing one hold the failed pass's inputs and the others the last good pass's: a
    backward would mix the two into gradients that look right."""
    model = Graph([GraphNode("h", Affine(np.ones((3, 4)), np.zeros(4)), "x1"), GraphNode("s", Add(), ("h", "x2"))],
                  inputs=["x1", "x2"])
    for _ in range(passes):
        model.backward(model.forward(np.ones((5, 3)), np.ones((5, 4))))
    for failing in (model.forward, model.trace):
        with pytest.raises(ValueError):
            failing(np.ones((5, 3)), np.ones((5, 7)))
        with pytest.raises(GraphError, match="backward was called after a forward that failed"):
            model.backward(np.ones((5, 4)))
    model.forward(np.ones((5, 3)), np.ones((5, 4)))
    model.backward(np.ones((5, 4)))
    assert np.array_equal(model.grads[0], np.full((3, 4), 5.0))


class NoSuperInit(Node):
    def __init__(self) -> None:  # forgets super().__init__()
        self.factor = 2.0

    def forward(self, x):
        return x * self.factor

    def backward(self, dout):
        return dout * self.factor


class Arrays(Node):
    def __init__(self, param, grad) -> None:
        super().__init__()
        self.params, self.grads = [param], [grad]


@pytest.mark.parametrize(("node", "match"), [
    (NoSuperInit(), r"has no params and grads lists; does its __init__ call super\(\).__init__\(\)\?"),
    (Arrays(np.full(3, 1), np.zeros(3, dtype=int)), r"params\[0\] is int64, not a floating-point array"),
    (Arrays([1.0, 2.0], [0.0, 0.0]), r"params\[0\] is a list, not a floating-point array"),
    (Arrays(np.ones(3), np.zeros(3, np.float32)), r"grads\[0\] is float32 but params\[0\] is float64"),
], ids=["no-super-init", "int-params", "list-params", "grad-dtype"])
def test_a_node_breaking_the_array_protocol_is_named_when_the_graph_is_made(node, match):
    with pytest.raises(NodeProtocolError, match=r"node 'bad' \(test_graph\.\w+\)") as caught:
        Graph.sequential([("bad", node)])
    assert caught.match(match)


class ForgetsItsBias(Node):
    """Writes dW but never db, as a plugin that forgot a line would: its bias would never move."""

    param_names = ("W", "b")

    def __init__(self) -> None:
        super().__init__()
        self.params = [np.ones((2, 3)), np.zeros(3)]
        self.grads = [np.zeros((2, 3)), np.zeros(3)]

    def forward(self, x):
        self.x = x
        return x @ self.params[0] + self.params[1]

    def backward(self, dout):
        self.grads[0][...] = self.x.T @ dout
        return dout @ self.params[0].T


class AddsToItsBias(ForgetsItsBias):
    def backward(self, dout):
        self.grads[1] += dout.sum(axis=0)
        return super().backward(dout)


@pytest.mark.parametrize("node", [ForgetsItsBias(), AddsToItsBias()], ids=["never-written", "added-to"])
def test_a_parameter_gradient_left_unwritten_is_named_at_the_first_backward(node):
    model = Graph.sequential([("layer", node), ("sigmoid", Sigmoid())])
    model.forward(np.ones((4, 2)))
    with pytest.raises(NodeProtocolError, match=r"node 'layer' \(test_graph\.\w+\) did not write grads\[1\] \(b\) "
                                                r"in its backward, or added to it instead of writing over it"):
        model.backward(np.ones((4, 3)))


class WrapsItsGradient(Node):
    def forward(self, x):
        return 2 * x

    def backward(self, dout):
        return (2 * dout,)


def test_one_inputs_gradient_returned_in_a_tuple_is_named_as_such():
    model = Graph.sequential([("double", WrapsItsGradient()), ("sigmoid", Sigmoid())])
    model.need_input_grad = True
    model.forward(np.ones((4, 5)))
    with pytest.raises(NodeProtocolError, match=r"node 'double' \(test_graph.WrapsItsGradient\) returned a tuple of 1 "
                                                r"as the gradient of its input 'x'; a node with one input"):
        model.backward(np.ones((4, 5)))


class Pruned(Node):
    """``y = x (W * mask)``: writes only the kept weights' gradients, the others staying at their first 0."""

    param_names = ("W",)

    def __init__(self) -> None:
        super().__init__()
        self.params, self.grads = [np.ones((2, 3))], [np.zeros((2, 3))]
        self.mask = np.array([[True, False, True], [False, True, True]])

    def forward(self, x):
        self.x = x
        return x @ (self.params[0] * self.mask)

    def backward(self, dout):
        self.grads[0][self.mask] = (self.x.T @ dout)[self.mask]
        return dout @ (self.params[0] * self.mask).T


def test_a_gradient_written_in_part_keeps_the_rest_as_it_was_and_no_nan():
    model = Graph.sequential([("pruned", Pruned()), ("sigmoid", Sigmoid())])
    x = np.arange(8.0).reshape(4, 2)
    model.forward(x)
    model.backward(np.ones((4, 3)))
    out = 1 / (1 + np.exp(-x @ (np.ones((2, 3)) * model.nodes["pruned"].mask)))
    expected = np.where(model.nodes["pruned"].mask, x.T @ (out * (1 - out)), 0.0)
    np.testing.assert_allclose(model.grads[0], expected)


def test_a_refused_first_backward_leaves_no_nan_behind():
    model = Graph.sequential([("layer", ForgetsItsBias()), ("sigmoid", Sigmoid())])
    model.forward(np.ones((4, 2)))
    with pytest.raises(NodeProtocolError):
        model.backward(np.ones((4, 3)))
    assert not any(np.isnan(grad).any() for grad in model.grads)


class SquareRoot(Node):
    def forward(self, x):
        self.out = np.sqrt(x)
        return self.out

    def backward(self, dout):
        return dout / (2 * self.out)


def test_a_nan_the_first_backward_computes_is_kept_for_the_non_finite_check_not_blamed_on_a_node():
    model = Graph.sequential([("affine", Affine(np.ones((2, 3)), np.zeros(3))), ("sqrt", SquareRoot())])
    with np.errstate(invalid="ignore", divide="ignore"):
        model.forward(np.array([[1.0, 2.0], [-5.0, 1.0]]))  # the second row's sqrt is NaN
        model.backward(np.ones((2, 3)))
    assert np.isnan(model.grads[0]).all()  # NaN through the whole weight gradient, as the data made it


class Lookup(Node):
    differentiable_input = False
    param_names = ("W",)

    def __init__(self) -> None:
        super().__init__()
        self.params, self.grads = [np.ones((5, 2))], [np.zeros((5, 2))]

    def forward(self, x):
        self.index = x.astype(np.intp)
        return self.params[0][self.index].reshape(len(x), -1)

    def backward(self, dout):
        self.grads[0][...] = 0
        np.add.at(self.grads[0], self.index, dout.reshape(*self.index.shape, -1))


def test_an_index_reader_behind_a_trained_node_is_refused_when_the_graph_is_made():
    with pytest.raises(GraphError, match=r"node 'lookup' \(test_graph.Lookup\) reads indices .* but it reads "
                                         r"'affine', behind which are parameters that would need a gradient"):
        Graph.sequential([("affine", Affine(np.ones((2, 2)), np.zeros(2))), ("lookup", Lookup())])
    first = Graph.sequential([("lookup", Lookup()), ("affine", Affine(np.ones((2, 2)), np.zeros(2)))])
    first.need_input_grad = True
    assert first.nodes["lookup"].need_dx is False and first.differentiable_input is False
    picked = Graph.sequential([("pick", Sigmoid()), ("lookup", Lookup()), ("affine", Affine(np.ones((4, 2)),
                                                                                             np.zeros(2)))])
    picked.need_input_grad = True  # as a gradient check sets it: no parameter lies before the indices
    assert picked.nodes["lookup"].need_dx is False and picked.differentiable_input is False
    picked.forward(np.array([[0.0, 1.0], [2.0, 3.0]]))
    assert picked.backward(np.ones((2, 2))) is None  # no gradient reaches the input: none is asked of "pick"


class EmbeddingDot(Node):
    """The book's word2vec negative-sampling dot (ch. 4): rows of W picked by ``idx``, each dotted with a row of ``h``."""

    differentiable_input = (True, False)
    param_names = ("W",)

    def __init__(self, W: np.ndarray) -> None:
        super().__init__()
        self.params, self.grads = [W], [np.zeros_like(W)]

    def forward(self, h, idx):
        self.h, self.idx = h, idx.astype(np.intp)
        return np.sum(self.params[0][self.idx] * h, axis=1)

    def backward(self, dout):
        dout = dout.reshape(-1, 1)
        self.grads[0][...] = 0
        np.add.at(self.grads[0], self.idx, dout * self.h)
        return (dout * self.params[0][self.idx] if self.need_dx else None), None


class Floor(Node):
    """Indices computed from the input, with no parameter: a gradient never needs to pass through it."""

    def forward(self, x):
        return np.floor(x[:, 0] * 4.99)

    def backward(self, dout):
        raise AssertionError("Floor feeds only indices: it is never run backward")


def test_a_node_with_an_index_input_beside_a_float_one_gets_a_gradient_for_the_float_one_only():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((5, 3))
    h, idx = rng.standard_normal((4, 3)), np.array([0.0, 3.0, 3.0, 1.0])
    result = check_gradients(EmbeddingDot(W.copy()), h, idx)  # idx held as floats, as a run's data is
    assert sorted(result.errors) == ["W", "input0"]
    graph = Graph([GraphNode("h", Affine(rng.standard_normal((2, 3)), np.zeros(3)), ("x",)),
                   GraphNode("idx", Floor(), ("x",)),
                   GraphNode("dot", EmbeddingDot(W.copy()), ("h", "idx"))])
    graph.need_input_grad = True
    assert graph.nodes["dot"].need_dx is True and graph.differentiable_input is True
    x = rng.random((4, 2))
    check_gradients(graph, x)
    graph.forward(x)
    assert graph.backward(np.ones(4)).shape == (4, 2)


class Misdeclared(EmbeddingDot):
    differentiable_input = (True, False, False)


def test_per_input_flags_reach_a_graph_of_two_inputs_and_are_checked_against_the_inputs_read():
    rng = np.random.default_rng(1)
    graph = Graph([GraphNode("dot", EmbeddingDot(rng.standard_normal((5, 3))), ("h", "idx"))], inputs=["h", "idx"])
    assert graph.differentiable_input == (True, False)
    check_gradients(graph, rng.standard_normal((4, 3)), np.array([4.0, 0.0, 2.0, 2.0]))

    with pytest.raises(GraphError, match=r"node 'dot' \(test_graph.Misdeclared\): Misdeclared.differentiable_input "
                                         r"is \(True, False, False\), but the node reads 2 input\(s\): give True or "
                                         r"False, or a tuple of 2 of them, one per input"):
        Graph([GraphNode("dot", Misdeclared(np.ones((5, 3))), ("h", "idx"))], inputs=["h", "idx"])


class Undeclared(EmbeddingDot):
    """The book's EmbeddingDot without the flag: it returns None for ``idx``, which the graph would send one."""

    differentiable_input = True


class IntFlags(EmbeddingDot):
    differentiable_input = (1, 0)


def test_a_node_that_returns_no_gradient_for_an_input_that_needs_one_is_named_with_the_flag_to_set():
    rng = np.random.default_rng(2)
    graph = Graph([GraphNode("dot", Undeclared(rng.standard_normal((5, 3))), ("h", "idx"))], inputs=["h", "idx"])
    graph.need_input_grad = True
    graph.forward(rng.standard_normal((4, 3)), np.array([4.0, 0.0, 2.0, 2.0]))
    with pytest.raises(NNFrameError, match=r"node 'dot' \(test_graph.Undeclared\) returned no gradient \(None\) for "
                                           r"its input 'idx', which needs one .*differentiable_input = "
                                           r"\(True, False\)"):
        graph.backward(np.ones(4))
    result = check_gradients(Undeclared(rng.standard_normal((5, 3))), rng.standard_normal((4, 3)),
                             np.array([4.0, 0.0, 2.0, 2.0]), raise_on_failure=False)
    assert any("no gradient for input1" in problem and "differentiable_input = (True, False)" in problem
               for problem in result.problems), result.problems
    with pytest.raises(GraphError, match=r"IntFlags.differentiable_input is \(1, 0\): its flags must be True or "
                                         "False"):
        Graph([GraphNode("dot", IntFlags(np.ones((5, 3))), ("h", "idx"))], inputs=["h", "idx"])


class BareReturn(EmbeddingDot):
    """The book's EmbeddingDot.backward returns only dh, which a graph refuses for a node of two inputs."""

    def backward(self, dout):
        return super().backward(dout)[0]


def test_check_gradients_refuses_a_bare_gradient_from_a_node_of_two_inputs_as_a_graph_does():
    rng = np.random.default_rng(3)
    result = check_gradients(BareReturn(rng.standard_normal((5, 3))), rng.standard_normal((4, 3)),
                             np.array([4.0, 0.0, 2.0, 2.0]), raise_on_failure=False)
    assert any("BareReturn.backward returned ndarray, but it reads 2 inputs, so it must return a tuple of 2" in p
               for p in result.problems), result.problems


def test_sequential_names_bare_nodes_by_class_and_position():
    rng = np.random.default_rng(3)
    graph = Graph.sequential([random_affine(rng, 2, 3), Tanh(), ("out", random_affine(rng, 3, 2)),
                              random_affine(rng, 2, 2)])
    assert list(graph.nodes) == ["affine1", "tanh1", "out", "affine3"]
    assert graph.param_names[:2] == ["affine1/W", "affine1/b"]


def test_sequential_takes_pairs_as_lists_and_by_its_keyword():
    rng = np.random.default_rng(3)
    graph = Graph.sequential(named_nodes=[["first", random_affine(rng, 2, 3)], ["act", Tanh()]])
    assert list(graph.nodes) == ["first", "act"]


def test_a_model_built_from_a_config_skips_its_first_dx() -> None:
    model = nnframe.prepare_experiment(Path(__file__).parents[1] / "experiments" / "spiral.yaml").model
    assert model.need_input_grad is False
    assert [node.need_dx for node in model.nodes.values()] == [False, True, True]


@pytest.mark.parametrize("thing", [SoftmaxWithLoss(), 3, np.eye(2)])
def test_a_graph_of_something_not_a_node_is_refused_by_name(thing: object) -> None:
    with pytest.raises(GraphError, match=rf"node 'bad' is of type {type(thing).__name__}, not an nnframe.Node.*"
                                         r"a loss stays outside it"):
        Graph([GraphNode("bad", thing, ("x",))])


def test_a_gradient_check_names_a_weight_two_nodes_share() -> None:
    from nnframe.nodes import MatMul

    W = np.random.default_rng(4).standard_normal((3, 3))
    graph = Graph([GraphNode("m1", MatMul(W), ("x",)), GraphNode("m2", MatMul(W), ("x",)),
                   GraphNode("a", Add(), ("m1", "m2"))])
    with pytest.raises(GradientCheckError, match="m1/W and m2/W are one array.*remove_duplicate"):
        check_gradients(graph, np.random.default_rng(5).standard_normal((4, 3)))


def test_a_wider_input_than_the_parameters_is_warned_of_once_it_is_promoted() -> None:
    rng = np.random.default_rng(6)
    net = Graph.sequential([Affine(rng.standard_normal((2, 3)).astype(np.float32), np.zeros(3, np.float32))])
    with pytest.warns(UserWarning, match=r"graph input 'x' is float64, while the parameters are float32.*"
                                         r"x\.astype\(np\.float32\)"):
        assert net.forward(np.ones((4, 2))).dtype == np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.forward(np.ones((4, 2), np.float32))
        Graph.sequential([Affine(np.ones((2, 3)), np.zeros(3))]).forward(np.ones((4, 2), np.float32))

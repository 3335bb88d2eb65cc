"""Tests for nnframe.flat_params: a model's parameters and gradients in one buffer each, and who may move."""

from __future__ import annotations

import collections
import functools

import numpy as np
import pytest

from nnframe import flat_params
from nnframe.flat_params import buffer_of, flatten
from nnframe.graph import Graph
from nnframe.node import Node
from nnframe.nodes import Affine, Sigmoid
from nnframe.optimizers import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop

RULES = [SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam]


def affines(dtype: type = np.float64, seed: int = 0) -> list[Affine]:
    rng = np.random.default_rng(seed)
    return [Affine(rng.standard_normal((2, 5)).astype(dtype), rng.standard_normal(5).astype(dtype)),
            Affine(rng.standard_normal((5, 3)).astype(dtype), rng.standard_normal(3).astype(dtype))]


def model(nodes: list[Node] | None = None) -> Graph:
    first, second = nodes or affines()
    return Graph.sequential([("affine1", first), ("sigmoid1", Sigmoid()), ("affine2", second)])


def test_flatten_keeps_the_values_and_makes_every_array_a_view_of_one_buffer() -> None:
    nodes = affines()
    before = [p.copy() for node in nodes for p in node.params]
    graph = model(nodes)
    assert graph.flatten_params()
    assert graph.flat_params.shape == (2 * 5 + 5 + 5 * 3 + 3,)
    assert [p.base is graph.flat_params for p in graph.params] == [True] * 4
    assert [g.base is graph.flat_grads for g in graph.grads] == [True] * 4
    assert all(np.array_equal(a, b) for a, b in zip(graph.params, before))
    assert graph.params[0] is nodes[0].params[0]
    assert buffer_of(graph.params) is graph.flat_params
    assert buffer_of(graph.grads) is graph.flat_grads


def test_the_buffers_are_made_by_nnframe_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one place that knows how arrays are created (and later on which device) makes them."""
    from types import SimpleNamespace

    from nnframe import arrays

    made: list[tuple] = []
    counting = SimpleNamespace(zeros=lambda shape, dtype: made.append(("zeros", shape)) or np.zeros(shape, dtype),
                               zeros_like=lambda a: made.append(("zeros_like", a.shape)) or np.zeros_like(a))
    nodes = affines()
    monkeypatch.setattr(arrays, "xp", counting)
    graph = model(nodes)
    assert graph.flatten_params()
    assert made[-2:] == [("zeros", (33,)), ("zeros_like", (33,))]


def test_gradients_written_by_the_nodes_land_in_the_buffer() -> None:
    graph = model()
    graph.flatten_params()
    x = np.random.default_rng(1).standard_normal((4, 2))
    graph.backward(np.ones_like(graph.forward(x)))
    assert np.array_equal(graph.flat_grads, np.concatenate([g.ravel() for g in graph.grads]))
    assert np.any(graph.flat_grads != 0)


def test_a_built_model_is_flattened() -> None:
    from tests.test_train import EXPERIMENTS, make_trainer

    trainer, _ = make_trainer(EXPERIMENTS / "spiral.yaml")
    assert trainer.model.flat_params is not None
    assert buffer_of(trainer.model.params) is trainer.model.flat_params


class KeepsW(Node):
    """A plugin-style node that also keeps its weight as ``self.W``."""

    def __init__(self, W: np.ndarray) -> None:
        super().__init__()
        self.W = W
        self.params, self.grads = [W], [np.zeros_like(W)]


class KeepsTranspose(KeepsW):
    def __init__(self, W: np.ndarray) -> None:
        super().__init__(W)
        del self.W
        self.cache = {"WT": W.T}


class KeepsPacked(Node):
    """Its weight and bias are slices of one array, ``theta``, which its forward reads."""

    def __init__(self) -> None:
        super().__init__()
        self.theta = np.ones(6)
        self.params, self.grads = [self.theta[:4].reshape(2, 2), self.theta[4:]], [np.zeros((2, 2)), np.zeros(2)]


class KeepsTransposeOfAView(KeepsW):
    """Its weight is itself a view (``reshape`` of a 1-D draw), so the transpose's base is the draw, not ``W``."""

    def __init__(self) -> None:
        super().__init__(np.ones(4).reshape(2, 2))
        del self.W
        self.WT = self.params[0].T


class TwoLayers(Node):
    """The book's TwoLayerNet as one node: its child layers, in a list of pairs, keep the arrays it lists."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs = [(Affine(np.ones((2, 3)), np.zeros(3)), Sigmoid()), (Affine(np.ones((3, 2)), np.zeros(2)), None)]
        for layer, _ in self.pairs:
            self.params += layer.params
            self.grads += layer.grads


class Holder:
    def __init__(self, inner: object) -> None:
        self.inner = inner


@pytest.mark.parametrize("make", [
    pytest.param(lambda: [TwoLayers(), *affines()], id="child layers in a list of pairs"),
    pytest.param(lambda: [KeepsW(np.ones((2, 2))), *affines()], id="a node keeps its weight as self.W"),
    pytest.param(lambda: [KeepsTranspose(np.ones((2, 2))), *affines()], id="a node keeps a view in a dict"),
    pytest.param(lambda: [KeepsPacked(), *affines()], id="a node keeps the array its parameters are slices of"),
    pytest.param(lambda: [KeepsTransposeOfAView(), *affines()], id="a node keeps a view of a parameter that is a view"),
    pytest.param(lambda: [*affines(np.float32), *affines(np.float64)], id="two dtypes"),
    pytest.param(lambda: [Affine(np.ones((2, 2), order="F"), np.ones(2))], id="a parameter in Fortran order"),
    pytest.param(lambda: (lambda shared: [Affine(shared, np.ones(2)), Affine(shared, np.ones(2))])(np.ones((2, 2))),
                 id="one array in two nodes"),
    pytest.param(lambda: [model()], id="a nested graph"),
    pytest.param(lambda: [Sigmoid()], id="no parameters"),
])
def test_nothing_moves_when_some_array_cannot(make) -> None:
    nodes = make()
    arrays = [a for node in nodes for a in (*node.params, *node.grads)]
    assert flatten(nodes) is None
    assert all(a is b for a, b in zip([a for node in nodes for a in (*node.params, *node.grads)], arrays))


def test_buffer_of_accepts_only_arrays_that_tile_one_buffer_in_order() -> None:
    buffer = np.arange(10.0)
    a, b, c = buffer[:4].reshape(2, 2), buffer[4:7], buffer[7:]
    assert buffer_of([a, b, c]) is buffer
    assert buffer_of([a, c, b]) is None  # out of order
    assert buffer_of([a, b]) is None  # leaves the end uncovered
    assert buffer_of([b, c]) is None  # leaves the start uncovered
    assert buffer_of([a, buffer[5:7], c]) is None  # a gap
    assert buffer_of([a, b, np.zeros(3)]) is None  # another base
    assert buffer_of([buffer[::2]]) is None  # not contiguous
    assert buffer_of([]) is None


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("cls", RULES)
def test_the_one_buffer_update_gives_the_values_of_the_update_parameter_by_parameter(cls, weight_decay) -> None:
    flat, separate = model(), model()
    assert flat.flatten_params()
    flat_rule, separate_rule = cls(lr=0.01, weight_decay=weight_decay), cls(lr=0.01, weight_decay=weight_decay)
    flat_rule.bind(flat.param_names, flat.params)
    separate_rule.bind(separate.param_names, separate.params)
    assert flat_rule._flat is not None and separate_rule._flat is None
    rng = np.random.default_rng(2)
    for _ in range(3):
        x = rng.standard_normal((4, 2))
        for graph, rule in ((flat, flat_rule), (separate, separate_rule)):
            graph.backward(np.ones((4, 3)) * graph.forward(x))
            rule.update(graph.params, graph.grads)
    assert all(np.array_equal(a, b) for a, b in zip(flat.params, separate.params))
    for name in flat.param_names:
        for slot in cls.slots:
            assert np.array_equal(flat_rule.state[name][slot], separate_rule.state[name][slot])
            assert flat_rule.state[name][slot].base is not None


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_a_large_one_buffer_update_in_blocks_and_threads_matches(monkeypatch, threads) -> None:
    import nnframe.optimizer_base as optimizer_base

    monkeypatch.setattr(optimizer_base, "BLOCK", 4)
    monkeypatch.setenv("NNFRAME_NUM_THREADS", threads)
    flat, separate = model(), model()
    flat.flatten_params()
    grads = [np.random.default_rng(3).standard_normal(g.shape) for g in flat.grads]
    rules = []
    for graph in (flat, separate):
        for mine, grad in zip(graph.grads, grads):
            mine[...] = grad
        rules.append(Adam(lr=0.1))
        for _ in range(2):
            rules[-1].update(graph.params, graph.grads)
    assert rules[0]._flat is not None and rules[0]._flat.in_blocks
    assert all(np.array_equal(a, b) for a, b in zip(flat.params, separate.params))


def test_other_gradient_arrays_take_the_path_parameter_by_parameter() -> None:
    """The one-buffer path is taken only for gradients that tile a buffer; copies still update correctly."""
    flat, separate = model(), model()
    flat.flatten_params()
    grads = [np.full(p.shape, 0.5) for p in flat.params]
    for graph in (flat, separate):
        SGD(lr=0.1).update(graph.params, grads)
    assert all(np.array_equal(a, b) for a, b in zip(flat.params, separate.params))


@pytest.mark.parametrize("optimizer", [{"type": "sgd", "lr": 0.5},
                                       {"type": "adam", "lr": 0.01, "weight_decay": 0.01}])
def test_training_on_one_buffer_matches_training_array_by_array(tmp_path, monkeypatch, optimizer) -> None:
    """The same run twice, once with the model left unflattened: the losses and parameters agree exactly."""
    from tests.test_train import TINY, make_trainer, write_config

    path = write_config(tmp_path, {**TINY, "optimizer": optimizer})
    flat, flat_events = make_trainer(path)
    monkeypatch.setattr(Graph, "flatten_params", lambda self: False)
    separate, separate_events = make_trainer(path)
    assert flat.model.flat_params is not None and separate.model.flat_params is None
    flat.fit()
    separate.fit()
    assert [m.loss for m in flat_events.steps] == [m.loss for m in separate_events.steps]
    assert all(np.array_equal(a, b) for a, b in zip(flat.model.params, separate.model.params))


def test_stored_grads_are_the_one_buffer_once_flattened_and_the_arrays_before() -> None:
    graph = model()
    assert graph.stored_grads is graph.grads
    graph.flatten_params()
    assert len(graph.stored_grads) == 1 and graph.stored_grads[0] is graph.flat_grads


def test_an_array_held_deeper_than_any_fixed_depth_is_found() -> None:
    node = KeepsW(np.ones((2, 2)))
    del node.W
    node.cache = Holder({"layers": [(Holder(Holder([node.params[0]])),)]})
    assert flatten([node, *affines()]) is None
    del node.cache
    assert flatten([node, *affines()]) is not None


def test_a_node_holding_more_than_the_scan_can_search_is_not_moved(monkeypatch) -> None:
    node = KeepsW(np.ones((2, 2)))
    del node.W
    node.tree = [[Holder(word)] for word in range(100)]  # no parameter, but more than the scan may search
    monkeypatch.setattr(flat_params, "SCAN_LIMIT", 50)
    assert flatten([node]) is None
    monkeypatch.setattr(flat_params, "SCAN_LIMIT", 500)
    assert flatten([node]) is not None


def test_numbers_and_words_do_not_count_against_the_scan(monkeypatch) -> None:
    node = KeepsW(np.ones((2, 2)))
    del node.W
    node.vocabulary = [(f"w{i}", i) for i in range(1000)]
    monkeypatch.setattr(flat_params, "SCAN_LIMIT", 50)
    assert flatten([node]) is not None


class Slotted:
    __slots__ = ("kept",)

    def __init__(self, kept: object) -> None:
        self.kept = kept


@pytest.mark.parametrize("keep", [
    pytest.param(lambda W: collections.deque([W]), id="a deque"),
    pytest.param(lambda W: Slotted(W), id="an object with __slots__"),
    pytest.param(lambda W: np.array([W, None], dtype=object), id="an object array"),
    pytest.param(lambda W: (lambda x: x @ W), id="a closure"),
    pytest.param(lambda W: functools.partial(np.matmul, W), id="a partial"),
])
def test_a_weight_kept_where_no_attribute_shows_it_is_found(keep) -> None:
    node = KeepsW(np.ones((2, 2)))
    node.W = keep(node.params[0])
    assert flatten([node, *affines()]) is None


class Dispatches(KeepsW):
    """Keeps a bound method of its own, which leads back to the node and its lists: still movable."""

    def __init__(self, W: np.ndarray) -> None:
        super().__init__(W)
        del self.W
        self.impl = self.forward

    def forward(self, x):
        return x @ self.params[0]


def test_a_bound_method_of_the_node_itself_does_not_keep_it_from_moving() -> None:
    assert flatten([Dispatches(np.ones((2, 2))), *affines()]) is not None


def test_a_weight_held_in_a_dict_key_is_found() -> None:
    node = KeepsW(np.ones((2, 2)))
    node.W = {Holder(node.params[0]): 0}
    assert flatten([node, *affines()]) is None


def _train_a_step(graph: Graph, optimizer: Adam, x: np.ndarray) -> float:
    """One update on ``x``; returns the gradients' norm as the trainer reads it, over ``stored_grads``."""
    from nnframe.gradients import global_norm

    graph.backward(np.ones_like(graph.forward(x)))
    norm = global_norm(graph.stored_grads)
    optimizer.update(graph.params, graph.grads)
    return norm


def test_a_deep_copy_of_a_model_keeps_its_arrays_in_its_own_copies_of_the_buffers() -> None:
    """numpy copies a view as an array of its own: the copy's nodes wrote gradients its buffer never saw."""
    import copy

    graph = model()
    graph.flatten_params()
    clone = copy.deepcopy(graph)
    assert [p.base is clone.flat_params for p in clone.params] == [True] * 4
    assert [g.base is clone.flat_grads for g in clone.grads] == [True] * 4
    assert clone.flat_params is not graph.flat_params
    assert np.array_equal(clone.flat_params, graph.flat_params)
    x = np.random.default_rng(2).standard_normal((4, 2))
    clone.backward(np.ones_like(clone.forward(x)))
    assert np.array_equal(clone.flat_grads, np.concatenate([g.ravel() for g in clone.grads]))
    assert not np.any(graph.flat_grads)


def _large_affines() -> list[Affine]:
    """More than two of the optimizer's blocks in the first weight, so that it is updated in blocks."""
    rng = np.random.default_rng(4)
    return [Affine(rng.standard_normal((700, 400)) * 0.01, np.zeros(400)),
            Affine(rng.standard_normal((400, 3)) * 0.01, np.zeros(3))]


@pytest.mark.parametrize("size", ["small", "in blocks"])
@pytest.mark.parametrize("order", ["model first", "optimizer first", "pickled"])
def test_a_copied_model_and_optimizer_train_as_the_originals(order: str, size: str) -> None:
    """Whichever reaches the arrays first, the copies take the same steps, and the norm over ``stored_grads`` is
    the norm of what the nodes wrote. A deep copy keeps the buffers; pickle, which copies every view alone, drops
    them. Before, a copied optimizer went on updating its copy of the old buffer, which no node read, or the
    copies of its blocks' views."""
    import copy
    import pickle

    graph, optimizer = model(_large_affines() if size == "in blocks" else None), Adam(lr=0.1)
    graph.flatten_params()
    x = np.random.default_rng(3).standard_normal((4, graph.params[0].shape[0]))
    _train_a_step(graph, optimizer, x)
    copies = {"model first": lambda: copy.deepcopy((graph, optimizer)),
              "optimizer first": lambda: copy.deepcopy((optimizer, graph))[::-1],
              "pickled": lambda: pickle.loads(pickle.dumps((graph, optimizer)))}
    clone, clone_optimizer = copies[order]()
    for _ in range(3):
        expected = _train_a_step(graph, optimizer, x)
        assert _train_a_step(clone, clone_optimizer, x) == pytest.approx(expected, rel=1e-12)
        assert expected > 0
    assert all(np.allclose(a, b, rtol=1e-12, atol=0) for a, b in zip(graph.params, clone.params))
    assert (clone.flat_params is not None) == (order != "pickled")

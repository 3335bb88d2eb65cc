"""The checks a model graph passes: unique names, known inputs, no cycle, every node used; nodes that keep the protocol.

Kept apart from :mod:`nnframe.graph`, which runs the graph. The structural
checks run once, when a :class:`~nnframe.graph.Graph` is made; nodes are
ordered here too (Kahn's algorithm), since a cycle is what stops the
ordering. The node-protocol checks run when the graph is made (params, grads
and names agree) and after its first backward (arrays kept, gradients shaped
like their inputs), since a plugin that breaks them would otherwise train
silently wrong: a replaced gradient array is one the optimizer never reads.
"""

from __future__ import annotations

import heapq
import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nnframe.arrays import is_array
from nnframe.errors import GraphError, NodeProtocolError, unknown_name_message

if TYPE_CHECKING:
    from nnframe.graph import GraphNode


def validate_graph(nodes: Sequence[GraphNode], inputs: list[str], output: str) -> None:
    _check_unique(nodes, inputs)
    names = [gn.name for gn in nodes]
    available = [*inputs, *names]
    if output in inputs:
        raise GraphError(f"graph output {output!r} is a graph input; the output must be "
                         f"one of the nodes: {', '.join(names)}")
    if output not in names:
        raise GraphError(unknown_name_message("graph output", output, names))
    for gn in nodes:
        if not gn.inputs:
            raise GraphError(f"node {gn.name!r} has no inputs; list at least one of: "
                             f"{', '.join(available)}")
        for name in gn.inputs:
            if name not in available:
                others = [n for n in available if n != gn.name]
                raise GraphError(f"node {gn.name!r}: "
                                 + unknown_name_message("input", name, others))
        _check_arity(gn)


def _check_unique(nodes: Sequence[GraphNode], inputs: list[str]) -> None:
    seen: dict[str, str] = {}
    for name in inputs:
        if name in seen:
            raise GraphError(f"graph input {name!r} is listed twice")
        seen[name] = "a graph input"
    objects: dict[int, str] = {}
    for gn in nodes:
        if gn.name in seen:
            raise GraphError(f"duplicate name {gn.name!r}: already used by {seen[gn.name]}; "
                             "every node needs its own name")
        seen[gn.name] = "another node"
        if id(gn.node) in objects:
            raise GraphError(f"nodes {objects[id(gn.node)]!r} and {gn.name!r} are the same "
                             "node object; build a separate node for each (a node caches "
                             "its forward values for backward)")
        objects[id(gn.node)] = gn.name


def _check_arity(gn: GraphNode) -> None:
    try:
        signature = inspect.signature(gn.node.forward)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*gn.inputs)
    except TypeError:
        raise GraphError(f"node {gn.name!r} ({type(gn.node).__name__}) cannot take "
                         f"{len(gn.inputs)} input(s) {list(gn.inputs)}: its forward is "
                         f"forward{signature}") from None


def topological_order(nodes: Sequence[GraphNode]) -> list[GraphNode]:
    """Kahn's algorithm; among ready nodes the one listed first goes first, so an
    already ordered list keeps its order."""
    index = {gn.name: k for k, gn in enumerate(nodes)}
    waiting = [len({n for n in gn.inputs if n in index}) for gn in nodes]
    readers: dict[str, list[int]] = {gn.name: [] for gn in nodes}
    for k, gn in enumerate(nodes):
        for name in set(gn.inputs) & readers.keys():
            readers[name].append(k)
    ready = [k for k, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        k = heapq.heappop(ready)
        order.append(nodes[k])
        for reader in readers[nodes[k].name]:
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, reader)
    if len(order) < len(nodes):
        stuck = {gn.name for gn in nodes} - {gn.name for gn in order}
        raise GraphError(f"the model graph has a cycle: {' -> '.join(_find_cycle(nodes, stuck))}; "
                         "a node cannot depend on its own output")
    return order


def _find_cycle(nodes: Sequence[GraphNode], stuck: set[str]) -> list[str]:
    """One cycle among the nodes Kahn's algorithm could not order, in data-flow order."""
    by_name = {gn.name: gn for gn in nodes}
    name = next(gn.name for gn in nodes if gn.name in stuck)
    path: list[str] = []
    while name not in path:
        path.append(name)
        name = next(n for n in by_name[name].inputs if n in stuck)
    cycle = path[path.index(name):][::-1]
    listed = [gn.name for gn in nodes]
    start = min(range(len(cycle)), key=lambda k: listed.index(cycle[k]))
    cycle = cycle[start:] + cycle[:start]
    return [*cycle, cycle[0]]


def check_reaches_output(order: list[GraphNode], inputs: list[str], output: str) -> None:
    reached = {output}
    for gn in reversed(order):
        if gn.name in reached:
            reached.update(gn.inputs)
    dead = [gn.name for gn in order if gn.name not in reached]
    if dead:
        raise GraphError(f"node(s) {', '.join(map(repr, dead))} do not lead to the output "
                         f"{output!r}; feed them into a node on the way to {output!r} "
                         "or remove them")
    unused = [name for name in inputs if name not in reached]
    if unused:
        raise GraphError(f"graph input(s) {', '.join(map(repr, unused))} are not read by any "
                         f"node on the way to the output {output!r}")


# --------------------------------------------------------------------------
# The node protocol
# --------------------------------------------------------------------------


def described(name: str, node: object) -> str:
    """``node 'scale1' (my_plugin.Scale)``: the node and the class, whose module names the plugin."""
    cls = type(node)
    return f"node {name!r} ({cls.__module__}.{cls.__qualname__})"


def check_node_arrays(name: str, node: object) -> None:
    """``params``, ``grads`` and ``param_names`` agree: a gradient and a name for every parameter, shaped alike.

    More names than parameters is allowed: a class may name an optional
    parameter (``("W", "b")`` for a layer built without its bias).
    """
    if not (hasattr(node, "params") and hasattr(node, "grads")):
        raise NodeProtocolError(f"{described(name, node)} has no params and grads lists; does its __init__ call "
                                "super().__init__()?")
    params, grads = node.params, node.grads
    names = getattr(node, "param_names", ())
    if len(grads) != len(params):
        raise NodeProtocolError(f"{described(name, node)} has {len(params)} params but {len(grads)} grads; "
                                "allocate one gradient array per parameter, e.g. self.grads = [zeros_like(W)]")
    if names and len(names) < len(params):
        raise NodeProtocolError(f"{described(name, node)} has {len(params)} params but param_names {tuple(names)}; "
                                "name every parameter, in the order of params")
    for i, (param, grad) in enumerate(zip(params, grads)):
        if np.shape(param) != np.shape(grad):
            raise NodeProtocolError(f"{described(name, node)}: grads[{i}] has shape {np.shape(grad)} but params[{i}] "
                                    f"has {np.shape(param)}; a gradient is shaped like its parameter")
        if not is_array(param) or param.dtype.kind != "f":
            raise NodeProtocolError(f"{described(name, node)}: params[{i}] is {_kind_of(param)}, not a floating-point "
                                    "array, so no update can change it; make it in the model's dtype (ctx.dtype)")
        if not is_array(grad) or grad.dtype != param.dtype:
            raise NodeProtocolError(f"{described(name, node)}: grads[{i}] is {_kind_of(grad)} but params[{i}] is "
                                    f"{param.dtype}; a gradient has its parameter's dtype (zeros_like(W))")


def _kind_of(value: object) -> str:
    return str(value.dtype) if is_array(value) else f"a {type(value).__name__}"


def check_arrays_kept(name: str, node: object, params: tuple, grads: tuple) -> None:
    """The node still holds the very arrays ``params`` and ``grads`` it had before (when its graph was made,
    or before a gradient check's passes)."""
    for kind, then in (("params", params), ("grads", grads)):
        now = getattr(node, kind, [])
        replaced = [i for i, (a, b) in enumerate(zip(now, then)) if a is not b]
        if len(now) != len(then) or replaced:
            i = replaced[0] if replaced else min(len(now), len(then))
            names = getattr(node, "param_names", ()) or ()
            called = f"{kind}[{i}] ({names[i]})" if i < len(names) else f"{kind}[{i}]"
            raise NodeProtocolError(
                f"{described(name, node)} replaced {called} with a new array (or changed the list) instead of "
                f"writing into it: the optimizer, the norms and the checkpoints would not see it. Write in place, "
                f"e.g. self.{kind}[{i}][...] = value")


UNWRITTEN_BITS = {np.dtype(np.float64): (np.uint64, 0x7FF8_DEAD_BEEF_0001),
                  np.dtype(np.float32): (np.uint32, 0x7FDE_AD01)}
"""A quiet NaN no computation makes (numpy's own are ``0x7ff8...0``), kept through ``+=`` and ``*=``: what a
gradient holds where its node did not write it during the first backward."""


def fill_unwritten(grad: np.ndarray) -> None:
    """Fill ``grad`` with the unwritten mark of its dtype; a gradient of another dtype is left as it is."""
    if grad.dtype in UNWRITTEN_BITS:
        unsigned, bits = UNWRITTEN_BITS[grad.dtype]
        grad.view(unsigned).fill(bits)


def unwritten_part(grad: np.ndarray) -> np.ndarray:
    """Where ``grad`` still holds the unwritten mark (nowhere, for a dtype without one)."""
    if grad.dtype not in UNWRITTEN_BITS:
        return np.zeros(grad.shape, dtype=bool)
    unsigned, bits = UNWRITTEN_BITS[grad.dtype]
    return grad.view(unsigned) == bits


def check_gradients_written(name: str, node: Any, index: int) -> None:
    """Raise for ``node``'s gradient ``index``, which the first backward left all unwritten (see
    :func:`fill_unwritten`)."""
    names = getattr(node, "param_names", ()) or ()
    called = f"grads[{index}] ({names[index]})" if index < len(names) else f"grads[{index}]"
    raise NodeProtocolError(f"{described(name, node)} did not write {called} in its backward, or added to it "
                            f"instead of writing over it, so its parameter would never move; write each gradient "
                            f"on every backward, e.g. self.grads[{index}][...] = value (a parameter to keep fixed "
                            "is no parameter: leave it out of params)")


INPUT_WRITTEN = ("a node never changes the arrays it is given, which other nodes keep for their backward; write to "
                 "an array of its own (a node that can compute in place sets can_overwrite and writes only where "
                 "overwrite_input allows it)")


def changed_inputs(inputs: Sequence[object], before: Sequence[object]) -> list[int]:
    """The positions of the arrays of ``inputs`` that differ from ``before``, their copies (a NaN equal to a NaN).

    The value a node reads is kept by its maker and by every other reader
    for their backward, so a write into it makes them differentiate at
    values that are not theirs, which only a wrong result shows.
    """
    return [i for i, (x, old) in enumerate(zip(inputs, before))
            if is_array(old) and not np.array_equal(x, old, equal_nan=old.dtype.kind in "fc")]


def check_inputs_unchanged(name: str, node: object, input_names: Sequence[str], inputs: Sequence[object],
                           before: Sequence[object]) -> None:
    """``node``'s forward left the arrays it was given as they were (``before``, copies of ``inputs``)."""
    written = changed_inputs(inputs, before)
    if written:
        raise NodeProtocolError(f"{described(name, node)} wrote into its input {input_names[written[0]]!r} in "
                                f"forward: {INPUT_WRITTEN}")


def check_kept_apart(name: str, node: object, value: object, what: str, flag: str, writer: str) -> None:
    """``node``, which declares ``flag``, keeps no array that shares elements with ``value``, its ``what``, which
    node ``writer`` is about to write over in place.

    A wrong declaration breaks no shape and raises nothing: the node's
    backward reads the values written over it, and the gradients are wrong.
    """
    where = _holder_of(node, value)
    if where is not None:
        raise NodeProtocolError(f"{described(name, node)} sets {flag}, but keeps its {what} in self.{where}, and "
                                f"node {writer!r} writes over that {what} in place, so this node's backward would "
                                f"read changed values; {flag} is only for a new array a node neither keeps nor "
                                f"returns again: leave {flag} False, or keep a copy")


def _holder_of(node: object, value: object) -> str | None:
    """The attribute of ``node`` (an array, or one in a list, tuple or dict it holds) sharing elements with
    ``value``."""
    if not is_array(value):
        return None
    for attr, held in getattr(node, "__dict__", {}).items():
        if isinstance(held, dict):
            items = held.items()
        elif isinstance(held, (list, tuple)):
            items = enumerate(held)
        else:
            items = [(None, held)]
        for key, array in items:
            if is_array(array) and _overlap(array, value):
                return attr if key is None else f"{attr}[{key!r}]"
    return None


def check_input_gradient(name: str, node: object, input_name: str, dx: object, shape: tuple[int, ...]) -> None:
    """A gradient returned by ``backward`` has the shape of the input it belongs to."""
    if isinstance(dx, (tuple, list)) and (not shape or len(dx) != shape[0]
                                          or any(part is None or np.ndim(part) > 0 for part in dx)):
        raise NodeProtocolError(f"{described(name, node)} returned a {type(dx).__name__} of {len(dx)} as the "
                                f"gradient of its input {input_name!r}; a node with one input returns that "
                                "gradient itself, not in a tuple")
    if np.shape(dx) != shape:
        raise NodeProtocolError(f"{described(name, node)} returned a gradient of shape {np.shape(dx)} for its input "
                                f"{input_name!r} of shape {shape}; backward returns each input's gradient in that "
                                "input's shape")


def first_shared_param(names: Sequence[str], params: Sequence[np.ndarray]) -> tuple[str, str] | None:
    """The first two parameters of different nodes (``"m1/W"``, ``"m2/W"``) that are one array, else ``None``.

    Each holder of a shared weight (the book's tied weights) gets the gradient
    of its own use, where the model's is their sum (the book's
    ``remove_duplicate``). A node's own parameters may be parts of one array
    (column halves of a ``W``).
    """
    seen: list[tuple[str, np.ndarray]] = []
    for name, param in zip(names, params):
        owner = name.rpartition("/")[0]
        for other, earlier in seen:
            if other.rpartition("/")[0] != owner and _overlap(param, earlier):
                return other, name
        seen.append((name, param))
    return None


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays share an element; strides too tangled to decide in a bounded search count as not."""
    try:
        return bool(np.shares_memory(a, b, max_work=10**6))
    except np.exceptions.TooHardError:
        return False

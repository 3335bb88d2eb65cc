"""The model: a directed acyclic graph of named nodes.

Forward runs the nodes in topological order; backward walks the same order in
reverse (the seed's chain rule). A value consumed by several nodes receives the
sum of their upstream gradients (the seed's branch node), so no explicit copy
node is needed.

This module sits below config and plugins: it receives nodes already built.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnframe.arrays import is_array
from nnframe.errors import GraphError, NNFrameError, unknown_name_message
from nnframe.flat_params import buffer_of, flatten, seed_copies
from nnframe.generators import objects_in, searched
from nnframe.graph_checks import (check_arrays_kept, check_gradients_written, check_input_gradient,
                                  check_inputs_unchanged, check_kept_apart, check_node_arrays, check_reaches_output,
                                  described, fill_unwritten, topological_order, unwritten_part, validate_graph)
from nnframe.node import Node, declares, differentiable_inputs, index_input_hint

FAILED_FORWARD = ("failed",)
"""What a graph keeps for its output's shape after a forward (or a trace) that failed: no gradient's shape is
it, so the next backward is checked, and refused."""


@dataclass(frozen=True)
class GraphNode:
    """One node of a graph: its unique ``name``, the built ``node``, and the names it reads.

    ``inputs`` name graph inputs or other nodes; their order is the order of the
    node's ``forward`` arguments.
    """

    name: str
    node: Node
    inputs: tuple[str, ...]

    def __post_init__(self) -> None:
        inputs = (self.inputs,) if isinstance(self.inputs, str) else tuple(self.inputs)
        object.__setattr__(self, "inputs", inputs)
        if not isinstance(self.node, Node):
            raise GraphError(f"node {self.name!r} is of type {type(self.node).__name__}, not an nnframe.Node: a graph "
                             "runs subclasses of nnframe.Node (params, grads, forward, backward); a loss stays "
                             "outside it, loss.forward(graph.forward(x), t)")


class Graph(Node):
    """A model as a DAG of named nodes; itself a :class:`Node`, so it can be checked or nested.

    ``forward(*xs)`` takes one array per graph input and returns the output;
    ``backward(dout)`` returns the gradient of each graph input (a tuple if
    there are several; ``None`` where it was not computed) and leaves every
    parameter gradient written in place in the nodes' own ``grads`` arrays.

    ``params``, ``grads`` and ``param_names`` (``"affine1/W"``) are flat lists of
    the nodes' own arrays in topological order, built once.

    ``need_input_grad`` (default ``True``, as the book's nets return ``dx``)
    decides whether gradients flow back to the graph inputs. A model built from
    a config sets it ``False``: then a node whose inputs carry no gradient (the
    first layer, or anything fed only by parameter-free nodes on the inputs)
    gets ``need_dx = False`` and may skip ``dx``, parameter-free nodes among
    them are not run backward at all, and ``backward`` returns ``None``. The
    flag is set on the node objects themselves, so a node the graph starts
    with skips ``dx`` wherever else it is used too. Gradient checks set it to
    ``True``, so that every node computes ``dx``.

    ``output`` defaults to the last node listed.
    """

    def __init__(
        self,
        nodes: Sequence[GraphNode],
        inputs: Sequence[str] = ("x",),
        output: str | None = None,
        need_input_grad: bool = True,
    ) -> None:
        self.inputs: list[str] = [inputs] if isinstance(inputs, str) else list(inputs)
        if not nodes:
            raise GraphError("a model graph needs at least one node; found none")
        self.output: str = nodes[-1].name if output is None else output
        validate_graph(nodes, self.inputs, self.output)
        order = topological_order(nodes)
        check_reaches_output(order, self.inputs, self.output)
        self._graph_nodes = order
        self.nodes: dict[str, Node] = {gn.name: gn.node for gn in order}
        self._node_names = {id(gn.node): gn.name for gn in order}
        self._slot_names = [*self.inputs, *self.nodes]
        slots = {name: i for i, name in enumerate(self._slot_names)}
        self._arg_slots = [tuple(slots[name] for name in gn.inputs) for gn in order]
        self._output_slot = slots[self.output]
        self._forward_plan = [(gn.node, args) for gn, args in zip(order, self._arg_slots)]
        self._chain = len(self.inputs) == 1 and _is_chain(self._arg_slots, self._output_slot)
        self._input_overwrites, self._dout_overwrites = self._plan_overwrites()
        self.flat_params: np.ndarray | None = None
        self.flat_grads: np.ndarray | None = None
        self._protocol_checked = False
        self._inputs_checked: set[bool] = set()  # the modes (training or not) whose first forward was checked
        self._input_shapes: list[tuple[tuple[int, ...], ...]] | None = None
        self._out_shape: tuple[int, ...] | None = None
        self._collect_params()
        self._record_state()
        self._training = True
        self.training = True
        self.need_input_grad = need_input_grad

    @classmethod
    def sequential(cls, named_nodes: Sequence[tuple[str, Node] | Node], input_name: str = "x",
                   need_input_grad: bool = True) -> Graph:
        """A chain: each node reads the one before it; the first reads ``input_name``.

        ``named_nodes`` are ``(name, node)`` pairs, or nodes, which are named
        by their class and position: ``affine1``, ``sigmoid1``, ``affine2``.
        """
        graph_nodes = []
        previous = input_name
        for name, node in _named(named_nodes):
            graph_nodes.append(GraphNode(name, node, (previous,)))
            previous = name
        return cls(graph_nodes, inputs=[input_name], output=previous, need_input_grad=need_input_grad)

    def _collect_params(self) -> None:
        self.param_names: list[str] = []
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        for name, node in self.nodes.items():
            check_node_arrays(name, node)
        self._kept = [(name, node, tuple(node.params), tuple(node.grads)) for name, node in self.nodes.items()]
        for name, node in self.nodes.items():
            for param_name, param, grad in node.named_params():
                self.param_names.append(f"{name}/{param_name}")
                self.params.append(param)
                self.grads.append(grad)
        self._named_params = list(zip(self.param_names, self.params, self.grads))

    def _record_state(self) -> None:
        """The state as the model is built: the node and attribute holding each array under its name, which it
        keeps, its layout, which it must keep, and which elements are finite.

        The name is the path a search first finds the node at, and a forward
        that sets an attribute (a node that keeps the branch it took, ahead of
        its list of branches) may shorten that path: a name found afresh at
        each checkpoint would then change, and a resume would put one branch's
        statistics into the other.
        """
        self._state_holders = self._find_state()
        found = self._held_state()
        self._state_layout = {name: (array.shape, array.dtype) for name, array in found}
        self._state_finite = {name: np.isfinite(array) for name, array in found
                              if np.issubdtype(array.dtype, np.inexact)}

    def flatten_params(self) -> bool:
        """Move the parameters into one buffer, ``flat_params``, and the gradients into ``flat_grads``.

        The nodes' arrays become views of them (see :mod:`nnframe.flat_params`);
        returns ``False``, and moves nothing, where some array cannot move.
        """
        buffers = flatten(list(self.nodes.values()))
        if buffers is None:
            return False
        self.flat_params, self.flat_grads = buffers
        self._collect_params()
        return True

    def __deepcopy__(self, memo: dict[int, Any]) -> Graph:
        """A copy whose arrays tile copies of ``flat_params`` and ``flat_grads`` as the original's tile them."""
        for buffer, views in ((self.flat_params, self.params), (self.flat_grads, self.grads)):
            if buffer is not None:
                seed_copies(memo, buffer, views)
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        clone.__setstate__(copy.deepcopy(self.__dict__, memo))
        return clone

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Where its arrays no longer tile its buffers, an unpickled or copied graph drops them.

        pickle, and a deepcopy that reached the arrays before the graph, give
        every view an array of its own; work over all gradients at once (the
        norm, clipping) then runs array by array, and so still sees what the
        nodes write.
        """
        self.__dict__.update(state)
        if self.flat_params is not None and (buffer_of(self.params) is not self.flat_params
                                             or buffer_of(self.grads) is not self.flat_grads):
            self.flat_params = self.flat_grads = None

    @property
    def stored_grads(self) -> list[np.ndarray]:
        """The gradients as they are stored: ``[flat_grads]`` after :meth:`flatten_params`, else ``grads``.

        For work over all of them at once (a norm, clipping), which then takes one call.
        """
        return [self.flat_grads] if self.flat_grads is not None else self.grads

    def named_params(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """``(name, param, grad)`` for every parameter, e.g. ``("affine1/W", W, dW)``."""
        return self._named_params

    def named_state(self) -> list[tuple[str, np.ndarray]]:
        """``(name, array)`` for every node's state (see :attr:`Node.state_names`), e.g. ``("norm1/mean", mean)``,
        and for the nodes a node is made of, ``("block1:inner.nodes['norm']/mean", mean)``.

        Each array must keep the shape and dtype it had when the model was
        built: a checkpoint's state goes back into the arrays of a model built
        anew, and a node that rebinds its state to another dtype or shape (a
        float64 mean in a float32 model, a carried batch) could not be resumed
        as it trained.
        """
        self._check_state_holders()
        found = self._held_state()
        for name, array in found:
            built = self._state_layout[name]
            if (array.shape, array.dtype) != built:
                raise GraphError(f"state {name!r} is now {array.dtype} of shape {array.shape}, but was {built[1]} "
                                 f"of shape {built[0]} when the model was built; a node writes into its state in "
                                 "place (self.mean[...] = ...), and keeps its size whatever the batch, so that a "
                                 "checkpoint of it can be put back")
        return found

    def nonfinite_state(self, state: list[tuple[str, np.ndarray]] | None = None) -> str | None:
        """The first state holding a NaN or an infinity where it held a number when the model was built (a
        running variance blown up), else ``None``: what it started with that is not finite (a running maximum
        at -inf, a NaN for "not seen yet") may stay so. ``state`` is :meth:`named_state`, where already found."""
        for name, array in self.named_state() if state is None else state:
            finite_then = self._state_finite.get(name)
            if finite_then is None or finite_then.shape != array.shape:
                continue
            if (finite_then & ~np.isfinite(array)).any():
                return name
        return None

    def _held_state(self) -> list[tuple[str, np.ndarray]]:
        """Each state under the name it was built with, as its node holds it now."""
        return [(name, getattr(node, attribute)) for name, node, attribute in self._state_holders]

    def _check_state_holders(self) -> None:
        """Refuse state that a node made after the build, or that the model no longer reaches: a checkpoint's
        state is put back into the arrays the built model holds, before the first step."""
        built = {(id(node), attribute): name for name, node, attribute in self._state_holders}
        now = {(id(node), attribute): name for name, node, attribute in self._find_state()}
        appeared = [name for key, name in now.items() if key not in built]
        if appeared:
            raise GraphError(f"state {appeared[0]!r} appeared after the model was built (a node made in a forward?); "
                             "a node makes the nodes it is made of, and their state, in its __init__, so that a "
                             "checkpoint's state can be put back into them before the first step")
        gone = [name for key, name in built.items() if key not in now]
        if gone:
            raise GraphError(f"state {gone[0]!r} is no longer held by the model (a forward dropped or replaced "
                             "the node that held it?); a node keeps the nodes it is made of, so that a checkpoint's "
                             "state can be put back into them")

    def _find_state(self) -> list[tuple[str, Node, str]]:
        """``(name, node, attribute)`` for every state, named by the path a search finds its node at."""
        seen = searched(self, *self.nodes.values())
        found = []
        for name, node in self.nodes.items():  # each node's own state_names: the search finds those inside
            found += [(f"{name}/{part}", node, part) for part, _ in Node.named_state(node)]
            for path, inner in objects_in(node, Node, seen):
                found += [(f"{name}:{path}/{part}", inner, part) for part, _ in Node.named_state(inner)]
        return found

    @property
    def training(self) -> bool:
        return self._training

    @training.setter
    def training(self, mode: bool) -> None:
        self._training = bool(mode)
        for node in self.nodes.values():
            node.training = self._training

    def train(self, mode: bool = True) -> Graph:
        """Switch every node to training (``mode=True``) or evaluation mode."""
        self.training = mode
        return self

    def eval(self) -> Graph:
        """Switch every node to evaluation mode (e.g. Dropout passes values through)."""
        return self.train(False)

    @property
    def need_input_grad(self) -> bool:
        return self._need_input_grad

    @need_input_grad.setter
    def need_input_grad(self, value: bool) -> None:
        self._need_input_grad = bool(value)
        self._plan_backward()

    @property
    def differentiable_input(self) -> bool | tuple[bool, ...]:  # type: ignore[override]
        """Whether a gradient can reach the graph's input from its output, one flag per input where it has
        several (a tuple, true even when all are false: read it with :func:`~nnframe.node.differentiable_inputs`):
        no node on the way takes it as indices (see :attr:`Node.differentiable_input`)."""
        flags = tuple(self._receiving([True] * len(self._slot_names))[:len(self.inputs)])
        return flags[0] if len(flags) == 1 else flags

    @property
    def need_dx(self) -> bool:
        """The Node-protocol name of ``need_input_grad``, set by an enclosing graph."""
        return self._need_input_grad

    @need_dx.setter
    def need_dx(self, value: bool) -> None:
        self.need_input_grad = value

    def _plan_backward(self) -> None:
        """Decide which values carry a gradient, set ``need_dx`` and list the backward steps."""
        carries = [self._need_input_grad] * len(self.inputs)
        behind_params = [False] * len(self.inputs)
        for gn, args in zip(self._graph_nodes, self._arg_slots):
            differentiable = self._differentiable(gn, args)
            trained = [self._slot_names[i] for i, takes in zip(args, differentiable) if behind_params[i] and not takes]
            if trained:
                raise GraphError(f"{described(gn.name, gn.node)} reads indices (its differentiable_input is "
                                 f"{gn.node.differentiable_input!r}), but it reads {trained[0]!r}, behind "
                                 "which are parameters that would need a gradient through it; give it the graph's "
                                 "input")
            gn.node.need_dx = any(carries[i] for i, takes in zip(args, differentiable) if takes)
            carries.append(gn.node.need_dx or bool(gn.node.params))
            behind_params.append(bool(gn.node.params) or any(behind_params[i] for i in args))
        receives = self._receiving(carries)
        plan = []
        for k, (gn, args) in enumerate(zip(self._graph_nodes, self._arg_slots)):
            slot = len(self.inputs) + k
            if carries[slot] and receives[slot]:
                wanted = (tuple(receives[i] and takes for i, takes in zip(args, self._differentiable(gn, args)))
                          if getattr(gn.node, "need_dx", True) else (False,) * len(args))
                plan.append((gn.node, args, slot, wanted, gn.name))
        self._backward_plan = plan[::-1]
        self._chain_backward = [step[0] for step in self._backward_plan] if self._chain else None

    def _receiving(self, carries: list[bool]) -> list[bool]:
        """Which values a gradient reaches from the output: through readers that take a gradient
        (``differentiable_input``), and only where one can flow (``carries``). A parameter-free node that only
        an index reader reads gets none, and is not run backward."""
        receives = [False] * len(carries)
        receives[self._output_slot] = carries[self._output_slot]
        for k in reversed(range(len(self._graph_nodes))):
            gn, args, slot = self._graph_nodes[k], self._arg_slots[k], len(self.inputs) + k
            if receives[slot]:
                for i, takes in zip(args, self._differentiable(gn, args)):
                    receives[i] = receives[i] or (takes and carries[i])
        return receives

    @staticmethod
    def _differentiable(gn: GraphNode, args: tuple[int, ...]) -> tuple[bool, ...]:
        try:
            return differentiable_inputs(gn.node, len(args))
        except GraphError as exc:
            raise GraphError(f"{described(gn.name, gn.node)}: {exc}") from None

    def _plan_overwrites(self) -> tuple[list[tuple[Node, bool]], list[tuple[Node, bool]]]:
        """For each node that ``can_overwrite``: may it write over its input value, and over its gradient?

        Over its input where the value is made new by a node that keeps none of
        it (``output_is_fresh``) and read by this node alone (a value read by
        a node is never the graph's output: every node leads to the output).
        Over its gradient where that comes from a single reader with one
        input whose ``dx_is_fresh`` (the output, read by none, gets the
        caller's). Set at the start of every pass and cleared at its end, so
        a node shared with another graph follows the graph it runs in, and a
        node used on its own after a pass writes over nothing.
        """
        n_inputs = len(self.inputs)
        nodes = [gn.node for gn in self._graph_nodes]
        readers: dict[int, list[int]] = {}
        for k, args in enumerate(self._arg_slots):
            for slot in args:
                readers.setdefault(slot, []).append(k)
        on_input, on_dout = [], []
        for k, (node, args) in enumerate(zip(nodes, self._arg_slots)):
            if not getattr(node, "can_overwrite", False):
                continue
            fresh_value = (declares(node, "can_overwrite", "forward") and len(args) == 1
                           and args[0] >= n_inputs and readers[args[0]] == [k]
                           and declares(nodes[args[0] - n_inputs], "output_is_fresh", "forward"))
            reader = readers.get(n_inputs + k, [])
            fresh_dout = (declares(node, "can_overwrite", "backward") and len(reader) == 1
                          and len(self._arg_slots[reader[0]]) == 1
                          and declares(nodes[reader[0]], "dx_is_fresh", "backward"))
            on_input.append((node, fresh_value))
            on_dout.append((node, fresh_dout))
        return on_input, on_dout

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        if len(xs) != len(self.inputs):
            raise GraphError(f"the graph takes {len(self.inputs)} input(s) "
                             f"({', '.join(self.inputs)}); got {len(xs)}")
        for node, allowed in self._input_overwrites:
            node.overwrite_input = allowed
        try:
            if not self._protocol_checked:
                out = self._forward_recording(xs)
            elif self._chain:
                out = xs[0]
                for node, _ in self._forward_plan:
                    out = node.forward(out)
            else:
                out = self._forward_slots(xs)
            self._out_shape = getattr(out, "shape", ())  # np.shape would cost 0.15 us a step
            return out
        except BaseException as exc:
            self._out_shape = FAILED_FORWARD
            if isinstance(exc, Exception):
                self._note_failing_node(exc, "forward")
            raise
        finally:
            for node, _ in self._input_overwrites:
                node.overwrite_input = False

    def backward(self, dout: Any) -> Any:
        if getattr(dout, "shape", ()) != self._out_shape:
            self._check_dout(dout)
            dout = np.asarray(dout)
        for node, allowed in self._dout_overwrites:
            node.overwrite_dout = allowed
        try:
            if not self._protocol_checked:
                return self._first_backward(dout)
            if self._chain_backward is not None:
                return self._backward_chain(dout)
            return self._backward_slots(dout)
        except Exception as exc:
            self._note_failing_node(exc, "backward")
            raise
        finally:
            for node, _ in self._dout_overwrites:
                node.overwrite_dout = False

    def forget_forward(self) -> None:
        """As if no forward had run, so that a backward says so: for the passes a build makes to check the model,
        which are not the user's."""
        self._out_shape = None

    def _check_dout(self, dout: Any) -> None:
        """Refuse a gradient of another shape than the last output: numpy would broadcast it into wrong values."""
        if self._out_shape is None:
            raise GraphError("backward was called before forward: run forward first, the nodes keep what backward "
                             "needs")
        if self._out_shape is FAILED_FORWARD:
            raise GraphError("backward was called after a forward that failed: the nodes before the failing one "
                             "hold that pass's inputs and the others an earlier one's; run forward again first")
        if np.shape(dout) != self._out_shape:
            raise GraphError(f"the gradient given to backward has shape {np.shape(dout)}, but the graph's output "
                             f"has shape {self._out_shape}")

    def failing_node(self, exc: BaseException) -> str | None:
        """The name of the node of this graph deepest in ``exc``'s traceback: where a forward or backward failed."""
        found = None
        tb = exc.__traceback__
        while tb is not None:
            owner = tb.tb_frame.f_locals.get("self")
            if owner is not self and id(owner) in self._node_names:
                found = self._node_names[id(owner)]
            tb = tb.tb_next
        return found

    def _note_failing_node(self, exc: Exception, phase: str) -> None:
        """Name the failing node on an exception's traceback (a note; the message is left alone)."""
        name = self.failing_node(exc)
        if name is not None and not getattr(exc, "_nnframe_noted", False):
            exc.add_note(f"(raised in the {phase} of {described(name, self.nodes[name])})")
            exc._nnframe_noted = True  # type: ignore[attr-defined]

    def _forward_slots(self, xs: tuple[np.ndarray, ...]) -> np.ndarray:
        values = list(xs)
        for node, args in self._forward_plan:
            if len(args) == 1:
                values.append(node.forward(values[args[0]]))
            else:
                values.append(node.forward(*[values[i] for i in args]))
        return values[self._output_slot]

    def _backward_slots(self, dout: Any, shapes: list[tuple[tuple[int, ...], ...]] | None = None) -> Any:
        """The general walk; with ``shapes`` (each node's input shapes) every returned gradient is checked."""
        n_slots = len(self.inputs) + len(self.nodes)
        grads: list[Any] = [None] * n_slots
        owned = [False] * n_slots
        grads[self._output_slot] = dout
        for node, args, slot, wanted, name in self._backward_plan:
            upstream = grads[slot]
            if upstream is None:
                raise NNFrameError(f"node {name!r} received no gradient: a node reading it "
                                   "returned None for that input although need_dx was set")
            grads[slot] = None
            if shapes is not None and getattr(node, "overwrite_dout", False) and slot != self._output_slot:
                reader = next(k for k, reads in enumerate(self._arg_slots) if slot in reads)
                reader_name = self._slot_names[len(self.inputs) + reader]
                check_kept_apart(reader_name, self._forward_plan[reader][0], upstream, "input gradient", "dx_is_fresh",
                                 name)
            result = node.backward(upstream)
            if len(args) == 1:
                result = (result,)
            elif not isinstance(result, (tuple, list)) or len(result) != len(args):
                raise NNFrameError(f"node {name!r} reads {len(args)} inputs, so its backward "
                                   f"must return a tuple of {len(args)} gradients; "
                                   f"got {type(result).__name__}")
            for k, (i, dx, want) in enumerate(zip(args, result, wanted)):
                if want and dx is None and shapes is not None:
                    raise NNFrameError(f"{described(name, node)} returned no gradient (None) for its input "
                                       f"{self._slot_names[i]!r}, which needs one (parameters lie behind it); "
                                       f"{index_input_hint(node, len(args), k)}")
                if want and dx is not None:
                    if shapes is not None:
                        check_input_gradient(name, node, self._slot_names[i], dx, shapes[slot - len(self.inputs)][k])
                    _accumulate(grads, owned, i, dx)
        if len(self.inputs) == 1:
            return grads[0]
        return tuple(grads[: len(self.inputs)])

    def inputs_of(self, name: str) -> tuple[str, ...]:
        """The names node ``name`` reads (graph inputs or other nodes), in the order of its forward's arguments."""
        for gn in self._graph_nodes:
            if gn.name == name:
                return gn.inputs
        raise KeyError(unknown_name_message("node", name, self.nodes))

    def _forward_recording(self, xs: tuple[np.ndarray, ...]) -> np.ndarray:
        """Forward that keeps each node's input shapes, until the first backward has checked the nodes, and
        checks, on the first, that each node leaves its inputs as they were, unless allowed to write over them
        (a copy of one node's inputs at a time): a model that only predicts runs this walk on every call."""
        self._warn_of_wider_inputs(xs)
        values = list(xs)
        slot_names = self._slot_names
        checked = getattr(self, "_inputs_checked", set())
        checking = self._training not in checked  # once in each mode: a node may write in place in training only
        for (node, args), name in zip(self._forward_plan, self.nodes):
            given = [values[i] for i in args]
            if checking and getattr(node, "overwrite_input", False):
                maker = args[0] - len(self.inputs)
                check_kept_apart(slot_names[args[0]], self._forward_plan[maker][0], given[0], "output",
                                 "output_is_fresh", name)
            kept = None if not checking or getattr(node, "overwrite_input", False) else [
                x.copy() if is_array(x) else None for x in given]
            values.append(node.forward(*given))
            if kept is not None:
                check_inputs_unchanged(name, node, [slot_names[i] for i in args], given, kept)
        self._inputs_checked = checked | {self._training}
        self._input_shapes = [tuple(np.shape(values[i]) for i in args) for args in self._arg_slots]
        return values[self._output_slot]

    def _warn_of_wider_inputs(self, xs: tuple[np.ndarray, ...]) -> None:
        """A float64 input into a float32 model is promoted by numpy without a word: every product then runs in
        float64, at twice the cost, and the gradients are cast back."""
        dtypes = {p.dtype for p in self.params if p.dtype.kind == "f"}
        if len(dtypes) != 1:
            return
        dtype = dtypes.pop()
        for name, x in zip(self.inputs, xs):
            given = getattr(x, "dtype", None)
            if given is not None and given.kind == "f" and given.itemsize > dtype.itemsize:
                warnings.warn(f"graph input {name!r} is {given}, while the parameters are {dtype}: numpy computes "
                              f"in {given} and casts the gradients back; pass x.astype(np.{dtype})", stacklevel=4)

    def _first_backward(self, dout: Any) -> Any:
        """Backward with the node-protocol checks: each input gradient's shape, every array kept in place, and
        every parameter gradient written.

        The gradients are filled with a NaN of nnframe's own bit pattern first
        (see :func:`~nnframe.graph_checks.fill_unwritten`): one still all that
        after the pass was never written (nor written over: added to), and
        would otherwise leave its parameter where it is without a word.
        Whatever still holds it gets its value from before back, so a node that
        writes part of a gradient (a pruned layer) keeps the rest as it was,
        while a NaN the pass computed stays for the non-finite check. Runs
        once, on the first backward after a forward; later ones take the fast walk.
        """
        before = [[grad.copy() for grad in grads] for _, _, _, grads in self._kept]
        for _, _, _, grads in self._kept:
            for grad in grads:
                fill_unwritten(grad)
        try:
            result = self._backward_slots(dout, self._input_shapes)
            unwritten = [(name, node, i) for name, node, _, grads in self._kept
                         for i, grad in enumerate(grads) if grad.size and unwritten_part(grad).all()]
        finally:
            for (_, _, _, grads), saved in zip(self._kept, before):
                for grad, old in zip(grads, saved):
                    np.copyto(grad, old, where=unwritten_part(grad))
        for name, node, params, grads in self._kept:
            check_arrays_kept(name, node, params, grads)
        if unwritten:
            check_gradients_written(*unwritten[0])
        self._protocol_checked = self._input_shapes is not None
        return result

    def trace(self, *xs: np.ndarray) -> dict[str, np.ndarray]:
        """Every node's output for ``xs``, in topological order: for diagnosing where values go bad.

        No node writes over another's output here (the grants hold only inside
        ``forward`` and ``backward``): each is returned as it was made. It is a
        forward pass all the same: each node keeps what its backward needs from
        this one, so a ``backward`` after it is the backward of ``xs``, not of
        an earlier ``forward``.
        """
        values = list(xs)
        outputs = {}
        try:
            for (node, args), name in zip(self._forward_plan, self.nodes):
                values.append(node.forward(*[values[i] for i in args]))
                outputs[name] = values[-1]
        except BaseException:
            self._out_shape = FAILED_FORWARD
            raise
        self._out_shape = getattr(outputs[self.output], "shape", ())
        return outputs

    def _backward_chain(self, dout: Any) -> Any:
        """The same walk for a chain of one-input nodes, without the slot bookkeeping."""
        for node in self._chain_backward:
            dout = node.backward(dout)
        return dout if self._need_input_grad else None

    def __getitem__(self, name: str) -> Node:
        if name not in self.nodes:
            raise KeyError(unknown_name_message("node", name, self.nodes))
        return self.nodes[name]

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        lines = [f"  {gn.name}: {gn.node!r} <- {', '.join(gn.inputs)}" for gn in self._graph_nodes]
        head = f"Graph(inputs=[{', '.join(self.inputs)}], output={self.output}"
        return head + ",\n" + "\n".join(lines) + "\n)"


def _named(nodes: Sequence[tuple[str, Node] | Node]) -> list[tuple[str, Any]]:
    """``(name, node)`` for each entry of :meth:`Graph.sequential` (a pair, as a tuple or a list, or a bare node,
    named by its class and position among the names given)."""
    entries = list(nodes)
    pairs = [entry if isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str) else None
             for entry in entries]
    bare = [pair[1] if pair else entry for pair, entry in zip(pairs, entries)]
    names = sequential_names([type(node).__name__.lower() for node in bare],
                             explicit=[pair[0] if pair else None for pair in pairs])
    return list(zip(names, bare))


def _is_chain(arg_slots: list[tuple[int, ...]], output_slot: int) -> bool:
    """True when every node reads just the value before it and the last node is the output."""
    return (all(args == (k,) for k, args in enumerate(arg_slots))
            and output_slot == len(arg_slots))


def _accumulate(grads: list[Any], owned: list[bool], i: int, dx: np.ndarray) -> None:
    """Branch rule: sum every gradient reaching value ``i``.

    The first gradient is stored as is; the second makes a new array (the first
    may belong to a node); later ones add in place into that new array.
    """
    if grads[i] is None:
        grads[i] = dx
    elif owned[i]:
        grads[i] += dx
    else:
        grads[i] = grads[i] + dx
        owned[i] = True


def sequential_names(
    types: Sequence[str], explicit: Iterable[str | None] | None = None
) -> list[str]:
    """Names by type and position: ``[affine, sigmoid, affine]`` -> ``affine1 sigmoid1 affine2``.

    ``explicit`` gives a user's name per position (``None`` where unnamed); those
    are kept, count towards their type's position, and an automatic name that
    would collide with one of them takes the next free number.
    """
    given = list(explicit) if explicit is not None else [None] * len(types)
    if len(given) != len(types):
        raise ValueError(f"explicit names ({len(given)}) do not match types ({len(types)})")
    taken = {name for name in given if name is not None}
    counts: dict[str, int] = {}
    names = []
    for kind, name in zip(types, given):
        counts[kind] = counts.get(kind, 0) + 1
        if name is None:
            while f"{kind}{counts[kind]}" in taken:
                counts[kind] += 1
            name = f"{kind}{counts[kind]}"
            taken.add(name)
        names.append(name)
    return names

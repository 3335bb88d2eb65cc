"""A model's parameters in one contiguous buffer, and its gradients in another.

Nodes keep reading ``self.params[i]`` and writing ``self.grads[i]`` in place;
after :func:`flatten` those arrays are views of two buffers, in the order of
``model.params``. Work over the whole model (the gradient norm checked on
every step, the optimizers' element-wise rules) then takes one numpy call
on one array instead of one per parameter: on spiral's four small arrays
that was 39.2 against 33.5 µs a step.
"""

from __future__ import annotations

import bisect
import collections
import functools
import operator
import types
from collections.abc import Sequence
from typing import Any

import numpy as np

from nnframe.arrays import zeros, zeros_like

try:
    from numpy.lib.array_utils import byte_bounds as _byte_bounds
except ImportError:  # numpy 1
    from numpy import byte_bounds as _byte_bounds

SCAN_LIMIT = 100_000
_LEAVES = (str, bytes, int, float, complex, bool, type(None), np.generic)
_NOT_SEARCHED = (type, types.ModuleType, types.BuiltinFunctionType, *_LEAVES)


def flatten(nodes: Sequence[Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """Move every node's parameters and gradients into two new buffers; return them, or ``None``.

    The values are copied and each node's ``params`` and ``grads`` lists get
    the views. Nothing is moved unless every array can be: one dtype, C order,
    no array shared between two places, and no node that keeps its arrays
    anywhere but in those two lists (a nested graph, or a plugin's
    ``self.W``), since such a reference would go on seeing the old array.
    """
    pairs = [(node, i) for node in nodes for i in range(len(node.params))]
    old_params = [node.params[i] for node, i in pairs]
    old_grads = [node.grads[i] for node, i in pairs]
    if not pairs or not _movable(nodes, old_params, old_grads):
        return None
    params = zeros((sum(p.size for p in old_params),), old_params[0].dtype)
    grads = zeros_like(params)
    start = 0
    for (node, i), p, g in zip(pairs, old_params, old_grads):
        stop = start + p.size
        node.params[i] = params[start:stop].reshape(p.shape)
        node.grads[i] = grads[start:stop].reshape(p.shape)
        node.params[i][...], node.grads[i][...] = p, g
        start = stop
    return params, grads


def buffer_of(arrays: Sequence[np.ndarray]) -> np.ndarray | None:
    """The 1-D array that ``arrays`` tile exactly, one after another, or ``None``.

    This is how an optimizer recognises the buffers of :func:`flatten`
    without being told: the arrays are C-order views of one base, each
    starting where the one before it ends, and together they cover it.
    """
    if not arrays:
        return None
    base = arrays[0].base
    if not isinstance(base, np.ndarray) or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    address = base.__array_interface__["data"][0]
    for array in arrays:
        if (array.base is not base or not array.flags.c_contiguous
                or array.__array_interface__["data"][0] != address):
            return None
        address += array.nbytes
    if address != base.__array_interface__["data"][0] + base.nbytes:
        return None
    return base


def seed_copies(memo: dict[int, Any], buffer: np.ndarray, views: Sequence[np.ndarray]) -> bool:
    """Enter a copy of ``buffer`` and of each of its ``views`` in a ``copy.deepcopy`` memo, the views' copies being
    views of the buffer's copy; returns whether it did.

    numpy deep-copies a view as an array of its own, so a deep-copied model's
    arrays would no longer tile its copied buffer, and work on the buffer (the
    gradient norm, clipping) would miss what its nodes write. Nothing is
    entered where the deepcopy has already copied one of them (through
    something that holds them, copied first): their copies are taken as made.
    """
    if any(id(array) in memo for array in (buffer, *views)):
        return False
    copied = buffer.copy()
    memo[id(buffer)] = copied
    for view in views:
        memo[id(view)] = view_like(copied, buffer, view)
    memo.setdefault(id(memo), []).extend((buffer, *views))  # as deepcopy keeps what it copied alive
    return True


class OneBufferUpdate:
    """What an optimizer keeps to update, in one go, parameters that tile one buffer.

    Its state is allocated in buffers of the same layout, so the rule runs
    once over all parameters as if they were one; the rules are element-wise,
    so the values are those of the update parameter by parameter.
    ``bound`` are the parameter arrays it was made for, views of ``params``;
    ``buffers`` is the scratch followed by the state buffers, one per slot.
    """

    def __init__(self, bound: tuple[np.ndarray, ...], params: np.ndarray, buffers: tuple[np.ndarray, ...],
                 decayed: np.ndarray | None, in_blocks: bool) -> None:
        self.bound = bound
        self.params = params
        self.buffers = buffers
        self.decayed = decayed
        self.in_blocks = in_blocks
        self.grads: np.ndarray | None = None
        self._grads_seen: tuple[np.ndarray, ...] = ()

    def covers(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> bool:
        """Whether ``params`` are the arrays it was made for, and ``grads``, shaped like them, tile one buffer."""
        bound = self.bound
        if len(params) != len(bound) or not all(map(operator.is_, params, bound)):
            return False
        if len(grads) != len(self._grads_seen) or not all(map(operator.is_, grads, self._grads_seen)):
            same_shapes = all(g.shape == p.shape for g, p in zip(grads, bound))
            self.grads = buffer_of(grads) if same_shapes else None
            self._grads_seen = tuple(grads)
        return self.grads is not None and self.grads.dtype == self.params.dtype

    @property
    def grads_seen(self) -> tuple[np.ndarray, ...]:
        """The gradient arrays :meth:`covers` last found tiling ``grads``."""
        return self._grads_seen

    def still_tiles(self, slot_views: Sequence[Sequence[np.ndarray]]) -> bool:
        """Whether, in a copy, ``bound`` still tiles ``params`` and each slot's ``slot_views`` its state buffer.

        The gradients are looked at again on the next :meth:`covers`.
        """
        self.grads, self._grads_seen = None, ()
        return buffer_of(self.bound) is self.params and all(
            buffer_of(views) is buffer for views, buffer in zip(slot_views, self.buffers[1:], strict=True))


def view_like(buffer: np.ndarray, base: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The part of ``buffer`` that lies where ``p`` lies in ``base``, shaped like ``p``."""
    start = (p.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // p.itemsize
    return buffer[start:start + p.size].reshape(p.shape)


def _movable(nodes: Sequence[Any], params: list[np.ndarray], grads: list[np.ndarray]) -> bool:
    arrays = params + grads
    if any(type(a) is not np.ndarray or a.dtype != params[0].dtype or not a.flags.c_contiguous for a in arrays):
        return False
    if any(p.shape != g.shape for p, g in zip(params, grads)):
        return False
    if _any_overlap(arrays):
        return False
    roots = [value for node in nodes for key, value in vars(node).items() if key not in ("params", "grads")]
    own = {id(part) for node in nodes for part in (node, node.params, node.grads)}
    return not _holds(roots, arrays, own)


def _any_overlap(arrays: list[np.ndarray]) -> bool:
    spans = sorted((a.__array_interface__["data"][0], a.nbytes) for a in arrays if a.nbytes)
    return any(start + size > next_start for (start, size), (next_start, _) in zip(spans, spans[1:]))


def _holds(roots: list[Any], arrays: list[np.ndarray], own: set[int]) -> bool:
    """Whether anything in ``roots`` is one of ``arrays``, or an array sharing memory with one, or holds one at
    any depth.

    Memory, not ``base``: numpy gives a view of a view the base of the first
    (``W.T`` of a ``W`` made by ``reshape`` has ``W``'s base, not ``W``), and
    an array the node keeps may be the base of its parameters (a ``theta`` of
    which ``W`` and ``b`` are slices). Either would go on reading the old
    memory after the move, and the model would never change its outputs.

    Containers, objects' attributes (``__slots__`` too), object arrays, and
    what a closure, a ``partial`` or a bound method captured are searched (a
    node holding child layers in a list of pairs, say), each object once
    over all the roots. Modules, classes and what holds only numbers and
    strings (a vocabulary) are not. Past ``SCAN_LIMIT`` containers that hold
    others the answer is yes: nothing is moved that the scan could not rule out.
    The nodes themselves and their ``params`` and ``grads`` lists, ``own``,
    are not searched again (a bound method leads back to its node): the move
    rewrites those lists in place.
    """
    ids, spans = {id(a) for a in arrays}, _Spans(arrays)
    stack, seen = list(roots), set(own)
    while stack:
        item = stack.pop()
        if id(item) in ids or (isinstance(item, np.ndarray) and spans.overlap(item)):
            return True
        if id(item) in seen or isinstance(item, _NOT_SEARCHED):
            continue
        seen.add(id(item))
        held = [part for part in _contents(item) if not isinstance(part, _LEAVES)]
        if held and len(seen) > SCAN_LIMIT:
            return True
        stack.extend(held)
    return False


class _Spans:
    """The memory ``arrays`` take, from the lowest byte of each to the highest, to ask whether another array's
    may overlap it (as ``np.may_share_memory`` asks, by bounds), in a search instead of a pass over them all:
    a node that keeps thousands of arrays is scanned in as many steps."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        merged: list[list[int]] = []
        for low, high in sorted(_byte_bounds(a) for a in arrays if a.nbytes):
            if merged and low < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], high)
            else:
                merged.append([low, high])
        self.lows = [low for low, _ in merged]
        self.highs = [high for _, high in merged]

    def overlap(self, item: np.ndarray) -> bool:
        if not item.nbytes:
            return False
        low, high = _byte_bounds(item)
        i = bisect.bisect_right(self.lows, high - 1) - 1  # the last span starting below item's end
        return i >= 0 and self.highs[i] > low


def _contents(item: Any) -> list[Any]:
    if isinstance(item, np.ndarray):
        return list(item.flat) if item.dtype == object else []
    if isinstance(item, dict):
        return [*item.keys(), *item.values()]
    if isinstance(item, (list, tuple, set, frozenset, collections.deque)):
        return list(item)
    if isinstance(item, functools.partial):
        return [item.func, *item.args, *item.keywords.values()]
    if isinstance(item, types.MethodType):
        return [item.__self__, item.__func__]
    if isinstance(item, types.FunctionType):
        cells = [cell.cell_contents for cell in item.__closure__ or () if _filled(cell)]
        return [*cells, *(item.__defaults__ or ()), *(item.__kwdefaults__ or {}).values()]
    found = list(vars(item).values()) if hasattr(item, "__dict__") else []
    for cls in type(item).__mro__:
        for name in _slot_names(cls):
            if hasattr(item, name):
                found.append(getattr(item, name))
    return found


def _slot_names(cls: type) -> tuple[str, ...]:
    slots = vars(cls).get("__slots__", ())
    return (slots,) if isinstance(slots, str) else tuple(name for name in slots if name not in ("__dict__",
                                                                                                  "__weakref__"))


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # a cell not yet bound
        return False
    return True

"""The numpy random generators an object keeps, wherever it keeps them, and the nodes.

A node may hold its generator as ``self.rng``, or inside a helper object, as
the book's negative sampler does (``self.sampler.rng``). Checkpoints must
save every one of them, and a gradient check must hold every one still, or a
resume draws other samples and a check compares two different functions.
A node made of others (a block holding a graph, or layers of its own) keeps
their state the same way, which checkpoints save too.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import numpy as np

MAX_DEPTH = 6
"""How deep attributes, lists and dicts are followed: deeper than any node's helpers, and an end to long chains."""
MAX_ITEMS = 10_000
"""Larger lists and dicts are not followed: they hold data (a vocabulary, an id map), which a checkpoint would
otherwise walk item by item (0.6 s for a million words), not generators."""
LEAVES = (np.ndarray, str, bytes, int, float, type, types.ModuleType, types.FunctionType, types.MethodType,
          types.BuiltinFunctionType)


def generators_in(obj: Any) -> list[tuple[str, np.random.Generator]]:
    """Every ``Generator`` reachable from ``obj`` through attributes, lists, tuples and dicts, each once, with
    the path it was first found at (``rng``, ``sampler.rng``, ``layers[0].rng``); breadth first, so the shortest
    path names a generator held twice."""
    found: dict[int, tuple[str, np.random.Generator]] = {}
    seen: dict[int, Any] = {}  # the objects themselves, so that a temporary's id is not reused meanwhile
    level: list[tuple[str, Any]] = [("", obj)]
    for _ in range(MAX_DEPTH + 1):
        below: list[tuple[str, Any]] = []
        for path, value in level:
            if id(value) in seen or isinstance(value, LEAVES):
                continue
            seen[id(value)] = value
            if isinstance(value, np.random.Generator):
                found.setdefault(id(value), (path, value))
                continue
            below.extend(_children(path, value))
        level = below
    return list(found.values())


Searched = dict[int, tuple[int, Any]]
"""What searches by :func:`objects_in` have looked into, by id: the depth left when each object was searched, and
the object itself, held so that its id is not reused meanwhile (a temporary's: the list ``named_nodes()`` makes)."""


def searched(*objects: Any) -> Searched:
    """A :data:`Searched` in which ``objects`` count as searched to the full depth: a search skips them."""
    return {id(obj): (MAX_DEPTH, obj) for obj in objects}


def objects_in(obj: Any, kind: type, seen: Searched) -> list[tuple[str, Any]]:
    """Every instance of ``kind`` reachable from ``obj`` (itself not counted), with its path, as
    :func:`generators_in` finds generators, but also looking inside those found, for ones they hold in turn:
    the depth counts afresh inside each one found, as it does from ``obj``.

    ``seen`` is shared by the searches of one model: an object already searched is searched again only where
    it is reached with more depth left, so that a helper that one path reaches deep, and another near, is
    looked into as far as the nearer allows, whichever comes first; an instance of ``kind`` is found once.
    """
    found: list[tuple[str, Any]] = []
    level = [(path, child, 1) for path, child in _children("", obj)]
    while level:
        below: list[tuple[str, Any, int]] = []
        for path, value, depth in level:
            if isinstance(value, LEAVES) or value is obj:
                continue
            fresh = isinstance(value, kind)
            left = MAX_DEPTH if fresh else MAX_DEPTH - depth
            before = seen.get(id(value))
            if before is not None and before[0] >= left:
                continue
            if fresh:
                found.append((path, value))
            seen[id(value)] = (left, value)
            if left:
                below.extend((child_path, child, MAX_DEPTH - left + 1) for child_path, child in _children(path, value))
        level = below
    return found


def _children(path: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, (dict, list, tuple)) and len(value) > MAX_ITEMS:
        return
    if isinstance(value, dict):
        for key, child in value.items():
            yield f"{path}[{key!r}]", child
    elif isinstance(value, (list, tuple)):
        for i, child in enumerate(value):
            yield f"{path}[{i}]", child
    else:
        for name, child in getattr(value, "__dict__", {}).items():
            yield (f"{path}.{name}" if path else name), child
        named = getattr(value, "named_nodes", None)
        if callable(named):
            yield f"{path}.named_nodes()", named()

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
    seen: set[int] = set()
    level: list[tuple[str, Any]] = [("", obj)]
    for _ in range(MAX_DEPTH + 1):
        below: list[tuple[str, Any]] = []
        for path, value in level:
            if id(value) in seen or isinstance(value, LEAVES):
                continue
            seen.add(id(value))
            if isinstance(value, np.random.Generator):
                found.setdefault(id(value), (path, value))
                continue
            below.extend(_children(path, value))
        level = below
    return list(found.values())


def objects_in(obj: Any, kind: type, seen: set[int]) -> list[tuple[str, Any]]:
    """Every instance of ``kind`` reachable from ``obj`` (itself not counted), with its path, as
    :func:`generators_in` finds generators, but also looking inside those found, for ones they hold in turn:
    the depth counts afresh inside each one found, as it does from ``obj``.

    ``seen`` holds the ids of objects already searched elsewhere, and gets those searched and found here, but
    not those reached at the last depth only, whose insides another object, holding them nearer, may reach.
    """
    found: list[tuple[str, Any]] = []
    level = [(path, child, 1) for path, child in _children("", obj)]
    while level:
        below: list[tuple[str, Any, int]] = []
        for path, value, depth in level:
            if id(value) in seen or isinstance(value, LEAVES) or value is obj:
                continue
            if isinstance(value, kind):
                found.append((path, value))
                depth = 0
            elif depth == MAX_DEPTH:
                continue
            seen.add(id(value))
            below.extend((child_path, child, depth + 1) for child_path, child in _children(path, value))
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

"""What plugins keep in ``run.state``, made ready for a checkpoint's JSON: plain values only, each problem named.

A plugin that counts across evaluations (an early stopper's best loss and
patience) must find its count again on a resume, or the resumed run stops
later than an uninterrupted one would. ``run.state`` is saved with every
checkpoint and given back on a resume; JSON would quietly turn a tuple into a
list and an integer key into a string, and refuses a numpy array, so the
values are checked and copied here, at every save.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_PLAIN = (str, int, float, bool, type(None))
MAX_DEPTH = 100
"""Containers nested deeper are refused: the JSON encoder, and this check, would run out of Python's stack."""


def saved_state(state: dict[str, Any]) -> tuple[dict[str, Any], dict[Any, str]]:
    """A JSON-ready copy of ``state``, and the top-level keys left out of it, each with the problem found: a value
    other than plain numbers, strings, lists and dicts with string keys, somewhere under it.

    numpy scalars become Python numbers and tuples lists, which is what they
    come back as.
    """
    plain, left_out = {}, {}
    for key, value in state.items():
        if not isinstance(key, str):
            left_out[key] = f"run.state has the key {key!r}, which is not a string"
            continue
        try:
            plain[key] = _plain(value, f"run.state[{key!r}]", set())
        except TypeError as exc:
            left_out[key] = str(exc)
    return plain, left_out


def _plain(value: Any, where: str, holding: set[int]) -> Any:
    if isinstance(value, np.generic) and isinstance(value.item(), _PLAIN):
        return value.item()
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple, dict)):
        if id(value) in holding:
            raise TypeError(f"{where} holds itself")
        if len(holding) == MAX_DEPTH:
            raise TypeError(f"{where} is nested more than {MAX_DEPTH} containers deep")
        holding.add(id(value))
        try:
            if isinstance(value, dict):
                return {_key(k, where): _plain(v, f"{where}[{k!r}]", holding) for k, v in value.items()}
            return [_plain(item, f"{where}[{i}]", holding) for i, item in enumerate(value)]
        finally:
            holding.discard(id(value))
    hint = " (.tolist() makes it a list)" if isinstance(value, np.ndarray) else ""
    raise TypeError(f"{where} is a {_type_name(value)}{hint}")


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _key(key: Any, where: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"{where} has the key {key!r}, which is not a string")
    return key

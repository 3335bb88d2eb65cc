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


def saved_state(state: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A JSON-ready copy of ``state``, and a problem for each top-level key left out of it because it holds
    something other than plain numbers, strings, lists and dicts with string keys.

    numpy scalars become Python numbers and tuples lists, which is what they
    come back as.
    """
    plain, problems = {}, []
    for key, value in state.items():
        if not isinstance(key, str):
            problems.append(f"run.state has the key {key!r}, which is not a string")
            continue
        try:
            plain[key] = _plain(value, f"run.state[{key!r}]", set())
        except TypeError as exc:
            problems.append(str(exc))
    return plain, problems


def _plain(value: Any, where: str, holding: set[int]) -> Any:
    if isinstance(value, np.generic) and isinstance(value.item(), _PLAIN):
        return value.item()
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple, dict)):
        if id(value) in holding:
            raise TypeError(f"{where} holds itself")
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

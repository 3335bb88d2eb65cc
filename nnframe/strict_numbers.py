"""Config numbers are numbers: ``true`` is not 1.

pydantic's lax mode turns a boolean into ``1`` or ``0`` for an ``int`` or
``float`` field, so ``out: yes`` built a layer one unit wide. After a config
validates, :func:`booleans_for_numbers` walks the validated models beside the
raw data and finds every such field, built-in or a plugin's. (A ``before``
validator on every field cannot do it: pydantic forbids one on the ``type``
field that tells the components apart.)
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

FieldPath = tuple[str | int, ...]


def booleans_for_numbers(model: BaseModel, data: Any, path: FieldPath = ()) -> list[tuple[FieldPath, str]]:
    """``(field path, "expected an integer, found a boolean (true)")`` for each boolean given for a number."""
    if not isinstance(data, dict):
        return []
    found = []
    for name, field in type(model).model_fields.items():
        key = field.alias or name
        if key not in data:
            continue
        raw, where = data[key], (*path, key)
        arms = _arms(field.annotation)
        if isinstance(raw, bool) and bool not in arms and (int in arms or float in arms):
            kind = "an integer" if int in arms else "a number"
            found.append((where, f"expected {kind}, found a boolean ({str(raw).lower()})"))
        found += _inside(getattr(model, name), raw, where)
    return found


def _inside(value: Any, raw: Any, path: FieldPath) -> list[tuple[FieldPath, str]]:
    if isinstance(value, BaseModel):
        return booleans_for_numbers(value, raw, path)
    if isinstance(value, (list, tuple)) and isinstance(raw, list):
        return [found for k, (item, raw_item) in enumerate(zip(value, raw))
                for found in _inside(item, raw_item, (*path, k))]
    if isinstance(value, dict) and isinstance(raw, dict):
        return [found for key, item in value.items() if key in raw for found in _inside(item, raw[key], (*path, key))]
    return []


def _arms(annotation: Any) -> set[Any]:
    """The types an annotation accepts, through Optional, Union and Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _arms(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return {arm for arg in typing.get_args(annotation) for arm in _arms(arg)}
    return {annotation}

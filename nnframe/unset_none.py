"""A plugin's "unset": a field whose default is ``None`` under a type that refuses ``None`` (``factor: float = None``).

pydantic does not validate defaults, so a model left at such a default holds
the ``None``; validated again from its values (a resolved config read back,
the params a component is built with, an optimizer made from its params)
the ``None`` is refused. Leaving the field out gives it the same default.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel


def unset_nones(model: BaseModel) -> dict[str, Any]:
    """The fields left at such a ``None``, as ``model_dump``'s ``exclude``: ``True`` for a field of ``model``, a
    nested dict for one inside a sub-model or a list of them."""
    exclude: dict[str, Any] = {}
    for name, spec in type(model).model_fields.items():
        value = getattr(model, name, None)
        if value is None:
            if spec.default is None and not accepts_none(spec.annotation):
                exclude[name] = True
        elif isinstance(value, BaseModel):
            if inner := unset_nones(value):
                exclude[name] = inner
        elif isinstance(value, (list, tuple)):
            items = {i: inner for i, item in enumerate(value)
                     if isinstance(item, BaseModel) and (inner := unset_nones(item))}
            if items:
                exclude[name] = items
    return exclude


def accepts_none(annotation: Any) -> bool:
    if annotation in (None, type(None), Any, object):
        return True
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return accepts_none(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(accepts_none(arg) for arg in typing.get_args(annotation))
    return False

"""Turn pydantic validation errors into one clear line each: file, field path, expected, found."""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from nnframe.errors import close_match

_MISSING = object()


def field_path(data: Any, loc: Sequence[Any]) -> tuple[str, list[Any]]:
    """The user-facing path of ``loc`` (``model[2].out``) and the loc without union tags.

    pydantic puts the tag of a discriminated union into ``loc`` (``model.sequential.2.affine.out``);
    a loc element that does not index into the user's data is such a tag and is dropped.
    """
    kept: list[Any] = []
    current = data
    for position, element in enumerate(loc):
        last = position == len(loc) - 1
        if isinstance(current, dict) and element in current:
            current = current[element]
        elif isinstance(current, list) and isinstance(element, int) and 0 <= element < len(current):
            current = current[element]
        elif not last:
            continue
        else:
            current = _MISSING
        kept.append(element)
    text = ""
    for element in kept:
        text += f"[{element}]" if isinstance(element, int) else (f".{element}" if text else str(element))
    return text or "(top level)", kept


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete arms of an annotation: strips Annotated, Optional and Union."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
        return [arm for arg in typing.get_args(annotation) for arm in _unwrap(arg)]
    return [annotation]


def _model_for(root: type[BaseModel], data: Any, loc: Sequence[Any]) -> type[BaseModel] | None:
    """The config model that validates the mapping at ``loc`` of ``data``, following union arms by data."""
    arms: list[Any] = [root]
    current = data
    for element in loc:
        model = _pick_arm(arms, current)
        if model is not None and isinstance(element, str) and element in model.model_fields:
            arms = _unwrap(model.model_fields[element].annotation)
        else:
            lists = [arm for arm in arms if typing.get_origin(arm) is list]
            if not (lists and isinstance(element, int)):
                return None
            arms = _unwrap(typing.get_args(lists[0])[0])
        current = current[element] if _indexable(current, element) else None
    return _pick_arm(arms, current)


def _indexable(value: Any, key: Any) -> bool:
    if isinstance(value, dict):
        return key in value
    return isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value)


def _pick_arm(arms: list[Any], value: Any) -> type[BaseModel] | None:
    models = [arm for arm in arms if isinstance(arm, type) and issubclass(arm, BaseModel)]
    if len(models) == 1:
        return models[0]
    tag = value.get("type") if isinstance(value, dict) else None
    for model in models:
        field = model.model_fields.get("type")
        if field is not None and tag in typing.get_args(field.annotation):
            return model
    return None


def describe_error(error: dict[str, Any], data: Any, root: type[BaseModel]) -> tuple[str, str]:
    """``(field path, message)`` for one pydantic error."""
    path, kept = field_path(data, error["loc"])
    kind = error["type"]
    found = error.get("input", _MISSING)
    if kind == "extra_forbidden":
        key = kept[-1] if kept else "?"
        model = _model_for(root, data, kept[:-1])
        allowed = sorted(model.model_fields) if model else []
        message = f"unknown key {key!r}"
        if allowed:
            message += f"; expected one of: {', '.join(allowed)}"
            suggestion = close_match(str(key), allowed)
            if suggestion:
                message += f" (did you mean {suggestion!r}?)"
        return path, message
    if kind == "union_tag_invalid":
        tags = [tag.strip().strip("'") for tag in error["ctx"]["expected_tags"].split(",")]
        name = error["ctx"]["tag"]
        message = f"unknown type {name!r}; available: {', '.join(sorted(tags))}"
        suggestion = close_match(str(name), tags)
        if suggestion:
            message += f" (did you mean {suggestion!r}?)"
        return f"{path}.type", message + "; a plugin may be missing (see `nnframe plugins`)"
    if kind == "union_tag_not_found":
        return f"{path}.type", "missing required key 'type'"
    if kind == "missing":
        return path, "missing required field"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    message = message[0].lower() + message[1:]
    if found is not _MISSING and kind not in ("value_error",):
        message += f"; found {_short(found)}"
    return path, message


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_validation_error(exc: ValidationError, data: Any, root: type[BaseModel]) -> list[tuple[str, str]]:
    """Every error of ``exc`` as ``(field path, message)``, duplicates removed, in order."""
    seen: dict[tuple[str, str], None] = {}
    for error in exc.errors():
        seen[describe_error(error, data, root)] = None
    return list(seen)

"""Turn pydantic validation errors into one clear line each: field path, what was expected, what was found."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from nnframe.config import COMPONENT_NAME_PATTERN, MODEL_FORM_ERROR, NAME_PATTERN, single_node
from nnframe.errors import MISSING_PLUGIN, close_match, did_you_mean, short_repr, unknown_name_message

_MISSING = object()
KEY_KINDS = ("missing", "extra_forbidden")
"""Problems about a key rather than a value: required and absent, or present and unknown."""
NAME_RULES = {
    NAME_PATTERN: "expected a name of ASCII letters, digits, '_', '.' and '-' that starts with a letter or digit",
    COMPONENT_NAME_PATTERN: "expected a name of ASCII letters, digits and '_' that starts with a letter",
}
"""What each name pattern of the config asks for, in words."""
_MAPPING_KINDS = ("dict_type", "model_type", "model_attributes_type")
UNKNOWN_TYPE = "union_tag_invalid"
"""The kind of a :class:`Problem` that names a component type no loaded plugin registers."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where (``model[2].out``), what, and the pydantic error kind.

    ``suggestion`` is the close match offered for an unknown key or type name, and ``subject`` the type name an
    unknown type's problem is about.
    """

    path: str
    message: str
    kind: str = "value_error"
    suggestion: str | None = None
    subject: str | None = None

    @property
    def parts(self) -> list[str]:
        """The path as keys and indices, all strings: ``model[2].out`` -> ``["model", "2", "out"]``."""
        return path_parts(self.path)

    def __str__(self) -> str:
        return f"field {self.path}: {self.message}"


def path_parts(path: str) -> list[str]:
    """A field path as keys and indices, all strings: ``model[2].out`` -> ``["model", "2", "out"]``."""
    return [part for part in path.replace("[", ".").replace("]", "").split(".") if part]


def field_path(data: Any, loc: Sequence[Any], kind: str = "") -> tuple[str, list[Any]]:
    """The user-facing path of ``loc`` (``model[2].out``) and the loc without union tags.

    pydantic puts the tags of discriminated unions into ``loc``
    (``model.sequential form.2.affine.out``). A tag is a loc element that does not
    index into the user's data, or that repeats the ``type`` of the mapping it
    follows; it is dropped. The last element of a ``missing`` or
    ``extra_forbidden`` error is a key that is (or should be) absent, and is kept.
    """
    kept: list[Any] = []
    current = data
    tag_possible = True
    for position, element in enumerate(loc):
        last = position == len(loc) - 1
        if tag_possible and isinstance(current, dict) and current.get("type") == element != "type":
            tag_possible = False
            continue
        if _indexable(current, element):
            current = current[element]
            tag_possible = True
        elif last and kind in KEY_KINDS:
            current = _MISSING
        else:
            continue
        kept.append(element)
    return format_path(kept), kept


def format_path(parts: Sequence[Any]) -> str:
    """``["model", 2, "out"]`` -> ``model[2].out``; an empty path is the top level."""
    text = ""
    for element in parts:
        text += f"[{element}]" if isinstance(element, int) else (f".{element}" if text else str(element))
    return text or "(top level)"


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete arms of an annotation: strips Annotated, Optional and Union."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
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
        try:
            return key in value
        except TypeError:
            return False
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


def describe_error(error: dict[str, Any], data: Any, root: type[BaseModel]) -> Problem:
    """One pydantic error as a :class:`Problem` with the user's field path."""
    kind = error["type"]
    path, kept = field_path(data, error["loc"], kind)
    if kind == "extra_forbidden":
        return _unknown_key(path, kept, data, root)
    if kind == UNKNOWN_TYPE:
        return _unknown_type(path, error)
    if kind == "literal_error" and kept and kept[-1] == "type":
        return _unknown_type(format_path(kept[:-1]) if kept[:-1] else "(top level)",
                             {"ctx": {"expected_tags": error["ctx"]["expected"], "tag": error.get("input")}})
    if kind == "union_tag_not_found":
        return _missing_type(f"{path}.type" if kept else "type", error.get("input"))
    if kind == "missing":
        return Problem(path, "missing required field", kind)
    if kind == "invalid_key":  # the loc ends with the key as text, which is no key of the data (None, 'None')
        path, kept = field_path(data, error["loc"][:-1])
        return Problem(path, f"key {error.get('input')!r} is not a name; keys must be strings"
                       + _split_number_hint(error.get("input"), _value_at(data, kept)), kind)
    found = error.get("input", _MISSING)
    if kind in _MAPPING_KINDS:
        message = "expected a mapping of keys to values"
    elif kind == "list_type":
        message = "expected a list"
        if isinstance(found, dict) and found and all(str(key).isdigit() for key in found):
            dotted = ".".join(str(part) for part in kept)
            message += f"; an override gives a list the config leaves out whole, as {dotted}=[...]"
    elif kind == "too_short":
        message = f"expected at least {error['ctx']['min_length']} entry"
    elif kind == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") in NAME_RULES:
        message = NAME_RULES[error["ctx"]["pattern"]]
    elif kind == "int_parsing_size":
        message = "expected a whole number; this one is larger than any setting takes"
    else:
        message = _lower_first(error["msg"].removeprefix("Value error, "))
    if found is not _MISSING and kind != "value_error":
        message += f"; found {short_repr(found)}"
    if kind == MODEL_FORM_ERROR and single_node(found):
        message += f"; one node is still a list: model: [{{type: {found['type']}, ...}}]"
    suggestion = None
    if kind == "literal_error" and isinstance(found, str):
        suggestion = close_match(found, _expected_names(error["ctx"]["expected"]))
    return Problem(path, message + did_you_mean(suggestion), kind, suggestion)


def _unknown_key(path: str, kept: list[Any], data: Any, root: type[BaseModel]) -> Problem:
    key = kept[-1] if kept else "?"
    model = _model_for(root, data, kept[:-1])
    allowed = sorted(model.model_fields) if model else []
    message = f"unknown key {key!r}"
    suggestion = close_match(str(key), allowed) if allowed else None
    if allowed:
        message += f"; expected one of: {', '.join(allowed)}"
    return Problem(path, message + did_you_mean(suggestion), "extra_forbidden", suggestion)


def _expected_names(expected: str) -> list[str]:
    """pydantic's ``"'float32' or 'float64'"`` (or ``"'a', 'b' or 'c'"``) as a list of names."""
    names = [name.strip().strip("'") for name in expected.replace(" or ", ",").split(",")]
    return [name for name in names if name]


def _unknown_type(path: str, error: dict[str, Any]) -> Problem:
    tags = _expected_names(error["ctx"]["expected_tags"])
    name = error["ctx"]["tag"]
    suggestion = close_match(str(name), tags)
    message = unknown_name_message("type", str(name), tags)
    where = f"{path}.type" if path != "(top level)" else "type"
    message += MISSING_PLUGIN
    return Problem(where, message, UNKNOWN_TYPE, suggestion, str(name))


def _missing_type(where: str, given: Any) -> Problem:
    """A component without ``type``; a key spelt close to it (``tyoe``, ``Type``) is named, as an unknown key
    elsewhere is, since pydantic reports only the missing tag."""
    message = "missing required key 'type' (which component this is)"
    keys = [key for key in given if isinstance(key, str)] if isinstance(given, dict) else []
    misspelt = [key for key in keys if close_match(key, ["type"])]
    if misspelt:
        message += f"; found the unknown key {misspelt[0]!r}{did_you_mean('type')}"
    return Problem(where, message, "union_tag_not_found", "type" if misspelt else None)


def _split_number_hint(key: Any, mapping: Any) -> str:
    """``{lr: 1,5}`` is ``{lr: 1, 5: null}`` in YAML: a decimal comma inside a flow mapping splits the number."""
    if not (isinstance(key, int) and not isinstance(key, bool) and isinstance(mapping, dict) and key in mapping
            and mapping[key] is None):
        return ""
    keys = list(mapping)
    before = keys[keys.index(key) - 1] if keys.index(key) else None
    number = mapping.get(before) if before is not None else None
    if not isinstance(number, int) or isinstance(number, bool):
        return ""
    return (f"; if {before}: {number},{key} was meant as one number, write it with a point: inside {{ }} a ',' "
            "separates entries")


def _value_at(data: Any, parts: Sequence[Any]) -> Any:
    """The value at ``parts`` in the raw config, or None where the path leads nowhere."""
    for part in parts:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def format_validation_error(exc: ValidationError, data: Any, root: type[BaseModel]) -> list[Problem]:
    """Every error of ``exc`` as a :class:`Problem`, in order, duplicates removed.

    A missing field whose misspelling is present (``optimiser`` for
    ``optimizer``) is reported once, as the unknown key with its suggestion.
    """
    problems = list(dict.fromkeys(describe_error(error, data, root) for error in exc.errors()))
    misspelt = {(tuple(p.parts[:-1]), p.suggestion) for p in problems if p.kind == "extra_forbidden" and p.suggestion}
    return _one_per_value([p for p in problems
                           if not (p.kind == "missing" and (tuple(p.parts[:-1]), p.parts[-1]) in misspelt)])


_ABOUT_KEYS = frozenset({"extra_forbidden", "missing", "union_tag_not_found", "invalid_key", UNKNOWN_TYPE})


def _one_per_value(problems: list[Problem]) -> list[Problem]:
    """The problems of one value that several kinds would take (``'latest'``, ``'best'`` or a step number) as
    one: pydantic gives one per kind, which read as two contradicting errors. The first suggestion is kept."""
    merged: list[Problem] = []
    first_at: dict[str, int] = {}
    for problem in problems:
        index = first_at.get(problem.path)
        if index is None or {merged[index].kind, problem.kind} & _ABOUT_KEYS:
            first_at.setdefault(problem.path, len(merged))
            merged.append(problem)
            continue
        earlier = merged[index]
        first, found = _without_found(earlier.message)
        second, found_too = _without_found(problem.message)
        if found != found_too:  # a mapping's key and its value, both wrong: two problems
            merged.append(problem)
            continue
        suggestion = earlier.suggestion or problem.suggestion
        merged[index] = Problem(problem.path, f"{first}, or {second}{found}" + did_you_mean(suggestion),
                                earlier.kind, suggestion)
    return merged


def _without_found(message: str) -> tuple[str, str]:
    """``("input should be ...", "; found 'x'")``: a message without its suggestion, and its quoted value apart."""
    message = re.sub(r" \(did you mean '[^']*'\?\)$", "", message)
    at = message.rfind("; found ")
    return (message, "") if at < 0 else (message[:at], message[at:])

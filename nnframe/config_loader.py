"""Read an experiment from a YAML file plus command-line overrides, and validate it.

The file and every override's value are read by :mod:`nnframe.bounded_yaml`
(plain YAML data, bounded in size, depth and alias expansion).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Union

import numpy as np
from pydantic import BaseModel, ValidationError

from nnframe.bounded_yaml import read_yaml, read_yaml_value
from nnframe.components import absolute_paths
from nnframe.config import ConfigModels
from nnframe.config_errors import KEY_KINDS, UNKNOWN_TYPE, Problem, format_path, format_validation_error
from nnframe.errors import MISSING_PLUGIN, ConfigError, short_repr
from nnframe.held_signals import signals_held
from nnframe.model_layout import layout_problems, model_layout
from nnframe.plugins import BrokenPlugin, Plugins
from nnframe.schedules import DEFAULT_SCHEDULE
from nnframe.strict_numbers import booleans_for_numbers
from nnframe.unset_none import unset_nones
from nnframe.yaml_scalars import dump_yaml


ConfigSource = Union[Path, str, Mapping[str, Any]]
MAPPING_NAME = "<mapping>"
WITHOUT_CALLBACKS = "callbacks=[]"
CONSTANT_SCHEDULE = f"optimizer.schedule={{type: {DEFAULT_SCHEDULE}}}"
UNKNOWN_SCHEDULE_PATH = "optimizer.schedule.type"


@dataclass
class LoadedConfig:
    """A validated experiment: the model instance, the resolved plain dict and where it came from."""

    experiment: BaseModel
    path: Path
    overrides: list[str] = field(default_factory=list)
    mapping: dict[str, Any] | None = None
    """The config as given, where it was given as a mapping rather than a file (``path`` is then ``<mapping>``)."""

    @property
    def source(self) -> ConfigSource:
        """What to load again for the same config with other overrides: the file, or the mapping."""
        return self.path if self.mapping is None else self.mapping

    @property
    def base_dir(self) -> Path:
        """The config file's directory, against which relative data paths resolve."""
        return Path(self.path).resolve().parent

    @property
    def data_path_fields(self) -> tuple[str, ...]:
        """The dataset's fields that hold file paths (``DatasetParams.relative_paths``)."""
        return getattr(type(self.experiment.data), "relative_paths", ())

    @property
    def resolved(self) -> dict[str, Any]:
        """The config as plain data, defaults filled in and the dataset's relative paths made absolute."""
        experiment = self.experiment
        with signals_held():
            resolved = _type_first(experiment.model_dump(mode="json", exclude=unset_nones(experiment) or None))
        data = resolved.get("data")
        for name in self.data_path_fields:
            if isinstance(data, dict) and name in data:
                data[name] = absolute_paths(data[name], self.base_dir)
        return resolved

    def to_yaml(self) -> str:
        return dump_yaml(self.resolved, sort_keys=False, allow_unicode=True)


def _type_first(value: Any) -> Any:
    """Dump order puts a component's ``type`` after its params; readers expect it first."""
    if isinstance(value, list):
        return [_type_first(item) for item in value]
    if isinstance(value, dict):
        ordered = {key: value[key] for key in ("type", "name", "inputs") if key in value}
        ordered.update(value)
        return {key: _type_first(item) for key, item in ordered.items()}
    return value


DEFAULT_SCHEDULE_PATH = ("optimizer", "schedule")
"""An override of a field in a schedule the file does not name (``optimizer.schedule.warmup_steps=100``)
sets it in the default constant schedule, whose ``type`` nobody wrote."""


MAX_PROBLEMS_SHOWN = 10
"""Problems a config error lists, the rest counted."""


def shown(override: str) -> str:
    """An override as messages quote it: cut to 120 characters, so a 100 kB value does not flood the terminal."""
    return short_repr(override, 120)


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``"model.0.out=20"`` -> ``(["model", 0, "out"], 20)``; the value is parsed as YAML, like the file."""
    if "=" not in text:
        raise ConfigError(f"override {shown(text)} must look like path=value, e.g. optimizer.lr=0.1")
    path_text, value_text = text.split("=", 1)
    parts = path_text.strip().split(".")
    if not path_text.strip() or any(not part.strip() for part in parts):
        raise ConfigError(f"override {shown(text)} has an empty path or an empty part in it; e.g. optimizer.lr=0.1")
    value = _override_value(text, value_text)
    return [_index_or_key(text, part.strip()) for part in parts], value


MAX_INDEX_DIGITS = 18


def _index_or_key(text: str, part: str) -> str | int:
    """A list index where ``part`` is ASCII digits (``²`` and other scripts' digits are keys, as YAML reads them)."""
    if not (part.isascii() and part.isdigit()):
        return part
    if len(part) > MAX_INDEX_DIGITS:
        raise ConfigError(f"override {shown(text)}: an index of {len(part)} digits is beyond any list")
    return int(part)


def _override_value(text: str, value_text: str) -> Any:
    if not value_text.strip():
        return ""
    return read_yaml_value(value_text, f"override {shown(text)}")


def apply_override(data: dict[str, Any], text: str) -> list[str | int]:
    """Set one override in ``data`` in place; returns its path. Unknown keys are left to validation.

    A list is indexed by number and must already have that index (a top-level
    section the file leaves out, indexed, is taken for ``callbacks``, a list);
    a missing section is created, so that validation reports an unknown one by
    name.
    """
    path, value = parse_override(text)
    target: Any = data
    for depth, key in enumerate(path[:-1]):
        if depth == 0 and isinstance(path[1], int) and target.get(_dict_key(target, key)) is None:  # or empty
            raise ConfigError(f"override {shown(text)}: {_dotted(path[:depth + 1])} is not in the config, so it has "
                              f"no entry {path[depth + 1]}; give it whole, as "
                              f"'{_dotted(path[:depth + 1])}=[{{...}}]'")
        target = _step_into(target, key, text, path[:depth])
        if path[:depth + 1] == list(DEFAULT_SCHEDULE_PATH) and not target:
            target["type"] = DEFAULT_SCHEDULE  # the default a file without a schedule runs under
    _set(target, path[-1], value, text, path[:-1])
    return path


def _made_from(data: Any, text: str) -> int | None:
    """Where in its path an override starts to make what ``data`` lacks: the index of the first key of the section
    it sets a field of that is not there, or ``None`` where that section is there whole (a malformed override,
    which :func:`apply_override` then names, makes it all)."""
    try:
        path, _ = parse_override(text)
    except ConfigError:
        return 0
    depth, section = _reach(data, path[:-1])
    if depth < len(path) - 1:
        return depth
    return None if isinstance(section, (dict, list)) else len(path) - 1


def _reach(data: Any, path: list[str | int]) -> tuple[int, Any]:
    """How many keys of ``path`` lead somewhere in ``data`` (a mapping's key, a list's index), and the value
    reached there."""
    for depth, key in enumerate(path):
        if isinstance(data, dict) and _dict_key(data, key) in data:
            data = data[_dict_key(data, key)]
        elif isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
            data = data[key]
        else:
            return depth, data
    return len(path), data


def _set(target: Any, key: str | int, value: Any, text: str, parent: list[str | int]) -> None:
    if isinstance(target, list):
        target[_index(target, key, text, parent)] = value
    elif isinstance(target, dict):
        target[_dict_key(target, key)] = value
    else:
        raise ConfigError(f"override {shown(text)}: {_dotted(parent)} is a value ({short_repr(target, 40)}), "
                          "not a section")


def _step_into(target: Any, key: str | int, text: str, parent: list[str | int]) -> Any:
    if isinstance(target, list):
        return target[_index(target, key, text, parent)]
    if isinstance(target, dict):
        key = _dict_key(target, key)
        if target.get(key) is None:
            target[key] = {}
        return target[key]
    raise ConfigError(f"override {shown(text)}: {_dotted(parent)} is a value ({short_repr(target, 40)}), not a section")


def _index(target: list[Any], key: str | int, text: str, parent: list[str | int]) -> int:
    if isinstance(key, int) and 0 <= key < len(target):
        return key
    indices = f"indices 0..{len(target) - 1}" if target else "no indices"
    raise ConfigError(f"override {shown(text)}: {_dotted(parent)} is a list of {len(target)} entries ({indices}); "
                      f"{key!r} is not an index into it")


def _dict_key(target: dict[Any, Any], key: str | int) -> Any:
    """Mapping keys are strings: ``model.0`` on a graph-form model means the key ``"0"``."""
    return key if key in target else str(key)


def _dotted(path: list[str | int]) -> str:
    return ".".join(str(part) for part in path) or "the config"


def validate_data(data: dict[str, Any], models: ConfigModels, source: str,
                  overrides: dict[tuple, str] | None = None, created: dict[tuple, int] | None = None,
                  types_before: dict[tuple[str, ...], Any] | None = None) -> BaseModel:
    """Validate a raw config mapping, then the model graph it describes.

    Every problem becomes one line of a :class:`ConfigError` naming ``source``
    (or the override that caused it), the field path, what was expected and
    what was found. ``created`` holds the paths of the overrides that made
    the section they set a field of, each with the index in its path of the
    first key it made; ``types_before`` the value each override of a ``type``
    replaced, by path (see :func:`_note_type_before`).
    """
    root = models.experiment
    blame = partial(_problems_error, source=source, overrides=overrides or {}, created=created or {},
                    types_before=types_before or {})
    try:
        experiment = root.model_validate(data)
    except ValidationError as exc:
        raise blame(format_validation_error(exc, data, root)) from None
    booleans = [Problem(format_path(path), message, "bool_for_number")
                for path, message in booleans_for_numbers(experiment, data)]
    if booleans:
        raise blame(booleans)
    layout = [Problem(path, message, "graph") for path, message in layout_problems(model_layout(experiment.model))]
    if layout:
        raise blame(layout)
    return experiment


def _problems_error(problems: list[Problem], source: str, overrides: dict[tuple, str],
                    created: dict[tuple, int], types_before: dict[tuple[str, ...], Any]) -> ConfigError:
    file = source
    source += with_overrides([text for path, text in overrides.items() if path and path[0] == "model"])
    origins = [_override_for(problem, overrides, created) or source + _overrides_inside(problem, overrides)
               for problem in problems]
    lines = [f"{origin}: {problem}" for origin, problem in zip(origins, problems)]
    problems, lines = _leftovers_merged(problems, lines, overrides, file, types_before)
    listed = len(lines)
    if len(lines) > MAX_PROBLEMS_SHOWN:  # a file that is no experiment at all (validate /etc/passwd)
        listed = MAX_PROBLEMS_SHOWN - 1
        lines[listed:] = [f"{source}: and {len(lines) - listed} more problems"]
    error = ConfigError("\n".join(lines), unknown_type=any(problem.kind == UNKNOWN_TYPE for problem in problems))
    error.file, error.path = source, problems[0].path
    error.unknown_types = [(line, problem.path, problem.subject) for line, problem in zip(lines[:listed], problems)
                           if problem.kind == UNKNOWN_TYPE]  # (its text, field path, type name): see _why_unknown
    return error


def _leftovers_merged(problems: list[Problem], lines: list[str], overrides: dict[tuple, str], source: str,
                      types_before: dict[tuple[str, ...], Any]) -> tuple[list[Problem], list[str]]:
    """The unknown keys an override that changes a section's ``type`` leaves behind (``data.type=npz`` on
    spiral's ``points_per_class``, ``classes``, ``noise``) as one line for the section, naming where they came
    from and saying to give the section whole; a close match to a key of the old type would only mislead."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, problem in enumerate(problems):
        retyping = _retyping_override(problem, overrides, types_before)
        if retyping is not None:
            groups.setdefault(retyping, []).append(i)
    if not groups:
        return problems, lines
    replaced: dict[int, str] = {}
    for (text, section), indices in groups.items():
        keys = ", ".join(repr(problems[i].parts[-1]) for i in indices)
        origins = ", ".join(dict.fromkeys(_origin_of(problems[i], text, overrides, source) for i in indices))
        takes = re.search(r"expected one of: (.*?)(?: \(did you mean|$)", problems[indices[0]].message)
        path, new_type = parse_override(text)
        whole = f"{_dotted(path[:-1])}={{type: {new_type}, ...}}"
        replaced[indices[0]] = (f"override {shown(text)}: {section} still holds {keys} from {origins}, which type "
                                f"{new_type!r} does not take{f' (it takes {takes.group(1)})' if takes else ''}; give "
                                f"the section whole instead, e.g. {shown(whole)}")
        replaced.update({i: "" for i in indices[1:]})
    kept = [i for i in range(len(problems)) if replaced.get(i, None) != ""]
    return [problems[i] for i in kept], [replaced.get(i, lines[i]) for i in kept]


def _retyping_override(problem: Problem, overrides: dict[tuple, str],
                       types_before: dict[tuple[str, ...], Any]) -> tuple[str, str] | None:
    """``(override text, section)`` where ``problem`` is a key unknown in a section whose ``type`` the last
    override that touches it changed (not set to the type it had, nor set where there was none)."""
    if problem.kind != "extra_forbidden" or len(problem.parts) < 2:
        return None
    parts = problem.parts
    for override_path, text in reversed(overrides.items()):
        set_path = [str(part) for part in override_path]
        if parts[:len(set_path)] == set_path or set_path[:len(parts)] == parts:
            return None  # the override set the unknown key itself
        if set_path[-1:] == ["type"] and set_path[:-1] == parts[:-1]:
            before = types_before.get(tuple(set_path), _NONE)
            if before is _NONE or before == parse_override(text)[1]:
                return None
            return text, problem.path[:-len(parts[-1]) - 1]
    return None


def _origin_of(problem: Problem, retyping: str, overrides: dict[tuple, str], source: str) -> str:
    """Where a key left behind by ``retyping`` came from: the last override before it that set the key or a
    section holding it, else the file."""
    texts = list(overrides.values())
    earlier = set(texts[:texts.index(retyping)]) if retyping in texts else set()
    for override_path, text in reversed(overrides.items()):
        if text in earlier and problem.parts[:len(override_path)] == [str(part) for part in override_path]:
            return f"override {shown(text)}"
    return source


_NONE = object()
"""No value: where an override of a ``type`` finds none to replace."""


def _note_type_before(types_before: dict[tuple[str, ...], Any], data: Any, text: str) -> None:
    """Before ``text`` is applied to ``data``: the ``type`` it replaces, by path, the first time since the section
    was last given whole (an override of a section, or of one above it, forgets what was noted inside it)."""
    try:
        path, _ = parse_override(text)
    except ConfigError:  # applying it names the mistake
        return
    key = tuple(str(part) for part in path)
    if key[-1:] == ("type",):
        types_before.setdefault(key, _value_at(data, path))
        return
    for noted in [noted for noted in types_before if noted[:len(key)] == key]:
        del types_before[noted]


def _value_at(data: Any, path: list[str | int]) -> Any:
    """The value at ``path`` in ``data``, or :data:`_NONE`."""
    depth, value = _reach(data, path)
    return value if depth == len(path) else _NONE


def _overrides_inside(problem: Problem, overrides: dict[tuple, str]) -> str:
    """`` (with override 'train.epochs=null')``: the overrides of fields inside a section a problem is about as a
    whole (a rule across its fields) that the problem names, which may be behind it though none alone can be
    blamed; the model's are named for every problem already."""
    parts = problem.parts
    inside = [text for path, text in overrides.items() if parts and parts[0] != "model" and len(path) > len(parts)
              and [str(part) for part in path[:len(parts)]] == parts
              and re.search(rf"\b{re.escape(str(path[len(parts)]))}\b", problem.message)]
    return with_overrides(inside)


def with_overrides(texts: list[str]) -> str:
    """`` (with overrides 'a=1', 'b=2')`` after a file blamed for a problem ``texts`` may be behind; ``""`` for
    none."""
    if not texts:
        return ""
    return f" (with override{'s' if len(texts) > 1 else ''} {', '.join(map(shown, texts))})"


def _override_for(problem: Problem, overrides: dict[tuple, str], created: dict[tuple, int]) -> str | None:
    """The override that caused ``problem``: it set the problem's field or a field inside it, it
    introduced the unknown key the problem is about, it set the ``type`` of a section in which a key is
    unknown or missing (``data.type=npz`` leaves ``points_per_class`` unknown and ``path`` missing), or it made
    the section a field is missing from (``train.init_from.strict=false`` alone) or the value at the problem's
    field (``data.drop.0=id`` makes a mapping where a list belongs, ``train.clip_grad_norm.x=1`` one where a
    number does, where the file has neither). The last such override wins, as it did when applied."""
    parts = problem.parts
    for override_path, text in reversed(overrides.items()):
        set_path = [str(part) for part in override_path]
        inside = parts[: len(set_path)] == set_path
        introduced = problem.kind == "extra_forbidden" and set_path[: len(parts)] == parts
        section = set_path[:-1]
        retyped = (problem.kind in KEY_KINDS and set_path[-1:] == ["type"] and len(parts) > len(section)
                   and parts[:len(section)] == section)
        started = problem.kind == "missing" and parts[:-1] == section and override_path in created
        made = (override_path in created and len(set_path) > len(parts) > created[override_path]
                and set_path[:len(parts)] == parts)
        if inside or introduced or retyped or started or made:
            return f"override {shown(text)}"
    return None


def plain_data(value: Any) -> Any:
    """``value`` as the data YAML would give: every mapping a new dict, every list or tuple a new list, numpy
    scalars as numbers, paths as strings; other values as they are, for validation to judge. The caller's
    objects are left alone."""
    if isinstance(value, Mapping):
        return {key: plain_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def load_not_to_train(source: ConfigSource, overrides: list[str] | tuple[str, ...], plugins: Plugins) -> LoadedConfig:
    """:func:`load_experiment` for an experiment that will not train (a loaded run, a gradient check): callbacks
    and the learning-rate schedule act in training only, so their plugins need not be installed. Callbacks are
    emptied after the given overrides, which may name them; a schedule of a type no plugin registers becomes the
    constant one. The result records the given overrides alone."""
    try:
        loaded = load_experiment(source, [*overrides, WITHOUT_CALLBACKS], plugins)
    except ConfigError as exc:
        if not (getattr(exc, "unknown_type", False) and getattr(exc, "path", None) == UNKNOWN_SCHEDULE_PATH):
            raise
        loaded = load_experiment(source, [*overrides, WITHOUT_CALLBACKS, CONSTANT_SCHEDULE], plugins)
    return replace(loaded, overrides=list(overrides))


def load_experiment(source: ConfigSource, overrides: list[str] | tuple[str, ...], plugins: Plugins) -> LoadedConfig:
    """Read, override and validate an experiment config: a YAML file, or its content as a mapping.

    A mapping is named ``<mapping>`` in messages, and its relative paths are
    relative to the working directory.
    """
    if isinstance(source, Mapping):
        try:
            path, data, mapping = Path(MAPPING_NAME), plain_data(source), dict(source)
        except RecursionError:
            raise ConfigError(f"{MAPPING_NAME}: nested too deeply to be a config (or it holds itself)") from None
    else:
        path, mapping = Path(source), None
        data = read_yaml(path)
    created = {tuple(parse_override(text)[0]): depth for text in overrides
               if (depth := _made_from(data, text)) is not None}
    applied, types_before = {}, {}
    for text in overrides:
        _note_type_before(types_before, data, text)
        where = tuple(apply_override(data, text))
        applied.pop(where, None)  # the last override of a path takes its place in the order they were applied
        applied[where] = text
    with signals_held():
        try:
            experiment = validate_data(data, ConfigModels(plugins), str(path), applied, created, types_before)
        except ConfigError as exc:
            if exc.unknown_type and plugins.broken:
                exc.args = (_why_unknown(str(exc), exc.unknown_types, plugins),)
            raise
    return LoadedConfig(experiment, path, list(overrides), mapping)


SECTION_KINDS = (("optimizer.schedule", "schedule"), ("model", "node"), ("loss", "loss"), ("optimizer", "optimizer"),
                 ("data", "dataset"), ("callbacks", "callback"))
"""The kind of component a section's ``type`` names, by the start of its field path."""


def _why_unknown(message: str, unknown_types: list[tuple[str, str, str]], plugins: Plugins) -> str:
    """A message's problems about unknown types, each with why a plugin's component of that kind and name was
    left out, or else the plugins that failed to load: the warning about them is easily passed over, and the usual
    cause of an unknown type, a plugin not installed, would send the user the wrong way. Each problem is found by
    its text, which may run over several lines."""
    for text, path, name in unknown_types:
        kind = next((kind for start, kind in SECTION_KINDS if path.startswith(start)), None)
        left_out = plugins.left_out.get((kind, name)) if kind else None
        suspects = [plugin for plugin in plugins.broken if kind is None or plugin.may_register(kind)]
        if left_out or suspects:
            told = text.replace(MISSING_PLUGIN, f"; {left_out or _may_register_it(suspects)}")
            message = message.replace(text, told, 1)
    return message


def _may_register_it(broken: list[BrokenPlugin]) -> str:
    origins = list(dict.fromkeys(plugin.origin for plugin in broken))
    which, whose = ("a plugin", "its") if len(origins) == 1 else ("plugins", "their")
    return (f"{which} that failed to load may register it: {', '.join(origins)} "
            f"(see `nnframe plugins` for {whose} error)")

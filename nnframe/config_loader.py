"""Read an experiment from a YAML file plus command-line overrides, and validate it.

YAML is loaded with the safe loader, bounded in size and alias expansion, so a
hostile file gives a clear error rather than running code or eating memory.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from nnframe.config import ConfigModels
from nnframe.model_layout import layout_problems, model_layout
from nnframe.config_errors import Problem, format_validation_error, short_repr
from nnframe.errors import ConfigError
from nnframe.plugins import Plugins

MAX_CONFIG_BYTES = 1_000_000
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 32


@dataclass
class LoadedConfig:
    """A validated experiment: the model instance, the resolved plain dict and where it came from."""

    experiment: BaseModel
    path: Path
    overrides: list[str] = field(default_factory=list)

    @property
    def resolved(self) -> dict[str, Any]:
        return _type_first(self.experiment.model_dump(mode="json"))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.resolved, sort_keys=False, allow_unicode=True)


def _type_first(value: Any) -> Any:
    """Dump order puts a component's ``type`` after its params; readers expect it first."""
    if isinstance(value, list):
        return [_type_first(item) for item in value]
    if isinstance(value, dict):
        ordered = {key: value[key] for key in ("type", "name", "inputs") if key in value}
        ordered.update(value)
        return {key: _type_first(item) for key, item in ordered.items()}
    return value


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping at the root of a YAML file; every failure is a :class:`ConfigError` naming the file.

    Only plain YAML data is accepted (the safe loader: no Python object tags);
    nesting deeper than ``MAX_DEPTH``, more than ``MAX_EXPANDED_NODES`` values
    once aliases are expanded, recursive aliases and duplicate keys are refused.
    """
    text = _read_text(path)
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError("the file is empty; expected a mapping with name, data, model, loss, optimizer "
                              "and train", file=str(path))
        _check_structure(node, path)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {_yaml_problem(exc)}", file=str(path)) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping of sections (name, data, model, ...), "
                          f"found {_kind_of(data)}", file=str(path))
    return data


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader with a nesting limit, so deep nesting is a clear error rather than a RecursionError."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"the data is nested more than {MAX_DEPTH} levels deep",
                                              self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _kind_of(value: Any) -> str:
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    return f"{names.get(type(value), type(value).__name__)} ({short_repr(value, 40)})"


def _read_text(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError("is a directory, not a config file", file=str(path))
        if not stat.S_ISREG(mode):
            raise ConfigError("is not a regular file (a FIFO, socket or device); expected a YAML text file",
                              file=str(path))
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("no such file", file=str(path)) from None
    except PermissionError:
        raise ConfigError("cannot be read (permission denied)", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror or exc}", file=str(path)) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"is larger than {MAX_CONFIG_BYTES} bytes; not a config file", file=str(path))
    if b"\x00" in raw:
        raise ConfigError("contains binary data (NUL bytes); expected a YAML text file", file=str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"is not UTF-8 text (byte {exc.start}); expected a YAML text file", file=str(path)) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    if "could not determine a constructor" in str(exc):
        return f"tag {problem.split('tag ')[-1]} is not allowed (only plain YAML data){where}"
    return f"{context}, {problem}{where}" if context else f"{problem}{where}"


def _check_structure(root: yaml.Node, path: Path) -> None:
    """Refuse duplicate keys, recursive aliases, and more than MAX_EXPANDED_NODES values or MAX_DEPTH levels
    once aliases are expanded (an alias bomb). One pass, without recursion, each node measured once."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            size[key] = min(1 + sum(size[id(c)] for c in children), MAX_EXPANDED_NODES + 1)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > MAX_EXPANDED_NODES or depth[key] > MAX_DEPTH:
                raise ConfigError(_expansion_message(size[key] > MAX_EXPANDED_NODES, node), file=str(path))
            continue
        if key in size:
            continue
        if key in on_path:
            raise ConfigError(f"the value {_where(node)} refers to itself through an alias (a recursive structure); "
                              "config data must be a tree", file=str(path))
        if isinstance(node, yaml.MappingNode):
            _check_duplicate_keys(node, path)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in size)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_duplicate_keys(node: yaml.MappingNode, path: Path) -> None:
    first: dict[tuple[str, str], yaml.Node] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        seen = first.setdefault((key_node.tag, key_node.value), key_node)
        if seen is not key_node:
            raise ConfigError(f"duplicate key {key_node.value!r} {_where(key_node)} (first {_where(seen)}); "
                              "a key may appear once in each mapping", file=str(path))


def _where(node: yaml.Node) -> str:
    return f"at line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


def _expansion_message(too_many: bool, node: yaml.Node) -> str:
    if too_many:
        return (f"the YAML expands to more than {MAX_EXPANDED_NODES} values once aliases are expanded "
                f"(an alias bomb?); refusing to load it")
    return (f"the YAML is nested more than {MAX_DEPTH} levels deep once aliases are expanded "
            f"({_where(node)}); refusing to load it")


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``"model.0.out=20"`` -> ``(["model", 0, "out"], 20)``; the value is parsed as YAML, like the file."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like path=value, e.g. optimizer.lr=0.1")
    path_text, value_text = text.split("=", 1)
    parts = path_text.strip().split(".")
    if not path_text.strip() or any(not part.strip() for part in parts):
        raise ConfigError(f"override {text!r} has an empty path or an empty part in it; e.g. optimizer.lr=0.1")
    value = _override_value(text, value_text)
    return [int(part) if part.strip().isdigit() else part.strip() for part in parts], value


def _override_value(text: str, value_text: str) -> Any:
    if not value_text.strip():
        return ""
    loader = _BoundedLoader(value_text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_structure(node, Path(f"override {text!r}"))
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML: {_yaml_problem(exc)}") from None
    finally:
        loader.dispose()


def apply_override(data: dict[str, Any], text: str) -> list[str | int]:
    """Set one override in ``data`` in place; returns its path. Unknown keys are left to validation.

    A list is indexed by number and must already have that index; a missing
    section is created, so that validation reports an unknown one by name.
    """
    path, value = parse_override(text)
    target: Any = data
    for depth, key in enumerate(path[:-1]):
        target = _step_into(target, key, text, path[:depth])
    _set(target, path[-1], value, text, path[:-1])
    return path


def _set(target: Any, key: str | int, value: Any, text: str, parent: list[str | int]) -> None:
    if isinstance(target, list):
        target[_index(target, key, text, parent)] = value
    elif isinstance(target, dict):
        target[_dict_key(target, key)] = value
    else:
        raise ConfigError(f"override {text!r}: {_dotted(parent)} is a value ({short_repr(target, 40)}), not a section")


def _step_into(target: Any, key: str | int, text: str, parent: list[str | int]) -> Any:
    if isinstance(target, list):
        return target[_index(target, key, text, parent)]
    if isinstance(target, dict):
        key = _dict_key(target, key)
        if target.get(key) is None:
            target[key] = {}
        return target[key]
    raise ConfigError(f"override {text!r}: {_dotted(parent)} is a value ({short_repr(target, 40)}), not a section")


def _index(target: list[Any], key: str | int, text: str, parent: list[str | int]) -> int:
    if isinstance(key, int) and 0 <= key < len(target):
        return key
    indices = f"indices 0..{len(target) - 1}" if target else "no indices"
    raise ConfigError(f"override {text!r}: {_dotted(parent)} is a list of {len(target)} entries ({indices}); "
                      f"{key!r} is not an index into it")


def _dict_key(target: dict[Any, Any], key: str | int) -> Any:
    """Mapping keys are strings: ``model.0`` on a graph-form model means the key ``"0"``."""
    return key if key in target else str(key)


def _dotted(path: list[str | int]) -> str:
    return ".".join(str(part) for part in path) or "the config"


def validate_data(data: dict[str, Any], models: ConfigModels, source: str,
                  overrides: dict[tuple, str] | None = None) -> BaseModel:
    """Validate a raw config mapping, then the model graph it describes.

    Every problem becomes one line of a :class:`ConfigError` naming ``source``
    (or the override that caused it), the field path, what was expected and
    what was found.
    """
    root = models.experiment
    try:
        experiment = root.model_validate(data)
    except ValidationError as exc:
        raise _problems_error(format_validation_error(exc, data, root), source, overrides or {}) from None
    layout = [Problem(path, message, "graph") for path, message in layout_problems(model_layout(experiment.model))]
    if layout:
        raise _problems_error(layout, source, overrides or {})
    return experiment


def _problems_error(problems: list[Problem], source: str, overrides: dict[tuple, str]) -> ConfigError:
    model_overrides = [text for path, text in overrides.items() if path and path[0] == "model"]
    if model_overrides:
        source += f" (with override{'s' if len(model_overrides) > 1 else ''} {', '.join(map(repr, model_overrides))})"
    origins = [_override_for(problem, overrides) or source for problem in problems]
    error = ConfigError("\n".join(f"{origin}: {problem}" for origin, problem in zip(origins, problems)))
    error.file, error.path = source, problems[0].path
    return error


def _override_for(problem: Problem, overrides: dict[tuple, str]) -> str | None:
    """The override that caused ``problem``: it set the problem's field or a field inside it, or it
    introduced the unknown key the problem is about. The last such override wins, as it did when applied."""
    parts = problem.parts
    for override_path, text in reversed(overrides.items()):
        set_path = [str(part) for part in override_path]
        inside = parts[: len(set_path)] == set_path
        introduced = problem.kind == "extra_forbidden" and set_path[: len(parts)] == parts
        if inside or introduced:
            return f"override {text!r}"
    return None


def load_experiment(path: Path | str, overrides: list[str] | tuple[str, ...], plugins: Plugins) -> LoadedConfig:
    """Read, override and validate an experiment config."""
    path = Path(path)
    data = read_yaml(path)
    applied = {tuple(apply_override(data, text)): text for text in overrides}
    experiment = validate_data(data, ConfigModels(plugins), str(path), applied)
    return LoadedConfig(experiment, path, list(overrides))

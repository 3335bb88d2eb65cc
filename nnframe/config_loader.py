"""Read an experiment from a YAML file plus command-line overrides, and validate it.

YAML is loaded with the safe loader, bounded in size and alias expansion, so a
hostile file gives a clear error rather than running code or eating memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from nnframe.config import ConfigModels
from nnframe.config_errors import format_validation_error
from nnframe.errors import ConfigError
from nnframe.plugins import Plugins

MAX_CONFIG_BYTES = 1_000_000
MAX_EXPANDED_NODES = 100_000


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
        return yaml.safe_dump(self.resolved, sort_keys=False)


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
    """The mapping at the root of a YAML file; every failure is a :class:`ConfigError` naming the file."""
    text = _read_text(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {_yaml_problem(exc)}", file=str(path)) from None
    if node is None:
        raise ConfigError("the file is empty; expected a mapping with name, data, model, loss, optimizer and train",
                          file=str(path))
    if _expanded_size(node, {}) > MAX_EXPANDED_NODES:
        raise ConfigError(f"the YAML expands to more than {MAX_EXPANDED_NODES} values through aliases "
                          "(an alias bomb?); refusing to load it", file=str(path))
    try:
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {_yaml_problem(exc)}", file=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping of sections, found {type(data).__name__}",
                          file=str(path))
    return data


def _read_text(path: Path) -> str:
    try:
        if path.is_dir():
            raise ConfigError("is a directory, not a config file", file=str(path))
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"is larger than {MAX_CONFIG_BYTES} bytes; not a config file", file=str(path))
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("no such file", file=str(path)) from None
    except PermissionError:
        raise ConfigError("cannot be read (permission denied)", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror}", file=str(path)) from None
    if b"\x00" in raw:
        raise ConfigError("contains binary data (NUL bytes); expected a YAML text file", file=str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"is not UTF-8 text (byte {exc.start}); expected a YAML text file", file=str(path)) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    if "could not determine a constructor" in str(exc):
        problem = f"tag {getattr(exc, 'problem', '').split('tag ')[-1]} is not allowed (only plain YAML data)"
    return f"{problem}{where}"


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values ``node`` stands for once aliases are expanded (memoised per node)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[key] = min(size, MAX_EXPANDED_NODES + 1)
    return memo[key]


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``"model.0.out=20"`` -> ``(["model", 0, "out"], 20)``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like path=value, e.g. optimizer.lr=0.1")
    path_text, value_text = text.split("=", 1)
    parts = path_text.strip().split(".")
    if not path_text.strip() or any(not part for part in parts):
        raise ConfigError(f"override {text!r} has an empty path; e.g. optimizer.lr=0.1")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML: {_yaml_problem(exc)}") from None
    return [int(part) if part.isdigit() else part for part in parts], value


def apply_override(data: dict[str, Any], text: str) -> list[str | int]:
    """Set one override in ``data`` in place; returns its path. Unknown keys are left to validation."""
    path, value = parse_override(text)
    target: Any = data
    for depth, key in enumerate(path[:-1]):
        target = _step_into(target, key, text, path[: depth + 1])
    last = path[-1]
    if isinstance(target, list):
        if not isinstance(last, int) or not 0 <= last < len(target):
            raise ConfigError(f"override {text!r}: index {last!r} is out of range; the list has {len(target)} entries")
        target[last] = value
    elif isinstance(target, dict):
        target[last] = value
    else:
        raise ConfigError(f"override {text!r}: {_dotted(path[:-1])} is a value, not a section")
    return path


def _step_into(target: Any, key: str | int, text: str, so_far: list[str | int]) -> Any:
    if isinstance(target, list):
        if not isinstance(key, int) or not 0 <= key < len(target):
            raise ConfigError(f"override {text!r}: {_dotted(so_far[:-1])} has {len(target)} entries; "
                              f"{key!r} is not an index into it")
        return target[key]
    if isinstance(target, dict):
        if key not in target or target[key] is None:
            target[key] = {}
        return target[key]
    raise ConfigError(f"override {text!r}: {_dotted(so_far[:-1])} is a value, not a section")


def _dotted(path: list[str | int]) -> str:
    return ".".join(str(part) for part in path) or "the config"


def validate_data(data: dict[str, Any], models: ConfigModels, source: str,
                  overrides: dict[tuple, str] | None = None) -> BaseModel:
    """Validate a raw config mapping; errors name ``source`` (or the override that caused them)."""
    root = models.experiment
    try:
        return root.model_validate(data)
    except ValidationError as exc:
        lines = []
        for path, message in format_validation_error(exc, data, root):
            origin = _override_for(path, overrides or {}) or source
            lines.append(f"{origin}: field {path}: {message}")
        raise ConfigError("\n".join(lines)) from None


def _override_for(path: str, overrides: dict[tuple, str]) -> str | None:
    for override_path, text in overrides.items():
        dotted = _dotted(list(override_path))
        normalised = path.replace("[", ".").replace("]", "")
        if normalised == dotted or normalised.startswith(dotted + "."):
            return f"override {text!r}"
    return None


def load_experiment(path: Path | str, overrides: list[str] | tuple[str, ...], plugins: Plugins) -> LoadedConfig:
    """Read, override and validate an experiment config."""
    path = Path(path)
    data = read_yaml(path)
    applied = {tuple(apply_override(data, text)): text for text in overrides}
    experiment = validate_data(data, ConfigModels(plugins), str(path), applied)
    return LoadedConfig(experiment, path, list(overrides))

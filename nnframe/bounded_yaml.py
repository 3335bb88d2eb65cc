"""Plain YAML data read with limits, so that a hostile or broken file gives a clear error.

The safe loader (no Python object tags), at most ``MAX_CONFIG_BYTES`` of
UTF-8 text, nesting at most ``MAX_DEPTH`` levels and at most
``MAX_EXPANDED_NODES`` values once aliases are expanded (an alias bomb), no
recursive aliases and no duplicate keys. Every failure is a
:class:`~nnframe.errors.ConfigError` naming the file (or the override) and,
where YAML knows it, the line and column.

Plain scalars are read as YAML 1.2 reads them, not as PyYAML's YAML 1.1:
``seed: 017`` is 17, not the octal 15; ``1:30`` is text, not the base-60 90;
``yes``, ``no``, ``on`` and ``off`` are text (a boolean field still takes
them); ``1e-3`` is a number. Octal and hexadecimal need ``0o`` and ``0x``,
and ``_`` may group digits (``10_000``).
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from nnframe.errors import ConfigError, close_match, did_you_mean, short_repr
from nnframe.yaml_scalars import use_yaml12_scalars

YAML_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
"""The line breaks YAML counts lines by (PyYAML's ``Reader``)."""
MAX_CONFIG_BYTES = 1_000_000
MAX_EXPANDED_NODES = 100_000
MAX_DEPTH = 32


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping at the root of a YAML file; every failure is a :class:`ConfigError` naming the file.

    Only plain YAML data is accepted (the safe loader: no Python object tags);
    nesting deeper than ``MAX_DEPTH``, more than ``MAX_EXPANDED_NODES`` values
    once aliases are expanded, recursive aliases and duplicate keys are refused.
    """
    text = _read_text(path)
    loader = _loader(text, lambda problem: ConfigError(f"not valid YAML: {problem}", file=str(path)))
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError("the file is empty; expected a mapping with name, data, model, loss, optimizer "
                              "and train", file=str(path))
        _check_structure(node, str(path))
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {_yaml_problem(exc)}", file=str(path)) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping of sections (name, data, model, ...), "
                          f"found {_kind_of(data)}", file=str(path))
    return unshared(data)


def unshared(value: Any) -> Any:
    """``value`` with every mapping and list its own object.

    YAML gives the nodes an alias repeats (``- *layer``) one shared object,
    so an override of one of them (``model.2.scale=0.1``) changed the others
    too. The expanded size is bounded by ``MAX_EXPANDED_NODES`` already.
    """
    if isinstance(value, dict):
        return {key: unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unshared(item) for item in value]
    return value


def read_yaml_value(text: str, source: str) -> Any:
    """One YAML value given on the command line (``source`` names it, e.g. ``override 'a=1'``), under the
    same limits as a file; ``None`` for an empty document."""
    loader = _loader(text, lambda problem: ConfigError(f"{source}: the value is not valid YAML: {problem}"))
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_structure(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: the value is not valid YAML: {_yaml_problem(exc)}") from None
    finally:
        loader.dispose()


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


use_yaml12_scalars(_BoundedLoader)


def _loader(text: str, error: Callable[[str], ConfigError]) -> _BoundedLoader:
    """A loader of ``text``, or ``error`` of a character YAML refuses, which PyYAML names by its code and offset
    alone (``unacceptable character #x000c``, a stray form feed, or ``#xdce9``, a byte of a command line that
    is not UTF-8)."""
    try:
        return _BoundedLoader(text)
    except yaml.reader.ReaderError as exc:
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        lines = YAML_LINE_BREAK.split(text[:exc.position])
        where = f"at line {len(lines)}, column {len(lines[-1]) + 1}"
        if 0xDC80 <= code <= 0xDCFF:  # Python's stand-in for such a byte
            raise error(f"the byte 0x{code - 0xDC00:02X} {where} is not UTF-8 text") from None
        kind = "control character" if unicodedata.category(chr(code)) == "Cc" else "character"
        raise error(f"the {kind} U+{code:04X} {where} is not allowed") from None


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
        raise ConfigError("no such file" + _instead(path), file=str(path)) from None
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


def _instead(path: Path) -> str:
    """What the user may have meant by a config that does not exist: an override put first, or a file of its
    folder spelt close to it."""
    if "=" in path.name:
        return "; the config file comes first, then the overrides: CONFIG path=value ..."
    if path.is_symlink():
        return f": it is a link to {os.readlink(path)!r}, which leads nowhere"
    try:
        siblings = [entry.name for entry in path.parent.iterdir()
                    if entry.suffix in (".yaml", ".yml") and entry.name != path.name]
    except OSError:
        return ""
    return did_you_mean(close_match(path.name, siblings))


_OPENERS = {"while parsing a flow mapping": "the '{'", "while parsing a flow sequence": "the '['",
            "while scanning a quoted scalar": "the quote"}


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    mark = getattr(exc, "problem_mark", None)
    where = f" at {_place(mark)}" if mark else ""
    if "could not determine a constructor" in str(exc):
        return f"tag {problem.split('tag ')[-1]} is not allowed (only plain YAML data){where}"
    message = f"{context}, {problem}{where}" if context else f"{problem}{where}"
    if "'\\t'" in problem:
        message += " (YAML indents with spaces, not tabs)"
    return _unclosed_opener(exc, context, problem, mark) + message


def _unclosed_opener(exc: yaml.YAMLError, context: str | None, problem: str, mark: Any) -> str:
    """Where the bracket or quote that YAML could not close was opened, when YAML gave up on a later line or at
    the end of the text.

    YAML reports such a slip where it gave up, often lines later or at the end
    of the file; the opener is where the fix belongs.
    """
    opened = getattr(exc, "context_mark", None)
    opener = _OPENERS.get(context or "")
    if opener is None or opened is None or mark is None:
        return ""
    if "end" not in problem and not (opened.line < mark.line and _starts_a_top_level_line(mark)):
        return ""  # within the brackets, as a missing ',' between items is
    return f"{opener} at {_place(opened)} is not closed: "


def _starts_a_top_level_line(mark: Any) -> bool:
    """Whether YAML gave up on a line that starts at column 0: the next section, which an open bracket ran into."""
    text = getattr(mark, "buffer", None)
    if not isinstance(text, str):
        return False
    lines = text.split("\n")
    return mark.line < len(lines) and lines[mark.line][:1] not in ("", " ", "\t")


def _place(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _check_structure(root: yaml.Node, source: str) -> None:
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
                raise ConfigError(_expansion_message(size[key] > MAX_EXPANDED_NODES, node), file=source)
            continue
        if key in size:
            continue
        if key in on_path:
            raise ConfigError(f"the value {_where(node)} refers to itself through an alias (a recursive structure); "
                              "config data must be a tree", file=source)
        if isinstance(node, yaml.MappingNode):
            _check_duplicate_keys(node, source)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in size)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_duplicate_keys(node: yaml.MappingNode, source: str) -> None:
    first: dict[tuple[str, str], yaml.Node] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        seen = first.setdefault((key_node.tag, key_node.value), key_node)
        if seen is not key_node:
            raise ConfigError(f"duplicate key {key_node.value!r} {_where(key_node)} (first {_where(seen)}); "
                              "a key may appear once in each mapping", file=source)


def _where(node: yaml.Node) -> str:
    return f"at line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


def _expansion_message(too_many: bool, node: yaml.Node) -> str:
    if too_many:
        return (f"the YAML expands to more than {MAX_EXPANDED_NODES} values once aliases are expanded "
                f"(an alias bomb?); refusing to load it")
    return (f"the YAML is nested more than {MAX_DEPTH} levels deep once aliases are expanded "
            f"({_where(node)}); refusing to load it")

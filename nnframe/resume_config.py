"""What may differ between a run's saved ``config.yaml`` and the config it is resumed with.

A resume names a config file again (``nnframe train CONFIG --resume RUN``).
When that file plus this command's overrides resolve to another config than
the run's own, the usual cause is an override of the first start that was
not repeated, or a file edited since. So:

* the training length (``train.epochs``, ``train.max_steps``), logging
  (``log``) and checkpointing (``checkpoint``) may change, wherever the new
  value comes from;
* the experiment ``name``, the ``seed``, the ``model``, ``train.dtype`` and
  ``optimizer.type`` never change: the name names the run's directory, the
  checkpoints hold the model's arrays in that dtype, that optimizer's state
  and every random stream (a new seed would only draw another validation
  split);
* anything else may change only through an override given with this resume,
  a deliberate change; an override of a component's ``type`` covers the
  whole component, whose fields change with it.

Every other difference is refused, naming each field and both values.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnframe.config_errors import format_path
from nnframe.config_loader import parse_override
from nnframe.errors import ConfigError, UserError, short_repr
from nnframe.yaml_scalars import dump_yaml

TRAINING_LENGTH = (("train", "epochs"), ("train", "max_steps"))
"""Free to change, but part of the run "as it was": advice to continue it names them where they differ."""
FREE_TO_CHANGE = (*TRAINING_LENGTH, ("log",), ("checkpoint",))
NEVER_CHANGES = (("name",), ("seed",), ("model",), ("train", "dtype"), ("train", "batch_size"), ("train", "drop_last"),
                 ("optimizer", "type"))
SHOWN = 5
ADDED_SINCE: dict[str, Any] = {"callbacks": []}
"""Sections newer than some runs, with the value a run's config.yaml without them means."""

FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Change:
    """One field whose value differs: where, the run's value and the value now (``None`` where absent)."""

    path: FieldPath
    saved: Any
    now: Any

    def describe(self) -> str:
        return f"{format_path(self.path)}: {_shown(self.saved)} in the run, {_shown(self.now)} now"


def _shown(value: Any) -> str:
    """A value for a message, as the config writes it (``false``, ``null``, a section as ``{type: sgd, lr: 0.1}``);
    a string (a data path, whose end tells most) whole up to a long line."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (dict, list)):
        text = _flow_yaml(value)
        return text if len(text) <= 120 else text[:max(text.rfind(", ", 0, 115), 20)] + ", ..."
    return short_repr(value, 200 if isinstance(value, str) else 40)


Resolve = Callable[[list[str]], dict[str, Any]]
"""The config file resolved with these overrides (raises :class:`UserError` where they do not validate)."""


def resume_changes(saved: dict[str, Any], now: dict[str, Any], overrides: Sequence[str],
                   config_file: Path, run_dir: Path, resolve: Resolve | None = None) -> list[Change]:
    """The differences a resume accepts; raises :class:`ConfigError` listing those it refuses.

    ``overrides`` are this resume's. A refusal gives the overrides that would
    bring the refused fields back to the run's values, tried with ``resolve``
    where it is given (see :func:`first_that_works`).
    """
    renamed_here = any(_path(text) == ("name",) for text in overrides)
    if saved.get("name") != now.get("name") and not renamed_here:  # another experiment's file: the cause first
        raise ConfigError(f"cannot resume run {run_dir} with this config: the run is experiment "
                          f"{_shown(saved.get('name'))} and the config {_shown(now.get('name'))}; resume it with its "
                          f"own config, {Path(run_dir) / 'config.yaml'}")
    changes = differences({**{key: value for key, value in ADDED_SINCE.items() if key in now}, **saved}, now)
    given = [_path(text) for text in overrides]
    given += [path[:-1] for path in given if path[-1:] == ("type",)]
    refused = [c for c in changes if _under(c.path, NEVER_CHANGES)
               or not (_under(c.path, FREE_TO_CHANGE) or _under(c.path, given))]
    if refused:
        listed = "; ".join(change.describe() for change in refused[:SHOWN])
        more = f" (and {len(refused) - SHOWN} more)" if len(refused) > SHOWN else ""
        restore = _restore_advice(saved, now, refused, overrides, resolve) + _length_advice(changes, given)
        if any(_under(c.path, NEVER_CHANGES) for c in refused):
            advice = ("A run keeps its name, seed, model, train.dtype, train.batch_size, train.drop_last and "
                      "optimizer.type (its directory and checkpoints, with their place in the epoch, are made for "
                      f"them); start a new run to change them. {restore}")
        else:
            advice = f"{restore}; to change a value on purpose, give it as an override with --resume"
        raise ConfigError(f"cannot resume run {run_dir} with this config: {listed}{more}. {advice}",
                          file=str(config_file))
    return changes


def _restore_advice(saved: dict[str, Any], now: dict[str, Any], refused: list[Change], overrides: Sequence[str],
                    resolve: Resolve | None) -> str:
    """What to do to resume as the run was: leave out this command's overrides of refused fields where that
    is enough, else add the overrides that bring them back (after the command's own, which they override)."""
    clashing = [text for text in overrides if any(_under(c.path, [_path(text)]) or _under(_path(text), [c.path])
                                                  for c in refused)]
    if clashing and resolve is not None:
        rest = [text for text in overrides if text not in clashing]
        if first_that_works([rest], lambda candidate: _restores(saved, resolve(candidate), refused)) is not None:
            return f"To continue the run as it was, leave out: {shlex.join(clashing)}"
    back = _way_back(saved, now, refused, overrides, resolve)
    overriding = f" (they override {shlex.join(clashing)})" if clashing else ""
    return f"To continue the run as it was, add: {shlex.join(back)}{overriding}"


def _length_advice(changes: list[Change], given: list[FieldPath]) -> str:
    """`` (train.epochs is 50000 in the run and 300 now: add train.epochs=50000 to keep its length)``: a training
    length that differs, not by this command's overrides, may be a first override not repeated, which a resume
    takes as a new length rather than refusing."""
    lengths = [c for c in changes if _under(c.path, TRAINING_LENGTH) and not _under(c.path, given)]
    if not lengths:
        return ""
    differ = ", ".join(f"{format_path(c.path)} is {_shown(c.saved)} in the run and {_shown(c.now)} now"
                       for c in lengths)
    keep = shlex.join(as_override(c.path, c.saved) for c in lengths)
    return f" ({differ}: add {keep} to keep its length)"


def _way_back(saved: dict[str, Any], now: dict[str, Any], refused: list[Change], overrides: Sequence[str],
              resolve: Resolve | None) -> list[str]:
    """Overrides that bring the refused fields back to the run's values: one per field where that resolves to
    them, else their top-level sections whole."""
    per_field = [text for text in overrides_to(now, saved) if any(_under(c.path, [_path(text)]) for c in refused)]
    sections = [as_override((key,), saved[key]) for key in dict.fromkeys(c.path[0] for c in refused) if key in saved]

    def brings_back(extra: list[str]) -> bool:
        return resolve is None or _restores(saved, resolve([*overrides, *extra]), refused)

    back = first_that_works([per_field, sections], brings_back)
    return sections if back is None else back


def _restores(saved: dict[str, Any], config: dict[str, Any], refused: list[Change]) -> bool:
    """Whether ``config`` has the run's values in every refused field."""
    return not any(_under(change.path, [c.path]) for change in differences(saved, config) for c in refused)


def overrides_to(base: dict[str, Any], target: dict[str, Any]) -> list[str]:
    """The overrides that turn config ``base`` into ``target``: one per field that differs.

    A component whose ``type`` differs is given whole, since its fields
    differ with its type (a step schedule's ``step_size`` is no field of a
    cosine one).
    """
    changes = differences(base, target)
    retyped = [c.path[:-1] for c in changes if c.path[-1:] == ("type",) and len(c.path) > 1]
    found: list[str] = []
    for change in changes:
        whole = next((path for path in retyped if _under(change.path, [path])), None)
        text = as_override(whole, _at(target, whole)) if whole else as_override(change.path, change.now)
        if text not in found:
            found.append(text)
    return found


def first_that_works(candidates: Sequence[list[str]], works: Callable[[list[str]], bool]) -> list[str] | None:
    """The first list of overrides that ``works``; a list that does not validate does not work.

    Overrides one field at a time are the shortest, but a field in a part
    the config file leaves out (a schedule it never names, a graph without
    ``inputs``) cannot be set alone; its whole section can.
    """
    for candidate in candidates:
        try:
            if works(candidate):
                return candidate
        except UserError:
            continue
    return None


def as_override(path: FieldPath, value: Any) -> str:
    """``model.0.out=20``: a command-line override setting ``path`` to ``value``, written as YAML."""
    return f"{'.'.join(map(str, path))}={_flow_yaml(value)}"


def _flow_yaml(value: Any) -> str:
    """``value`` as one line of YAML, as an override or a config's flow style writes it."""
    text = dump_yaml(value, default_flow_style=True, width=float("inf"), sort_keys=False,
                     allow_unicode=True).strip()
    return text.removesuffix(chr(10) + "...").strip()


def _at(config: Any, path: FieldPath) -> Any:
    for key in path:
        config = config[key]
    return config


def _path(override: str) -> FieldPath:
    return tuple(parse_override(override)[0])


def differences(saved: Any, now: Any, path: FieldPath = ()) -> list[Change]:
    """Every leaf where two plain configs differ, in the saved config's order, new keys last."""
    if isinstance(saved, dict) and isinstance(now, dict):
        keys = [*saved, *(key for key in now if key not in saved)]
        return [c for key in keys for c in differences(saved.get(key), now.get(key), (*path, key))]
    if isinstance(saved, list) and isinstance(now, list) and len(saved) == len(now):
        return [c for k, (a, b) in enumerate(zip(saved, now)) for c in differences(a, b, (*path, k))]
    return [] if saved == now else [Change(path, saved, now)]


def _under(path: FieldPath, prefixes: Sequence[FieldPath]) -> bool:
    return any(path[:len(prefix)] == prefix for prefix in prefixes)

"""nnframe from Python: what ``nnframe train`` and ``nnframe validate`` do, for notebooks and scripts.

A config is a YAML file or the same content as a mapping; overrides are the
command line's ``key=value`` strings. Mistakes raise the errors the command
line reports (:class:`~nnframe.errors.UserError` and its kinds), with the same
messages.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nnframe.build import Experiment
    from nnframe.launch import RunResult

Config = str | os.PathLike[str] | Mapping[str, Any]


def run_experiment(config: Config, overrides: Sequence[str] | None = (), *, runs_dir: str | os.PathLike[str] = "runs",
                   resume: str | os.PathLike[str] | None = None, quiet: bool = False,
                   on_note: Callable[[str], None] | None = None) -> RunResult:
    """Train an experiment into a new run directory (or go on with the run in ``resume``), as ``nnframe train``.

    Returns the :class:`~nnframe.launch.RunResult`: ``run_dir``, ``summary``
    (what ``summary.json`` holds), ``notes`` and the trained ``model``. Each
    note is also passed to ``on_note`` as it arises. Installed plugins are
    loaded as for the command line.
    """
    from nnframe.launch import train
    from nnframe.plugins import get_plugin_manager

    return train(_source(config), _overrides(overrides), get_plugin_manager(), runs_dir=Path(runs_dir).expanduser(),
                 resume=None if resume is None else Path(resume).expanduser(), quiet=quiet, on_note=on_note)


def prepare_experiment(config: Config, overrides: Sequence[str] | None = ()) -> Experiment:
    """Check a config and build what it describes, writing nothing, as ``nnframe validate``.

    Returns the :class:`~nnframe.build.Experiment`: ``dataset``, ``model``
    (its parameters initialised), ``loss``, ``optimizer`` and the resolved
    ``config``, for training by hand or looking at the data.
    """
    from nnframe.launch import prepare
    from nnframe.plugins import get_plugin_manager

    return prepare(_source(config), _overrides(overrides), get_plugin_manager())


def _source(config: Config) -> Path | Mapping[str, Any]:
    if isinstance(config, Mapping):
        return config
    if not isinstance(config, (str, os.PathLike)):
        raise TypeError(f"a config is a YAML file's path or its content as a mapping; found {type(config).__name__}")
    return Path(config).expanduser()


def _overrides(overrides: Sequence[str] | None) -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, str):
        raise TypeError(f"overrides are a list of 'key=value' strings; found the one string {overrides!r}, "
                        f"so give [{overrides!r}]")
    if isinstance(overrides, Mapping):
        raise TypeError("overrides are a list of 'key=value' strings, not a mapping; give "
                        "[f'{key}={value}' for key, value in overrides.items()], or put the values in the config")
    return list(overrides)

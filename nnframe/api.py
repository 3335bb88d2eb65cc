"""nnframe from Python: what ``nnframe train`` and ``nnframe validate`` do, and a trained run's model, for notebooks
and scripts.

A config is a YAML file or the same content as a mapping; overrides are the
command line's ``key=value`` strings. Mistakes raise the errors the command
line reports (:class:`~nnframe.errors.UserError` and its kinds), with the same
messages.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nnframe.build import Experiment
    from nnframe.launch import RunResult
    from nnframe.plugins import Plugins
    from nnframe.trained_run import TrainedRun

Config = str | os.PathLike[str] | Mapping[str, Any]


def run_experiment(config: Config, overrides: Sequence[str] | None = (), *,
                   runs_dir: str | os.PathLike[str] | None = None,
                   resume: str | os.PathLike[str] | None = None, quiet: bool = False,
                   on_note: Callable[[str], None] | None = None, plugins: Plugins | None = None) -> RunResult:
    """Train an experiment into a new run directory under ``runs_dir`` (``runs`` by default), or go on with the
    run in ``resume`` (where ``runs_dir``, if given, must be the one it lies in), as ``nnframe train``.

    Returns the :class:`~nnframe.launch.RunResult`: ``run_dir``, ``summary``
    (what ``summary.json`` holds), ``notes`` and the trained ``model``. Each
    note is also passed to ``on_note`` as it arises. ``plugins`` is a manager
    from :func:`nnframe.get_plugin_manager`, which may hold components defined
    in the notebook; by default the installed plugins are loaded, as for the
    command line, and one that fails to load is named in a warning.
    """
    from nnframe.errors import UserError
    from nnframe.launch import train
    from nnframe.tracking import lies_in

    if on_note is not None and not callable(on_note):
        raise TypeError(f"on_note takes a function of one note (a str), such as print; found {on_note!r}")
    resume_dir = None if resume is None else Path(resume).expanduser()
    if resume_dir is not None and runs_dir is not None and not lies_in(resume_dir, Path(runs_dir).expanduser()):
        raise UserError(f"runs_dir {str(runs_dir)!r} is not where run {str(resume_dir)!r} lies; a resume stays in "
                        "the run's directory, so leave runs_dir out")
    return train(_source(config), _overrides(overrides), _plugins(plugins),
                 runs_dir=Path("runs" if runs_dir is None else runs_dir).expanduser(), resume=resume_dir, quiet=quiet,
                 on_note=on_note)


def prepare_experiment(config: Config, overrides: Sequence[str] | None = (), *,
                       plugins: Plugins | None = None) -> Experiment:
    """Check a config and build what it describes, writing nothing, as ``nnframe validate``.

    Returns the :class:`~nnframe.build.Experiment`: ``dataset``, ``model``
    (its parameters initialised), ``loss`` (checking every batch's targets,
    as a loss made by hand does), ``optimizer`` and the resolved ``config``,
    for training by hand or looking at the data. ``plugins`` as for
    :func:`run_experiment`.
    """
    from nnframe.launch import prepare

    experiment = prepare(_source(config), _overrides(overrides), _plugins(plugins))
    experiment.loss.validate_targets = True  # a training run checks the data once; a hand's batches are its own
    return experiment


def load_run(run_dir: str | os.PathLike[str], checkpoint: str | int = "latest", overrides: Sequence[str] | None = (),
             *, plugins: Plugins | None = None) -> TrainedRun:
    """A run's trained model, from its newest valid checkpoint, ``"best"`` or the checkpoint of a step number.

    Returns a :class:`~nnframe.trained_run.TrainedRun`: ``model`` (in eval
    mode), ``experiment`` as :func:`prepare_experiment` builds it from the
    run's ``config.yaml`` (its data is read again; ``overrides`` such as
    ``data.path=...`` find data that moved), ``step``, ``checkpoint`` and
    ``summary``. Writes nothing, so a run still training may be loaded.
    ``plugins`` as for :func:`run_experiment`: the run's own must be there.
    """
    from nnframe.trained_run import load_trained_run

    return load_trained_run(Path(run_dir).expanduser(), checkpoint, _overrides(overrides), _plugins(plugins))


def _plugins(plugins: Plugins | None) -> Plugins:
    from nnframe.plugins import Plugins, get_plugin_manager

    if isinstance(plugins, Plugins):
        return plugins
    if plugins is not None:
        raise TypeError(f"plugins= takes a plugin manager, nnframe.get_plugin_manager(plugins=[(name, plugin)]); "
                        f"found {type(plugins).__name__}")

    manager = get_plugin_manager()
    for broken in manager.broken:
        warnings.warn(f"nnframe: {broken.describe()}", stacklevel=3)
    return manager


def _source(config: Config) -> Path | Mapping[str, Any]:
    if isinstance(config, Mapping):
        return config
    if not isinstance(config, (str, os.PathLike)):
        raise TypeError(f"a config is a YAML file's path or its content as a mapping; found {type(config).__name__}")
    if isinstance(config, str) and "\n" in config:
        raise TypeError("a config is a YAML file's path or its content as a mapping; this string holds lines, as "
                        "YAML text does: give yaml.safe_load(text)")
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
    try:
        given = list(overrides)
    except TypeError:
        raise TypeError(f"overrides are a list of 'key=value' strings; found {type(overrides).__name__} "
                        f"{overrides!r}") from None
    for item in given:
        if not isinstance(item, str):
            raise TypeError(f"overrides are 'key=value' strings; found {type(item).__name__} {item!r} among them")
    return given

"""A trained run's model back from its checkpoint, for predictions and plots after ``nnframe train``.

The run's own ``config.yaml`` builds the experiment again (the data is read,
as the model's input shapes come from it), the checkpoint's fingerprint must
match the model built, and the saved parameters are copied into it. Nothing
is written and the run is not locked, so a run still training can be looked
at too.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnframe.build import build_experiment
from nnframe.checkpoint import Checkpointer, load_params
from nnframe.checkpoint_files import checkpoint_of
from nnframe.config_loader import load_not_to_train
from nnframe.data import as_trained
from nnframe.errors import DataError, UserError
from nnframe.launch import missing_plugins
from nnframe.tracking import RunDirectory

if TYPE_CHECKING:
    from nnframe.build import Experiment
    from nnframe.plugins import Plugins

@dataclass
class TrainedRun:
    """A run's experiment with the parameters of one of its checkpoints, the model in eval mode.

    ``experiment`` is what :func:`nnframe.prepare_experiment` gives for the
    run's config (``dataset``, ``model``, ``loss``, ``settings``); ``step``
    is the checkpoint's optimizer step, ``checkpoint`` its JSON file, and
    ``summary`` what the run's ``summary.json`` holds (empty while it has none).
    """

    run_dir: Path
    experiment: Experiment
    step: int
    checkpoint: Path
    summary: dict[str, Any]

    @property
    def model(self) -> Any:
        return self.experiment.model

    def __repr__(self) -> str:
        return f"TrainedRun({str(self.run_dir)!r}, step={self.step}, checkpoint={self.checkpoint.name!r})"


def load_trained_run(run_dir: Path, checkpoint: str | int, overrides: list[str], plugins: Plugins) -> TrainedRun:
    """The run in ``run_dir`` at ``checkpoint``: ``"latest"`` (the newest valid one), ``"best"`` or a step;
    ``overrides`` change its config as for a resume (``data.path=...`` where the data moved)."""
    run = RunDirectory.open(run_dir, for_writing=False)
    saved = checkpoint_of(run.checkpoints, checkpoint, _warn)
    experiment = _experiment(run, overrides, plugins)
    model = experiment.model
    checker = Checkpointer(run.checkpoints, experiment.settings.checkpoint, experiment.config)
    checker.check_model(saved, model, resuming=False)
    built = experiment.dataset
    experiment.dataset, changed = as_trained(built, saved.scaling)  # refuses standardize turned over, first
    if checker.data_differs_from(saved, built):
        _warn(f"the data of run {str(run.path)!r} is not what it trained on (its digest differs, its size is the "
              "same): experiment.dataset holds the data as it is now")
    if changed is not None:
        _warn(f"run {str(run.path)!r}: {changed}, which dataset.scale_inputs also uses")
    load_params(saved, model)
    model.eval()
    return TrainedRun(Path(run_dir), experiment, saved.step, saved.path, _summary(run))


def _experiment(run: RunDirectory, overrides: list[str], plugins: Plugins) -> Experiment:
    """The run's experiment built again, without its callbacks, its loss checking every batch's targets as one
    made by hand does."""
    try:
        experiment = build_experiment(load_not_to_train(run.config_path, overrides, plugins), plugins,
                                      initial_params=False)
    except DataError as exc:
        if "not found" in str(exc) and not overrides:
            fields = ", ".join(f"'data.{name}=...'" for name in _missing_data_files(run) or ["path"])
            exc.args = (f"{exc}; where the data moved, give load_run overrides=[{fields}] with the absolute "
                        "path it has now",)
        raise
    except UserError as exc:
        if getattr(exc, "unknown_type", False) and (missing := missing_plugins(run.path, plugins, "load")):
            exc.args = (f"{exc}. The run was trained with {'; '.join(missing)}",)
        raise
    experiment.loss.validate_targets = True
    return experiment


def _missing_data_files(run: RunDirectory) -> list[str]:
    """The dataset's fields that name a file no longer there (``config.yaml`` holds data paths absolute)."""
    data = run.read_config().get("data")
    if not isinstance(data, dict):
        return []
    return [name for name, value in data.items()
            if isinstance(value, str) and os.path.isabs(value) and not os.path.exists(value)]


def _summary(run: RunDirectory) -> dict[str, Any]:
    try:
        return run.read_summary() or {}
    except UserError as exc:  # the checkpoints are the run's state; its summary only reports on it
        _warn(f"{exc}; the summary is left empty")
        return {}


def _warn(message: str) -> None:
    warnings.warn(f"nnframe: {message}", stacklevel=_caller_level())


def _caller_level() -> int:
    """The stack level of the first frame outside nnframe, so that a warning names the user's line."""
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_globals.get("__name__", "") + ".").startswith("nnframe."):
        frame, level = frame.f_back, level + 1
    return level

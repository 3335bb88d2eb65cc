"""A trained run's model back from its checkpoint, for predictions and plots after ``nnframe train``.

The run's own ``config.yaml`` builds the experiment again (the data is read,
as the model's input shapes come from it), the checkpoint's fingerprint must
match the model built, and the saved parameters are copied into it. Nothing
is written and the run is not locked, so a run still training can be looked
at too.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnframe.build import build_experiment
from nnframe.checkpoint import Checkpointer
from nnframe.checkpoint_files import (BEST, STEP_FILE, Checkpoint, candidates, latest_checkpoint, read_checkpoint,
                                      step_name)
from nnframe.config_loader import load_experiment
from nnframe.errors import CheckpointError
from nnframe.tracking import RunDirectory

if TYPE_CHECKING:
    from nnframe.build import Experiment
    from nnframe.plugins import Plugins

LATEST = "latest"


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


def load_trained_run(run_dir: Path, checkpoint: str | int, plugins: Plugins) -> TrainedRun:
    """The run in ``run_dir`` at ``checkpoint``: ``"latest"`` (the newest valid one), ``"best"`` or a step."""
    run = RunDirectory.open(run_dir)
    saved = _checkpoint(run.checkpoints, checkpoint)
    experiment = build_experiment(load_experiment(run.config_path, [], plugins), plugins)
    model = experiment.model
    Checkpointer(run.checkpoints, experiment.settings.checkpoint, experiment.config).check_model(saved, model)
    for name, param in zip(model.param_names, model.params):
        param[...] = saved.params[name]
    model.eval()
    return TrainedRun(Path(run_dir), experiment, saved.step, saved.path, run.read_summary() or {})


def _checkpoint(directory: Path, which: str | int) -> Checkpoint:
    if which == LATEST:
        if not candidates(directory):
            raise CheckpointError(f"run {str(directory.parent)!r} has no checkpoint yet: it stopped, or is still "
                                  "training, before its first")
        return latest_checkpoint(directory, lambda message: warnings.warn(f"nnframe: {message}", stacklevel=4))
    if which == BEST:
        path = directory / f"{BEST}.json"
        missing = "it has no best checkpoint (checkpoint.best_metric was null, or it had no validation set)"
    elif isinstance(which, int) and not isinstance(which, bool) and which >= 0:
        path = directory / f"{step_name(which)}.json"
        missing = f"it has no checkpoint of step {which}; it has {_steps(directory)}"
    else:
        raise CheckpointError(f"checkpoint {which!r}: give 'latest', 'best' or a step number")
    if not path.is_file():
        raise CheckpointError(f"run {str(directory.parent)!r}: {missing}")
    return read_checkpoint(path)


def _steps(directory: Path) -> str:
    steps = sorted(int(match.group(1)) for path in directory.glob("step-*.json")
                   if (match := STEP_FILE.match(path.name)))
    return f"steps {', '.join(map(str, steps))}" if steps else "no step checkpoint"

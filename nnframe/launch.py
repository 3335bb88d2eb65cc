"""Launch a training run: config -> live objects -> run directory -> trainer -> summary.

Everything that can be wrong with the user's input is checked before the run
directory is created, so a bad config or data file leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from nnframe.build import Experiment, build_experiment
from nnframe.config_loader import LoadedConfig, load_experiment
from nnframe.plugins import Plugins
from nnframe.progress import make_progress
from nnframe.run import RunContext
from nnframe.tracking import RunDirectory, environment_versions
from nnframe.train import Trainer


@dataclass
class RunResult:
    """Where a run went and how it ended."""

    run_dir: Path
    summary: dict[str, Any]


def prepare(config_path: Path, overrides: list[str], plugins: Plugins) -> Experiment:
    """Validate the config and build everything it describes, touching no files."""
    loaded: LoadedConfig = load_experiment(config_path, overrides, plugins)
    return build_experiment(loaded, plugins)


def train(config_path: Path, overrides: list[str], plugins: Plugins, runs_dir: Path = Path("runs"),
          resume: Path | None = None, quiet: bool = False, stream: TextIO | None = None) -> RunResult:
    """Run an experiment end to end; ``resume`` continues the run in that directory."""
    from nnframe.checkpoint import Checkpointer

    experiment = prepare(config_path, overrides, plugins)
    settings = experiment.settings
    run = RunContext(name=settings.name, config=experiment.config.resolved, run_dir=None,
                     plugin_manager=plugins.pm)
    trainer = Trainer(experiment, run)
    run_dir = RunDirectory.open(resume) if resume is not None else RunDirectory.create(runs_dir, settings.name)
    run.run_dir = run_dir.path
    trainer.checkpointer = Checkpointer(run_dir.checkpoints, settings.checkpoint, experiment.config)
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    if resume is not None:
        previous = run_dir.read_summary() or {}
        run.summary["wall_time_s"] = float(previous.get("wall_time_s", 0.0))
        started = previous.get("started", started)
        trainer.checkpointer.restore(trainer)
        run.resumed = True
    else:
        run_dir.write_config(experiment.config.to_yaml())
    run_dir.write_overrides(overrides)
    progress = make_progress(trainer.total_steps, quiet, stream)
    if progress is not None:
        run.register(progress)
    run.summary.update({"name": settings.name, "run_dir": str(run_dir.path), "started": started,
                        "versions": environment_versions(plugins.versions())})
    try:
        trainer.fit()
    finally:
        run_dir.write_summary(run.summary)
    return RunResult(run_dir.path, run.summary)

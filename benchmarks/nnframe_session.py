"""nnframe as the benchmarks drive it: a config built by ``nnframe.launch.prepare``, the real Trainer.

A :class:`Session` owns one built experiment, a :class:`~nnframe.run.RunContext`
whose run directory is a fresh temporary folder (so the TensorBoard plugin
writes real event files there, and the checkpointer its checkpoints), and the
:class:`~nnframe.train.Trainer`.
``start()`` registers what ``nnframe train`` and ``Trainer.fit`` register
(the config's callbacks, the progress display a pipe gets, here writing to
``os.devnull``) and fires the run-start hooks as ``Trainer.fit`` does, after
which :meth:`Session.step`, one turn of ``fit``'s loop, can be timed call by
call; ``fit()`` runs the whole training through ``Trainer.fit`` instead.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from nnframe.checkpoint import Checkpointer
from nnframe.launch import prepare
from nnframe.plugins import get_plugin_manager
from nnframe.progress import make_progress
from nnframe.run import RunContext
from nnframe.train import Trainer


def load_logging() -> None:
    """Open and close one throwaway spiral run, so nnframe's TensorBoard plugin imports what it needs, its way.

    The runner calls this before it imports PyTorch for the comparisons: some
    tensorboardX versions import torch when they see it installed, and nnframe
    avoids that in a process of its own; the benchmarks must measure nnframe
    with the same code paths. The memory probe calls it so that "after
    imports" includes the logging libraries.
    """
    config = Path(__file__).resolve().parent / "configs" / "spiral.yaml"
    with Session(config, ["train.epochs=1"]) as session:
        session.start()


class Session:
    """One nnframe training run for a benchmark, logging into a temporary run directory."""

    def __init__(self, config: Path, overrides: list[str] | None = None, run_dir: bool = True) -> None:
        self.plugins = get_plugin_manager()
        self.experiment = prepare(Path(config), list(overrides or []), self.plugins)
        self._tmp = tempfile.TemporaryDirectory(prefix="nnframe-bench-") if run_dir else None
        self.run = RunContext(name=self.experiment.settings.name, config=self.experiment.config.resolved,
                              run_dir=Path(self._tmp.name) if self._tmp else None, plugin_manager=self.plugins.pm)
        self.trainer = Trainer(self.experiment, self.run)
        if self._tmp is not None:
            self.trainer.checkpointer = self._checkpointer(Path(self._tmp.name) / "checkpoints")
        self._null = open(os.devnull, "w")  # noqa: SIM115  (closed in close())
        self.progress = make_progress(self.trainer.total_steps, False, self._null, self._tmp.name if self._tmp else "",
                                      self.experiment.dataset.summary())
        self.run.register(self.progress)
        self.step = self.trainer.fit_step
        self._started = False

    def _checkpointer(self, directory: Path) -> Checkpointer:
        """The checkpoints ``nnframe train`` saves, on the config's schedule: ``fit()`` writes the best one after
        an evaluation that improves it, as the command does (``train_step()`` alone saves none)."""
        directory.mkdir()
        experiment = self.experiment
        return Checkpointer(directory, experiment.settings.checkpoint, experiment.config,
                            classification=experiment.classification, error_measures=experiment.error_measures)

    def start(self) -> Session:
        """Register the config's callbacks and fire ``nnframe_configure_run`` and ``nnframe_run_start`` (the
        TensorBoard writer opens), as ``Trainer.fit`` does before its loop."""
        for callback in self.experiment.callbacks:
            self.run.register(callback)
        self.run.hook.nnframe_configure_run(run=self.run)
        self.run.hook.nnframe_run_start(run=self.run)
        self._started = True
        return self

    def fit(self) -> dict[str, Any]:
        """The whole training through ``Trainer.fit``, which starts the run itself; returns its summary."""
        if self._started:
            raise RuntimeError("Session.fit() starts the run itself, with its callbacks: call it on a session that "
                               "start() has not started")
        return self.trainer.fit()

    def close(self) -> None:
        """End the run (the writer flushes and closes) and remove the run directory."""
        if self._started:
            self.run.hook.nnframe_run_end(run=self.run, status="completed", summary=self.run.summary)
            self._started = False
        self.run.unregister_all()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self._null.close()

    def event_files(self) -> list[str]:
        if self._tmp is None:
            return []
        return sorted(p.name for p in Path(self._tmp.name).iterdir() if ".tfevents." in p.name)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Session({self.experiment.settings.name!r}, step={self.trainer.step})"

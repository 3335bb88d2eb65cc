"""Checkpoints: save a run's whole training state on schedule, and resume from it exactly.

The :class:`Checkpointer` is what the trainer calls; the files it writes, and
how they are read back and verified, are described in
:mod:`nnframe.checkpoint_files`.

The model fingerprint is what a checkpoint must agree with to be loaded: the
resolved ``model`` section of the config, ``train.dtype``, and the parameter
names and shapes. The training data must keep its size; a digest of its
values tells a resume whether it changed. Anything else (epochs, max_steps,
the learning rate, logging) may change between a run and its resume.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from nnframe.arrays import jsonable
from nnframe.checkpoint_files import (
    BEST,
    BEST_ARRAYS,
    FORMAT,
    OPTIMIZER,
    ORDER,
    PARAMS,
    STATE,
    STEP_FILE,
    VERSION,
    X_MEAN,
    X_SCALE,
    Checkpoint,
    checkpoint_label,
    fingerprint_hash,
    latest_checkpoint,
    load_state,
    meta_digest,
    named_state,
    read_checkpoint,
    step_name,
)
from nnframe.errors import CheckpointError, PluginStateError, RunDirectoryGone
from nnframe.generators import generators_in
from nnframe.gradients import first_nonfinite
from nnframe.hook_calls import call_each
from nnframe.plugin_state import saved_state
from nnframe.tracking import atomic_write_bytes, atomic_write_text, finite_or_null
from nnframe.validation_metrics import HIGHER_IS_BETTER, is_measured, measured_in_its_place

if TYPE_CHECKING:
    from nnframe.config import CheckpointConfig
    from nnframe.config_loader import LoadedConfig
    from nnframe.run import EvalMetrics
    from nnframe.train import Trainer


PRESENCE_CHECK_SECONDS = 1.0
"""How often a training run makes sure its directory is still there."""
DEEP = ":"
"""Separates a node's name from the path of a generator it keeps away from its ``rng``; no node name holds it."""


# --------------------------------------------------------------------------
# The model fingerprint
# --------------------------------------------------------------------------


def fingerprint(config: LoadedConfig, model: Any) -> dict[str, Any]:
    """What defines the model: the resolved ``model`` section, ``train.dtype``, parameter names and shapes."""
    resolved = config.resolved
    return {
        "model": resolved["model"],
        "dtype": resolved["train"]["dtype"],
        "params": [[name, list(p.shape)] for name, p in zip(model.param_names, model.params)],
    }


# --------------------------------------------------------------------------
# The checkpointer the trainer calls
# --------------------------------------------------------------------------


class Checkpointer:
    """Saves a trainer's state to ``checkpoints_dir`` on the configured schedule, and restores it.

    ``after_step`` saves every ``settings.every`` optimizer steps (0: never);
    ``save`` is called at the end and on interruption; ``after_evaluation``
    keeps ``best`` by ``settings.best_metric``, or, where the run does not
    measure that, by ``val/accuracy`` in a classification run and ``val/loss``
    in another (see :mod:`nnframe.validation_metrics`). After each save only the newest
    ``settings.keep`` step checkpoints remain. A state with a non-finite
    parameter or optimizer value is never saved, so the last good checkpoint
    survives a divergence. Warnings go to ``stream`` (standard error by default).
    """

    def __init__(self, checkpoints_dir: Path, settings: CheckpointConfig, config: LoadedConfig,
                 stream: TextIO | None = None, classification: bool = True, error_measures: bool = False) -> None:
        self.directory = Path(checkpoints_dir)
        self.settings = settings
        self.best_metric = settings.best_metric
        if self.best_metric and not is_measured(self.best_metric, classification, error_measures):
            self.best_metric = measured_in_its_place(classification)
        self.config = config
        self.stream = stream
        self.best_value: float | None = None
        self._saved_step: int | None = None
        self._saved_eval: EvalMetrics | None = None
        self._saved_stop: dict[str, Any] | None = None
        self._data_digest: str | None = None
        self._look_again_at = time.monotonic() + PRESENCE_CHECK_SECONDS
        self.data_differs = False
        """Set by :meth:`restore`: the run resumes on other training data than it was trained on, of its size."""

    # ---------------------------------------------------------------- saving

    @property
    def saved_step(self) -> int | None:
        """The step of the newest checkpoint of the run: written by this process, or resumed from."""
        return self._saved_step

    def after_step(self, trainer: Trainer) -> None:
        """Save when the step falls on ``checkpoint.every``; about once a second, make sure the run directory
        is still where it was, so that a run whose directory was moved stops then, not at its next save."""
        every = self.settings.every
        if every and trainer.step % every == 0:
            self.save(trainer)
        elif time.monotonic() > self._look_again_at:
            self._look_again_at = time.monotonic() + PRESENCE_CHECK_SECONDS
            if not self.directory.parent.is_dir():
                raise RunDirectoryGone(self.directory.parent)

    def save(self, trainer: Trainer, final: bool = False) -> Path | None:
        """Write ``step-<step>``, then drop all but the newest ``keep``; returns the JSON path, None if skipped.

        A step already saved is saved again only when an evaluation came after
        it (the run's last one, after its last step), so that a resume knows it.
        """
        stop = stop_of(trainer)
        if trainer.step == self._saved_step and trainer.last_eval is self._saved_eval and stop == self._saved_stop:
            return None
        stem = step_name(trainer.step)
        with _plugins_told_first(trainer):
            state, left_out = saved_state(trainer.run.state)
            path = self._write(stem, f"{stem}.npz", trainer, final=final, plugin_state=state)
            if path is not None:
                self._saved_step, self._saved_eval, self._saved_stop = trainer.step, trainer.last_eval, stop
                self._prune(trainer.step)
                _refuse_unsaved_state(left_out, stem)
        return path

    def after_evaluation(self, trainer: Trainer, metrics: EvalMetrics) -> None:
        """Save ``best`` when ``metrics`` beat the best value so far."""
        metric = self.best_metric
        if metric is None:
            return
        value = metrics.value_of(metric)
        if value is None or not math.isfinite(value) or not self._better(value):
            return
        arrays = f"{BEST}-{trainer.step:08d}.npz"
        with _plugins_told_first(trainer):
            state, left_out = saved_state(trainer.run.state)
            if self._write(BEST, arrays, trainer, metric={"name": metric, "value": float(value)},
                           plugin_state=state) is not None:
                self.best_value = float(value)
                for path in self.directory.iterdir():
                    if BEST_ARRAYS.match(path.name) and path.name != arrays:
                        path.unlink(missing_ok=True)
                _refuse_unsaved_state(left_out, BEST)

    def _better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        if self.best_metric in HIGHER_IS_BETTER:
            return value > self.best_value
        return value < self.best_value

    def _write(self, stem: str, arrays_name: str, trainer: Trainer, **extra: Any) -> Path | None:
        """Save the trainer's state as ``<stem>.json`` and ``arrays_name``; None where a value is not finite."""
        arrays, meta = self.capture(trainer)
        checked = {key: value for key, value in arrays.items() if not key.startswith(STATE)}
        bad = first_nonfinite([key.removeprefix(PARAMS) for key in checked], list(checked.values()))
        if bad is None and hasattr(trainer.model, "nonfinite_state"):  # a running max at -inf is saved
            bad = trainer.model.nonfinite_state([(key[len(STATE):], value) for key, value in arrays.items()
                                                 if key.startswith(STATE)])
        if bad is not None:
            self._warn(f"not saving checkpoint {stem} at step {trainer.step}: {bad} is not finite; "
                       "the last good checkpoint is kept")
            return None
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
        if not self.directory.parent.is_dir():
            raise RunDirectoryGone(self.directory.parent)
        meta.update(arrays=arrays_name, sha256=hashlib.sha256(data).hexdigest(), **extra)
        meta["meta_sha256"] = meta_digest(meta)
        path = self.directory / f"{stem}.json"
        try:
            self.directory.mkdir(exist_ok=True)
            atomic_write_bytes(self.directory / arrays_name, data)
            atomic_write_text(path, json.dumps(meta, indent=1) + "\n")
        except (FileNotFoundError, FileExistsError):
            if self.directory.parent.is_dir():
                raise
            raise RunDirectoryGone(self.directory.parent) from None  # moved away while these were written
        return path

    def capture(self, trainer: Trainer) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The trainer's state as ``(arrays, metadata)``; the metadata lacks only the arrays file and hash."""
        model = trainer.model
        arrays = {PARAMS + name: p for name, p in zip(model.param_names, model.params)}
        arrays.update({STATE + name: value for name, value in named_state(model)})
        arrays.update({OPTIMIZER + key: value for key, value in trainer.optimizer.state_dict().items()})
        batches = trainer.batches.state_dict()
        arrays[ORDER] = batches.pop("order")
        if trainer.dataset.x_mean is not None:
            arrays[X_MEAN], arrays[X_SCALE] = trainer.dataset.x_mean, trainer.dataset.x_scale
        identity = fingerprint(self.config, model)
        meta = {
            "format": FORMAT, "version": VERSION, "arrays": "", "sha256": "",
            "step": trainer.step, "epoch": trainer.batches.epoch, "skipped_steps": trainer.skipped_steps,
            "saved": datetime.now().isoformat(timespec="seconds"),
            "config_hash": fingerprint_hash(identity), "fingerprint": identity,
            "training_data": self._digest_of(trainer.dataset),
            "batches": batches,
            "rngs": {key: jsonable(rng.bit_generator.state) for key, rng in generators(trainer).items()},
            "last_eval": finite_or_null(asdict(trainer.last_eval)) if trainer.last_eval is not None else None,
            "stop": stop_of(trainer),
        }
        return arrays, meta

    def _prune(self, current: int) -> None:
        """Keep the newest ``keep`` step checkpoints up to ``current``; later ones are from an abandoned run."""
        steps = {}
        for path in self.directory.iterdir():
            match = STEP_FILE.match(path.name)
            if match:
                steps.setdefault(int(match.group(1)), []).append(path)
        complete = sorted((s for s, paths in steps.items() if s <= current
                           and any(p.suffix == ".json" for p in paths)), reverse=True)
        keep = set(complete[:self.settings.keep])
        for step, paths in steps.items():
            if step not in keep:
                for path in sorted(paths, key=lambda p: p.suffix != ".json"):
                    path.unlink(missing_ok=True)

    # ------------------------------------------------------------- restoring

    def restore(self, trainer: Trainer) -> Checkpoint:
        """Load the newest valid checkpoint into ``trainer`` (parameters in place), for a resume."""
        self._remove_temporary_files()
        checkpoint = latest_checkpoint(self.directory, self._warn)
        try:
            self.check_model(checkpoint, trainer.model)
        except CheckpointError as exc:
            cause = _feature_count_change(checkpoint, trainer.model, trainer.dataset)
            if cause is None:
                raise
            raise CheckpointError(f"{cause}; {exc}") from None
        self.data_differs = self.data_differs_from(checkpoint, trainer.dataset)
        _apply(checkpoint, trainer)
        if checkpoint.path.name != f"{BEST}.json":
            self._saved_step, self._saved_eval = checkpoint.step, trainer.last_eval
            self._saved_stop = checkpoint.meta.get("stop")
        self.best_value = self._saved_best()
        return checkpoint

    def _digest_of(self, dataset: Any) -> str:
        """The training data's digest as its config builds it, taken once: what a resume must train on again."""
        if self._data_digest is None:
            self._data_digest = dataset.digest()
        return self._data_digest

    def data_differs_from(self, checkpoint: Checkpoint, dataset: Any) -> bool:
        """Whether the training data is other than the run's though as large (a file rewritten in place, a
        dataset drawn from an unseeded generator); other sizes are refused by the batch order's own check.
        Checkpoints from before the digest was kept tell nothing."""
        saved = checkpoint.meta.get("training_data")
        same_size = int(checkpoint.meta.get("batches", {}).get("n", -1)) == dataset.n_train
        return saved is not None and same_size and saved != self._digest_of(dataset)

    def check_model(self, checkpoint: Checkpoint, model: Any, resuming: bool = True) -> None:
        """Refuse a checkpoint of another model: names and shapes first, then dtype, then the whole fingerprint.

        The advice is for a resume, or (not ``resuming``) for loading the run
        as :func:`nnframe.load_run` does.
        """
        saved = checkpoint.meta["fingerprint"]
        current = fingerprint(self.config, model)
        where = checkpoint_label(checkpoint.path)
        try:
            _check_params(dict((n, tuple(s)) for n, s in saved["params"]),
                          dict((n, tuple(s)) for n, s in current["params"]), where)
        except CheckpointError as exc:
            if not resuming:
                exc.args = (f"{exc}: the run's config.yaml, or the shape of its data, changed since it trained",)
            raise
        if saved.get("dtype") != current["dtype"]:
            fix = f"train.dtype={saved.get('dtype')}"
            raise CheckpointError(f"{where} was saved with train.dtype {saved.get('dtype')}, but this run "
                                  f"uses {current['dtype']}; " + (f"resume with {fix}" if resuming else
                                                                   f"load it with the override {fix}"))
        if checkpoint.meta["config_hash"] != fingerprint_hash(current):
            found = _differences(saved.get("model"), current["model"], "model")
            detail = "; ".join(found[:3]) if found else "the model fingerprint differs"
            raise CheckpointError(f"{where} is from a different model: {detail}; " + (
                "resume with the model config the run was started with" if resuming else
                "load it with the model config the run was started with: its config.yaml was changed"))

    def _saved_best(self) -> float | None:
        path = self.directory / f"{BEST}.json"
        if not path.exists():
            return None
        try:
            metric = read_checkpoint(path).meta.get("metric") or {}
        except CheckpointError:
            return None
        if metric.get("name") != self.best_metric or not isinstance(metric.get("value"), (int, float)):
            return None
        return float(metric["value"])

    def _remove_temporary_files(self) -> None:
        """Temporary files left by a writer that was killed mid-write."""
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                if path.name.startswith(".") and path.name.endswith(".tmp"):
                    path.unlink(missing_ok=True)

    def _warn(self, message: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(f"warning: {message}\n")
        stream.flush()

    def __repr__(self) -> str:
        return (f"Checkpointer({str(self.directory)!r}, every={self.settings.every}, keep={self.settings.keep}, "
                f"best_metric={self.best_metric!r})")


# --------------------------------------------------------------------------
# Random generators
# --------------------------------------------------------------------------


@contextmanager
def _plugins_told_first(trainer: Trainer) -> Iterator[None]:
    """Call ``nnframe_checkpoint`` before the save in the block; a plugin's error is raised after the block,
    the save and its bookkeeping done, since one plugin's bug must not cost the run its state."""
    try:
        call_each(trainer.run.hook.nnframe_checkpoint, run=trainer.run)
    except (Exception, SystemExit) as exc:
        hook_error: BaseException | None = exc
    else:
        hook_error = None
    try:
        yield
    except BaseException as exc:
        if hook_error is not None:
            exc.add_note(f"(a plugin's nnframe_checkpoint had failed just before: {hook_error!r})")
        raise
    if hook_error is not None:
        hook_error.checkpoint_saved = True  # type: ignore[attr-defined]
        raise hook_error


def stop_of(trainer: Trainer) -> dict[str, Any] | None:
    """The stop a plugin asked for, for the checkpoint: its reason, and whether the loop had ended when it was
    saved (``done``). A resume restores a stop not done (asked for in the step that a Ctrl-C or a failed save
    ended), and one done whose run never recorded its completion (see :func:`stop_to_restore`)."""
    reason = trainer.run.stop_reason
    return None if reason is None else {"reason": reason, "done": trainer.ended}


def stop_to_restore(checkpoint: Checkpoint, completion_recorded: bool) -> str | None:
    """The reason of the stop a resume from ``checkpoint`` must carry out, None where there is none.

    A stop not done is carried out. One done is carried out again only where
    the run's summary does not record the completion (``completion_recorded``
    false: the run was killed after its final checkpoint, before its
    summary); otherwise resuming a run stopped early trains on.
    """
    stop = checkpoint.meta.get("stop")
    if stop is None or (stop["done"] and completion_recorded):
        return None
    return stop["reason"]


def _refuse_unsaved_state(left_out: dict[Any, str], stem: str) -> None:
    """Raise for what a plugin left in ``run.state`` that checkpoint ``stem``, just written, could not hold.

    The checkpoint is written first, without those keys, so that one
    plugin's slip costs the run none of its own state.
    """
    if left_out:
        keys = ", ".join(f"run.state[{key!r}]" for key in left_out)
        error = PluginStateError(f"{'; '.join(left_out.values())}: a checkpoint keeps only plain numbers, strings, "
                                 "lists and dicts with string keys in run.state, so checkpoint "
                                 f"{stem} was saved without {keys}")
        error.checkpoint_saved = True  # type: ignore[attr-defined]
        raise error


def generators(trainer: Trainer) -> dict[str, np.random.Generator]:
    """Every random generator a resume must restore, by key, except the shuffle stream the batch state holds."""
    streams = trainer.experiment.streams
    found = {"streams/init": streams.init, "streams/data": streams.data}
    found.update(node_generators(trainer.model))
    return found


def node_generators(model: Any, prefix: str = "nodes/") -> dict[str, np.random.Generator]:
    """The generators of every node, nested graphs included: a node's ``rng`` as ``nodes/<name>``, and one it
    keeps elsewhere (in a helper, as the book's negative sampler does) as ``nodes/<name>:<path>``
    (``nodes/ns:sampler.rng``), each generator once."""
    found: dict[str, np.random.Generator] = {}
    held: set[int] = set()
    for name, node in (getattr(model, "nodes", None) or {}).items():
        rng = getattr(node, "rng", None)
        if isinstance(rng, np.random.Generator):
            found[f"{prefix}{name}"] = rng
            held.add(id(rng))
        if isinstance(getattr(node, "nodes", None), dict):
            found.update(node_generators(node, f"{prefix}{name}/"))
            held.update(id(rng) for rng in found.values())
            continue
        for path, rng in generators_in(node):
            if id(rng) not in held:
                found[f"{prefix}{name}{DEEP}{path}"] = rng
                held.add(id(rng))
    return found


# --------------------------------------------------------------------------
# Applying a checkpoint
# --------------------------------------------------------------------------


def load_params(checkpoint: Checkpoint, model: Any) -> None:
    """Copy the checkpoint's parameters into the model's arrays, in place (the optimizer and loggers hold them),
    and the nodes' state (see :func:`load_state`)."""
    saved = checkpoint.params
    for name, param in zip(model.param_names, model.params):
        param[...] = saved[name]
    load_state(checkpoint.state, model, checkpoint_label(checkpoint.path))


def _apply(checkpoint: Checkpoint, trainer: Trainer) -> None:
    meta = checkpoint.meta
    load_params(checkpoint, trainer.model)
    trainer.optimizer.load_state_dict(checkpoint.optimizer_state)
    try:
        trainer.batches.load_state_dict({**meta["batches"], "order": checkpoint.arrays[ORDER]})
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{checkpoint_label(checkpoint.path)}: the saved batch position is incomplete or "
                              f"malformed ({type(exc).__name__}: {exc})") from None
    _restore_generators(meta["rngs"], generators(trainer), checkpoint_label(checkpoint.path))
    trainer.step = trainer.run.step = checkpoint.step
    trainer.run.epoch = trainer.batches.epoch
    trainer.skipped_steps = int(meta["skipped_steps"])
    trainer.restore_last_eval(meta.get("last_eval"))
    trainer.run.state.clear()
    trainer.run.state.update(meta.get("plugin_state", {}))  # checkpoints from before it have none


def _restore_generators(states: dict[str, Any], live: dict[str, np.random.Generator], where: str) -> None:
    """Give each generator its saved state. A generator a node keeps away from its ``rng`` (a ``:`` key) may be
    missing: checkpoints from before such generators were saved have none, and resume as they did."""
    live = {key: rng for key, rng in live.items() if key in states or DEEP not in key}
    missing = sorted(set(live) - set(states))
    if missing:
        raise CheckpointError(f"{where} has no random state for {', '.join(missing)}; "
                              "it was saved by a different model")
    for key, rng in live.items():
        try:
            rng.bit_generator.state = states[key]
        except (ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"{where}: the random state {key!r} does not fit this run's "
                                  f"{type(rng.bit_generator).__name__} generator: {exc}") from None


def _check_params(saved: dict[str, tuple[int, ...]], current: dict[str, tuple[int, ...]], where: str) -> None:
    for name, shape in current.items():
        if name not in saved:
            raise CheckpointError(f"{where} is from a different model: it has no parameter {name!r} "
                                  f"(shape {shape} here); it holds {', '.join(saved) or 'none'}")
        if saved[name] != shape:
            raise CheckpointError(f"{where} is from a different model: parameter {name!r} has shape "
                                  f"{saved[name]} in the checkpoint but {shape} in this model")
    extra = [name for name in saved if name not in current]
    if extra:
        raise CheckpointError(f"{where} is from a different model: it has parameter(s) {', '.join(extra)} "
                              "that this model lacks")


def _feature_count_change(checkpoint: Checkpoint, model: Any, dataset: Any) -> str | None:
    """Why a resumed model's first parameter has another shape, where the cause is the data: the first axis of
    the first parameter (an affine's ``W``: ``(D, H)``) follows the number of features, and that number changed;
    else ``None``."""
    saved = checkpoint.meta["fingerprint"]["params"]
    if not saved or not model.params:
        return None
    name, saved_shape = saved[0][0], tuple(saved[0][1])
    shape = model.params[0].shape
    features = int(np.prod(dataset.x.shape[1:]))
    if name != model.param_names[0] or len(saved_shape) != len(shape) or not shape:
        return None
    if shape[0] != features or saved_shape[0] == features:
        return None
    return (f"the data now has {features} features per example, where the run's model was built for "
            f"{saved_shape[0]}: the data ({dataset.source}) changed since the run started; resume with the data "
            "the run trained on, or train a new run on this data")


def _differences(saved: Any, current: Any, path: str) -> list[str]:
    """Where two plain config values differ, as ``"model.1.type: 'tanh' in the checkpoint, 'sigmoid' now"``."""
    if isinstance(saved, dict) and isinstance(current, dict):
        found = []
        for key in [*saved, *(k for k in current if k not in saved)]:
            found += _differences(saved.get(key), current.get(key), f"{path}.{key}")
        return found
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        return [d for k, (a, b) in enumerate(zip(saved, current)) for d in _differences(a, b, f"{path}.{k}")]
    if saved != current:
        return [f"{path}: {saved!r} in the checkpoint, {current!r} now"]
    return []

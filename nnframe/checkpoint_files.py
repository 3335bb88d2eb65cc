"""The checkpoint files: their layout on disk, and reading them back verified.

A checkpoint is two files in the run's ``checkpoints/`` directory:

* ``step-00000120.npz``: every array: the parameters by name in their own
  (full) precision (``params/affine1/W``), the optimizer state
  (``optimizer/affine1/W.v``, ``optimizer/t``) and the epoch's shuffle order
  (``batches/order``);
* ``step-00000120.json``: everything else, as plain JSON: the step, epoch and
  batch position, the state of every random generator (the experiment's
  ``init`` and ``data`` streams, the shuffle stream inside the batch position,
  and the ``rng`` of every model node that has one, e.g. Dropout), the skipped
  steps, the model fingerprint and its hash, the plugins' ``run.state``, a
  stop a plugin asked for (``stop``: its reason, and whether the training
  loop had ended), and the name and sha256 of the ``.npz`` file.

Each file is written atomically (temporary file, fsync, rename, fsync of the
directory), the arrays first and the JSON last, so a checkpoint counts only
once its JSON exists and the arrays match the recorded hash: a crash at any
moment leaves the previous checkpoint intact. Arrays load with
``allow_pickle=False`` and metadata is JSON, so reading a checkpoint never runs
code.

``best.json`` (with ``best-<step>.npz``) is the checkpoint with the best
``checkpoint.best_metric`` so far. A resume loads the newest valid checkpoint,
``best`` included; a broken newest one is skipped with a warning.

The model fingerprint is what a checkpoint must agree with to be loaded: the
resolved ``model`` section of the config, ``train.dtype``, and the parameter
names and shapes. Anything else (epochs, max_steps, the learning rate, logging)
may change between a run and its resume.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np

from nnframe.errors import CheckpointError, listed

FORMAT = "nnframe-checkpoint"
VERSION = 1
PARAMS = "params/"
OPTIMIZER = "optimizer/"
ORDER = "batches/order"
STATE = "state/"
X_MEAN, X_SCALE = "data/x_mean", "data/x_scale"
"""The figures a run standardized its inputs with (``data.standardize``), kept so that a resume or ``load_run`` on
data that changed since scales it as the run was trained."""
BEST = "best"
LATEST = "latest"
STEP_FILE = re.compile(r"^step-(\d{8,})\.(json|npz)$")
BEST_ARRAYS = re.compile(r"^best-\d{8,}\.npz$")
_KINDS = {str: "a string", int: "an integer", dict: "an object"}
_META_FIELDS = {
    "format": str, "version": int, "arrays": str, "sha256": str, "step": int, "epoch": int,
    "skipped_steps": int, "config_hash": str, "fingerprint": dict, "batches": dict, "rngs": dict,
}


_COUNTS = ("step", "epoch", "skipped_steps")


def step_name(step: int) -> str:
    """The file stem of the checkpoint at ``step``: ``step-00000120``."""
    return f"step-{step:08d}"


@dataclass
class Checkpoint:
    """One checkpoint read back and verified: ``meta`` from its JSON, ``arrays`` from its ``.npz``."""

    path: Path
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The parameters by name, e.g. ``{"affine1/W": ...}``."""
        return {key[len(PARAMS):]: value for key, value in self.arrays.items() if key.startswith(PARAMS)}

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The nodes' state by name (see :attr:`nnframe.Node.state_names`), e.g. ``{"norm1/mean": ...}``."""
        return {key[len(STATE):]: value for key, value in self.arrays.items() if key.startswith(STATE)}

    @property
    def scaling(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The run's input standardization, ``(mean, scale)``; ``None`` for inputs trained on as read."""
        if X_MEAN not in self.arrays or X_SCALE not in self.arrays:
            return None
        return self.arrays[X_MEAN], self.arrays[X_SCALE]

    @property
    def optimizer_state(self) -> dict[str, np.ndarray]:
        return {key[len(OPTIMIZER):]: value for key, value in self.arrays.items() if key.startswith(OPTIMIZER)}

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r}, step={self.step}, arrays={len(self.arrays)})"


def fingerprint_hash(described: dict[str, Any]) -> str:
    """sha256 of the fingerprint as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(described, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def read_checkpoint(json_path: Path) -> Checkpoint:
    """Read and verify one checkpoint; any damage (truncation, wrong hash, pickled data) is a CheckpointError."""
    json_path = Path(json_path)
    meta = read_meta(json_path)
    arrays_path = json_path.parent / meta["arrays"]
    try:
        data = arrays_path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{checkpoint_label(json_path)}: cannot read its arrays file {arrays_path.name}: "
                              f"{exc.strerror or exc}") from None
    if hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise CheckpointError(f"{checkpoint_label(json_path)}: {arrays_path.name} does not match the sha256 recorded "
                              "in the checkpoint (truncated or corrupted)")
    arrays = _load_npz(data, json_path)
    _check_arrays(meta, arrays, json_path)
    if "meta_sha256" in meta and meta["meta_sha256"] != meta_digest(meta):  # checkpoints before it had none
        raise CheckpointError(f"{checkpoint_label(json_path)}: its metadata does not match the sha256 recorded in it "
                              "(edited or corrupted)")
    return Checkpoint(json_path, meta, arrays)


def meta_digest(meta: dict[str, Any]) -> str:
    """The sha256 of a checkpoint's metadata, ``meta_sha256`` itself left out: the arrays' hash alone let an edited
    step, batch position or random state through, and a damaged one refuse a resume instead of falling back."""
    body = {key: value for key, value in meta.items() if key != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_meta(json_path: Path) -> dict[str, Any]:
    """The checkpoint's JSON metadata, checked for the fields a resume needs."""
    try:
        meta = json.loads(Path(json_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{checkpoint_label(json_path)}: cannot read the checkpoint metadata: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{checkpoint_label(json_path)}: not an nnframe checkpoint (no \"format\": \"{FORMAT}\")")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{checkpoint_label(json_path)}: checkpoint format version {meta.get('version')!r}; "
                              f"this nnframe reads version {VERSION}")
    for key, kind in _META_FIELDS.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise CheckpointError(f"{checkpoint_label(json_path)}: field {key!r} is missing or not {_KINDS[kind]} "
                                  f"(found {meta.get(key)!r})")
    if not isinstance(meta.get("plugin_state", {}), dict):  # checkpoints from before it have none
        raise CheckpointError(f"{checkpoint_label(json_path)}: field 'plugin_state' is not {_KINDS[dict]} "
                              f"(found {meta['plugin_state']!r})")
    stop = meta.get("stop")
    if stop is not None and not (isinstance(stop, dict) and isinstance(stop.get("reason"), str)
                                 and isinstance(stop.get("done"), bool)):
        raise CheckpointError(f"{checkpoint_label(json_path)}: field 'stop' is not null or an object with a "
                              f"'reason' string and a 'done' boolean (found {stop!r})")
    for key in _COUNTS:
        if meta[key] < 0:
            raise CheckpointError(f"{checkpoint_label(json_path)}: field {key!r} is {meta[key]}; "
                                  "a count cannot be negative")
    params = meta["fingerprint"].get("params")
    if not isinstance(params, list) or not all(_is_param_entry(entry) for entry in params):
        raise CheckpointError(f"{checkpoint_label(json_path)}: field 'fingerprint.params' "
                              "is not a list of [name, shape] pairs")
    named = STEP_FILE.match(Path(json_path).name)
    if named and int(named.group(1)) != meta["step"]:
        raise CheckpointError(f"{checkpoint_label(json_path)}: its metadata says step {meta['step']}, its name step "
                              f"{int(named.group(1))}")
    arrays = meta["arrays"]
    if Path(arrays).name != arrays or arrays.startswith(".") or not arrays.endswith(".npz"):
        raise CheckpointError(f"{checkpoint_label(json_path)}: arrays file {arrays!r} is not a .npz file "
                              "beside the metadata")
    return meta


def _is_param_entry(entry: Any) -> bool:
    return (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
            and isinstance(entry[1], list) and all(isinstance(n, int) for n in entry[1]))


def _load_npz(data: bytes, json_path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise CheckpointError(f"{checkpoint_label(json_path)}: the arrays hold pickled Python objects, which "
                                  "nnframe never loads (they could run code)") from None
        raise CheckpointError(f"{checkpoint_label(json_path)}: the arrays file is not a valid .npz: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise CheckpointError(f"{checkpoint_label(json_path)}: the arrays file is not a valid .npz: {exc}") from None


def _check_arrays(meta: dict[str, Any], arrays: dict[str, np.ndarray], json_path: Path) -> None:
    for name, shape in meta["fingerprint"]["params"]:
        saved = arrays.get(PARAMS + name)
        if saved is None or list(saved.shape) != list(shape):
            found = "missing" if saved is None else f"of shape {saved.shape}"
            raise CheckpointError(f"{checkpoint_label(json_path)}: parameter {name!r} is {found} in "
                                  f"{meta['arrays']}; the metadata says shape {tuple(shape)}")
    if ORDER not in arrays:
        raise CheckpointError(f"{checkpoint_label(json_path)}: {meta['arrays']} has no {ORDER!r} array")


def candidates(directory: Path, warn: Any = None) -> list[Path]:
    """The checkpoints' JSON files, newest step first (``best.json`` after a step file of the same step)."""
    found: list[tuple[int, int, Path]] = []
    for path in Path(directory).iterdir():
        match = STEP_FILE.match(path.name)
        if match and match.group(2) == "json":
            found.append((int(match.group(1)), 0, path))
    best = Path(directory) / f"{BEST}.json"
    if os.path.lexists(best):  # a link to nothing is damaged, and said so
        try:
            found.append((read_meta(best)["step"], 1, best))
        except CheckpointError as exc:
            if warn is not None:
                warn(f"skipping {exc}")
    return [path for _, _, path in sorted(found, key=lambda item: (-item[0], item[1]))]


RELISTS = 5
"""How often the newest checkpoint is looked for again where the one being read was pruned meanwhile."""


def latest_checkpoint(directory: Path, warn: Any = None) -> Checkpoint:
    """The newest checkpoint that is complete and valid; a broken newer one is skipped through ``warn``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{str(directory)!r} does not exist; expected the checkpoints/ directory of a run")
    for relisting in range(RELISTS):
        problems, pruned = [], False
        for path in candidates(directory, warn if relisting == 0 else None):
            try:
                checkpoint = read_checkpoint(path)
            except CheckpointError as exc:
                if not os.path.lexists(path) and relisting < RELISTS - 1:  # pruned as it was read, by the run still
                    pruned = True  # training: a newer one is there (a link to nothing stays, damaged)
                    break
                problems.append(str(exc))
                continue
            for problem in problems if warn is not None else ():
                warn(f"skipping {problem}; using the older {path.name} (step {checkpoint.step})")
            return checkpoint
        if not pruned:
            break
    if not problems:
        raise CheckpointError(f"no checkpoint in {str(directory)!r}: the run stopped before its first checkpoint; "
                              "start it again without --resume, or save more often with checkpoint.every")
    raise CheckpointError(f"no valid checkpoint in {str(directory)!r}: " + "; ".join(problems))


def checkpoint_label(path: Path) -> str:
    return f"checkpoint {str(path)!r}"


def checkpoint_of(directory: Path, which: str | int, warn: Any = None) -> Checkpoint:
    """A run's checkpoint, read back and verified: ``"latest"`` (the newest valid one, a broken newer one skipped
    through ``warn``), ``"best"`` or a step number; ``directory`` is the run's ``checkpoints/``."""
    if which == LATEST:
        if not directory.is_dir() or not candidates(directory):
            raise CheckpointError(f"run {str(directory.parent)!r} has no checkpoint yet: it stopped before its first, "
                                  "or is still training towards it (a run with checkpoint.every: 0 saves only at "
                                  "its end)")
        return latest_checkpoint(directory, warn)
    if which == BEST:
        return _read(directory / f"{BEST}.json", directory, "it has no best checkpoint (checkpoint.best_metric was "
                                                            "null, it had no validation set, or no evaluation gave "
                                                            "that metric a finite value)")
    if isinstance(which, str) and which.isascii() and which.isdigit():
        which = int(which)
    if not isinstance(which, Integral) or isinstance(which, (bool, np.bool_)) or which < 0:
        raise CheckpointError(f"checkpoint {which!r}: give 'latest', 'best' or a step number")
    step = int(which)
    path = directory / f"{step_name(step)}.json"
    if not path.is_file() and _best_step(directory) == step:
        path = directory / f"{BEST}.json"  # the best checkpoint outlives the step checkpoints that keep drops
    return _read(path, directory, f"it has no checkpoint of step {step}; it has {_steps(directory)}")


def _read(path: Path, directory: Path, missing: str) -> Checkpoint:
    if not path.is_file():
        raise CheckpointError(f"run {str(directory.parent)!r}: {missing}")
    return read_checkpoint(path)


def _steps(directory: Path) -> str:
    matches = (STEP_FILE.match(path.name) for path in directory.glob("step-*.json"))
    steps = [str(step) for step in sorted(int(match.group(1)) for match in matches if match)]
    best = _best_step(directory)
    if best is not None:
        steps.append(f"best (step {best})")
    return f"steps {', '.join(steps)}" if steps else "no checkpoint"


def _best_step(directory: Path) -> int | None:
    best = directory / f"{BEST}.json"
    try:
        return read_meta(best)["step"] if best.is_file() else None
    except CheckpointError:
        return None


def named_state(model: Any) -> list[tuple[str, np.ndarray]]:
    """The model's node state (see :attr:`nnframe.Node.state_names`); none for a model that keeps none."""
    return model.named_state() if hasattr(model, "named_state") else []


def load_state(saved: dict[str, np.ndarray], model: Any, where: str, as_saved: bool = True) -> int:
    """Copy each saved node state into the model's array of that name, in place; returns how many were.

    A state the checkpoint lacks (saved before its node kept it) is left as
    built; one of another shape is refused, as a parameter is. ``as_saved``
    refuses a checkpoint whose state the model keeps under other names (see
    :func:`_check_state_names`): it would be left as built without a word.
    """
    state = named_state(model)
    if as_saved:
        _check_state_names(list(saved), [name for name, _ in state], where)
    copied = 0
    for name, value in state:
        if name not in saved:
            continue
        if saved[name].shape != value.shape:
            raise CheckpointError(f"{where}: state {name!r} has shape {saved[name].shape}, but the model's "
                                  f"has {value.shape}")
        value[...] = saved[name]
        copied += 1
    return copied


def _check_state_names(saved: list[str], own: list[str], where: str) -> None:
    """Refuse a checkpoint whose state has no place in the model while the model keeps state the checkpoint
    lacks: renamed (a node's ``state_names``, or where a block holds its inner nodes). State only added since
    keeps its built values, and state only dropped is not needed."""
    unused, lacking = sorted(set(saved) - set(own)), sorted(set(own) - set(saved))
    if unused and lacking:
        raise CheckpointError(f"{where}: its state {listed(unused)} has no place in the model, which keeps "
                              f"{listed(lacking)} instead: state_names, or the nodes holding them, changed since "
                              "the run trained (a plugin's new version?); keep their names as they were to load it")

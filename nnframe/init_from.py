"""A new run's parameters copied from a checkpoint of another run (``train.init_from``): fine-tuning.

The parameters are matched by name (``affine1/W``) and copied into the
model's own arrays, cast to its dtype. Strict (the default), every parameter
of the model must be in the checkpoint with its shape, and the checkpoint must
hold no other; otherwise those that match are copied, and a note names the rest.
Only the parameters come over, and the nodes' state where name and shape
match (a note names the rest, strict or not): the optimizer starts afresh,
and so do the step count, the batches and the random streams.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nnframe.checkpoint_files import checkpoint_label, checkpoint_of, load_state, named_state
from nnframe.data import rescaled
from nnframe.errors import CheckpointError, ConfigError, listed
from nnframe.gradients import first_nonfinite

SHOWN = 4
"""Names listed in a message before the rest are counted."""


def copy_initial_params(init: Any, model: Any) -> tuple[list[str], Any, int]:
    """Copy the parameters of ``init``'s checkpoint (a :class:`~nnframe.config.InitFrom`) into ``model``; returns
    notes, the checkpoint itself and how many parameters were copied. Raises :class:`ConfigError` at
    ``train.init_from`` where the checkpoint cannot be read or, strict, does not fit."""
    run_dir = Path(init.run)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{str(run_dir)!r} is not a run directory (it has no config.yaml); expected one made by "
                          "`nnframe train`, which `nnframe runs` lists", path="train.init_from.run")
    try:
        saved = checkpoint_of(run_dir / "checkpoints", init.checkpoint)
    except CheckpointError as exc:
        raise ConfigError(str(exc), path="train.init_from") from None
    source = f"checkpoint {init.checkpoint!r} (step {saved.step}) of run {str(run_dir)!r}"
    params = saved.params  # finite: a checkpoint is never saved otherwise
    missing = [name for name in model.param_names if name not in params]
    unexpected = [name for name in params if name not in model.param_names]
    misshapen = [f"{name} {params[name].shape} against the model's {p.shape}"
                 for name, p in zip(model.param_names, model.params)
                 if name in params and params[name].shape != p.shape]
    problems = _problems(missing, unexpected, misshapen)
    if problems and init.strict:
        raise ConfigError(f"{source} does not fit the model: {'; '.join(problems)}; set train.init_from.strict: "
                          "false to copy the parameters that match and keep the others as initialised",
                          path="train.init_from")
    copied = 0
    with np.errstate(over="ignore"):  # a float64 value beyond float32's range is named below
        for name, p in zip(model.param_names, model.params):
            if name in params and params[name].shape == p.shape:
                p[...] = params[name]
                copied += 1
    bad = first_nonfinite(model.param_names, model.params)
    if bad is not None:
        raise ConfigError(f"{source}: parameter {bad} is not finite in {model.params[0].dtype} (beyond the range of "
                          "train.dtype?)", path="train.init_from")
    states, state_note = _copy_state(saved, model)
    notes = [f"parameters from {source}: {copied} of {len(model.params)}"
             + (f", and {states} node state{'s' if states != 1 else ''} (running statistics)" if states else "")]
    if problems:
        notes.append(f"train.init_from is not strict, and {'; '.join(problems)}: the model's other parameters "
                     "keep their initial values")
    if state_note:
        notes.append(state_note)
    return notes, saved, copied


def _copy_state(saved: Any, model: Any) -> tuple[int, str | None]:
    """The saved node state (see :attr:`nnframe.Node.state_names`) whose name and shape the model's has, copied
    in place: the statistics the copied parameters were trained with. Returns how many, and a note naming the
    model's state that keeps its built values and the checkpoint's that is not used, where there are any."""
    own = dict(named_state(model))
    fitting = {name: value for name, value in saved.state.items() if name in own and value.shape == own[name].shape}
    copied = load_state(fitting, model, checkpoint_label(saved.path), as_saved=False)
    misshapen = [f"{name} {saved.state[name].shape} against the model's {array.shape}" for name, array in own.items()
                 if name in saved.state and name not in fitting]
    kept = [name for name in own if name not in saved.state]
    unused = [name for name in saved.state if name not in own]
    parts = []
    if kept:
        parts.append(f"the model's node state {listed(kept, SHOWN)} is not in the checkpoint, and keeps its built "
                     "values")
    if misshapen:
        parts.append(f"node state shapes differ, and the model's keeps its built values: {listed(misshapen, SHOWN)}")
    if unused:
        parts.append(f"the checkpoint's node state {listed(unused, SHOWN)} is not in the model")
    return copied, f"train.init_from: {'; '.join(parts)}" if parts else None


def scaled_as_source(dataset: Any, scaling: tuple[np.ndarray, np.ndarray] | None, run: str) -> tuple[Any, list[str]]:
    """The new run's data with its inputs standardized as the run its parameters come from standardized its own,
    and notes: copied weights meet inputs on the scale they were trained on (fine-tuning on a part of the data
    would otherwise shift every input). Where one run standardized and the other does not, or the inputs' shapes
    differ, the data stays as it is and a note says so."""
    if scaling is None and dataset.x_mean is None:
        return dataset, []
    if scaling is None or dataset.x_mean is None:
        there, here = ("standardized", "as read") if scaling is not None else ("as read", "standardized")
        fix = f"data.standardize: {str(scaling is not None).lower()}"
        return dataset, [f"train.init_from: run {run!r} trained on inputs {there}, and this run's are {here}, so its "
                         f"parameters meet inputs on another scale; set {fix} to scale them as it did"]
    mean, scale = (np.asarray(figures, dtype=np.float64) for figures in scaling)
    if mean.shape != dataset.x_mean.shape:
        return dataset, [f"train.init_from: run {run!r} standardized examples of shape {mean.shape}, and this run's "
                         f"have shape {dataset.x_mean.shape}: they are standardized by this data's own figures"]
    if np.array_equal(mean, dataset.x_mean) and np.array_equal(scale, dataset.x_scale):
        return dataset, []
    return rescaled(dataset, mean, scale), [f"train.init_from: the inputs are standardized with the figures of run "
                                            f"{run!r}, whose parameters were trained on inputs so scaled (this "
                                            "data's own differ)"]


def _problems(missing: list[str], unexpected: list[str], misshapen: list[str]) -> list[str]:
    problems = []
    if missing:
        problems.append(f"it has no {listed(missing, SHOWN)}")
    if misshapen:
        problems.append(f"its shapes differ: {listed(misshapen, SHOWN)}")
    if unexpected:
        problems.append(f"the model has no {listed(unexpected, SHOWN)}")
    return problems


"""``nnframe gradcheck``: check a configured model's gradients numerically, in float64.

The model is built exactly as for training, from the config and its data, but
in float64; a batch of the training data flows through it and every parameter
(and the input) is compared with central differences, then the loss on the
model's output is checked the same way. A node whose backward is wrong shows up
as its parameter names (``affine1/W``) with a large relative error.

A wrong input gradient spoils the parameter gradients of every node before
it, so when the model fails, each node's input gradients are checked on
their own (``scale1/dx[affine1]``), on the values that reach the node moved
slightly off the kinks a ReLU or a max has at exact zeros and ties, and each
node whose input gradient is wrong is named, the nearest the output first.

Where every gradient agrees at the initial parameters, the model is checked
again with them moved off those values (see :func:`nnframe.testing.moved_params`),
where a scale at 1 or a bias at 0 no longer hides a backward that leaves it out.

Where the model fails, the check it failed runs again at three points about
0.1% off the values it failed at; where two pass, the failure stands with a
note that the differences likely cross a kink there (a ReLU's input within
1e-6 of 0), which a right backward does not follow.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from nnframe.build import Experiment, build_experiment
from nnframe.config_loader import LoadedConfig, load_not_to_train
from nnframe.errors import ConfigError
from nnframe.graph import Graph
from nnframe.graph_checks import described
from nnframe.node import differentiable_inputs
from nnframe.plugins import Plugins
from nnframe.testing import (DEFAULT_RTOL, MOVED_NOTE, GradCheckResult, check_gradients, moved_bound,
                             moved_failure, moved_params, off_its_values)


def check_experiment(config_path: Path, overrides: list[str], plugins: Plugins, batch: int = 4,
                     tolerance: float = DEFAULT_RTOL) -> GradCheckResult:
    """Build the experiment in float64, without its callbacks, and check the model and the loss on ``batch``
    training examples (the first ones that are not all zeros).

    Errors are keyed ``input/<name>`` for the model input, ``<node>/<param>``
    for parameters, ``<node>/dx[<input>]`` for each node's input gradient
    checked alone, and ``loss/input`` for the loss's gradient by its input.
    """
    if batch < 1:
        raise ConfigError(f"the gradient-check batch must hold at least 1 example, found {batch}")
    if not tolerance > 0:
        raise ConfigError(f"the gradient-check tolerance must be above 0, found {tolerance}")
    experiment = build_experiment(in_float64(load_not_to_train(config_path, overrides, plugins)), plugins,
                                  initial_params=False)
    rows = _checkable_rows(experiment.dataset.x, batch)
    x = experiment.dataset.x[rows]
    model = experiment.model
    model.need_input_grad = True
    result, node_errors, node_problems, failed_moved = _model_and_moved_check(model, x, tolerance)
    notes = [KINK_NOTE] if not result.ok and _passes_around(model, x, tolerance, failed_moved) else []
    errors = {_input_name(name, model.inputs): error for name, error in result.errors.items()}
    errors.update(node_errors)
    model.eval()
    loss_result = _check_loss(experiment, model.forward(x), rows, tolerance)
    errors.update({f"loss/{name.replace('input0', 'input')}": e for name, e in loss_result.errors.items()})
    return GradCheckResult(errors, tolerance, [*node_problems, *result.problems,
                                               *(f"loss: {p}" for p in loss_result.problems)],
                           zero=[_input_name(name, model.inputs) for name in result.zero], notes=notes)


NEARBY_SEEDS = (1, 2, 3)
NEARBY_PASSES = 2
NEARBY_SPREAD = 1e-3
KINK_NOTE = ("the check passes at two of three points with the parameters about 0.1% off the values it failed at: "
             "the differences there likely cross a kink (a ReLU or a max at 0), whose slope a right backward takes "
             "from one side; check at other values (another seed, or --batch)")


def _model_and_moved_check(model: Graph, x: np.ndarray,
                           tolerance: float) -> tuple[GradCheckResult, dict[str, float], list[str], bool]:
    """:func:`_model_check` at the parameters as given and, where it passes, with them moved off their values (see
    :func:`nnframe.testing.moved_params`); the last item says whether the failure is the one moved off them."""
    result, node_errors, node_problems = _model_check(model, x, tolerance)
    moved = off_its_values(model, partial(_model_check, model, x, moved_bound(tolerance))) if result.ok else None
    failed = moved_failure(result, moved[0]) if moved is not None else None
    if failed is None:
        return result, node_errors, node_problems, False
    _, moved_errors, moved_problems = moved
    node_errors = {name: e for name, e in moved_errors.items() if e > moved_bound(tolerance)}  # not rounding
    return failed, node_errors, [*moved_problems, MOVED_NOTE], True


def _passes_around(model: Graph, x: np.ndarray, tolerance: float, moved: bool) -> bool:
    """Whether the model passes, at two of three points, the check it failed, with the parameters moved off the
    values it failed at by about 0.1%: a model that fails where it stands and not around it has met a kink of a
    ReLU or a max, which a step of 1e-6 crosses within 1e-6 of it (behind a batch norm over 8 rows, at about one
    point in twenty), while a wrong backward fails at every point. The failure stands; a note says so.

    Around the values the check moved the parameters to, not around the values as given: 0.1% off a bias at 0,
    that check would no longer set it to a number that shows a term left out. The checks run on a copy, whose
    running statistics and random generators they move."""
    model = _copy(model)
    if model is None:
        return False
    bound = moved_bound(tolerance) if moved else tolerance
    passes = 0
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        with moved_params(model) if moved else contextlib.nullcontext():
            for seed in NEARBY_SEEDS:
                try:
                    with moved_params(model, seed, spread=NEARBY_SPREAD):
                        passes += check_gradients(model, x, rtol=bound, raise_on_failure=False, moved=False).ok
                except Exception:  # a node that leaves its domain there: that point says nothing
                    pass
    return passes >= NEARBY_PASSES


def _traced(model: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """``model.trace(x)`` on a copy, whose running statistics it moves; on the model itself where the copy cannot
    be made, or fails (a node that drops an open file when copied)."""
    copied = _copy(model)
    if copied is not None:
        try:
            return copied.trace(x)
        except Exception:
            pass
    return model.trace(x)


def _copy(model: Graph) -> Graph | None:
    """A deep copy of ``model``, to run checks on that move its running statistics and generators; None where a
    node holds what does not copy (a lock, an open file)."""
    try:
        return copy.deepcopy(model)
    except Exception:
        return None


def _model_check(model: Graph, x: np.ndarray, tolerance: float) -> tuple[GradCheckResult, dict[str, float], list[str]]:
    """The whole model's check and, when it fails, each node's input gradients on their own."""
    result = check_gradients(model, x, rtol=tolerance, raise_on_failure=False, moved=False)
    if result.ok:
        return result, {}, []
    return result, *_node_input_gradients(model, x, tolerance)


def _node_input_gradients(model: Graph, x: np.ndarray, tolerance: float) -> tuple[dict[str, float], list[str]]:
    """Every node's input gradients, checked alone near the values that reach it; the wrong ones, nearest the output
    first.

    Each input is a copy of its own (a node may read one value twice, ``mul``
    of ``h`` and ``h``), moved by about 1e-3: exactly on a kink, central
    differences disagree with any one-sided derivative.
    """
    values = {model.inputs[0]: x, **_traced(model, x)}
    jitter = np.random.default_rng(0)
    errors: dict[str, float] = {}
    wrong: list[str] = []
    for name, node in model.nodes.items():
        sources = model.inputs_of(name)
        moved = [_off_kinks(values[source], jitter) for source in sources]
        takes = differentiable_inputs(node, len(sources))
        inputs = [jittered if differentiated else values[source].copy()  # an index stays whole
                  for jittered, differentiated, source in zip(moved, takes, sources)]
        result = _alone(node, inputs, [values[source].copy() for source in sources], tolerance)
        if isinstance(result, Exception):
            wrong.append(f"{described(name, node)} could not be checked on its own, at the values that reach it "
                         f"or near them ({type(result).__name__}: {result}); its gradients are unknown")
            continue
        wrong += [f"{described(name, node)}: {problem}" for problem in result.problems]
        for key, error in result.errors.items():
            k = int(key.removeprefix("input"))
            source = sources[k] if sources.count(sources[k]) == 1 else f"{sources[k]}, argument {k}"
            errors[f"{name}/dx[{source}]"] = error
            if not error <= tolerance:
                wrong.append(f"{described(name, node)} returns a wrong gradient for its input {source!r} "
                             f"(relative error {error:.3e}); the errors of the nodes before it may follow from it")
    return errors, wrong[::-1]  # each checked on its own inputs, so each is wrong itself; the nearest the output first


def _alone(node: Any, moved: list[np.ndarray], exact: list[np.ndarray],
           tolerance: float) -> GradCheckResult | Exception:
    """``node``'s input gradients checked alone at the values moved off kinks, else (a node that refuses them: a
    domain's edge) at the values themselves; where it refuses both, what it raised, which the model's report names
    rather than ending on it."""
    refused: Exception = RuntimeError("not checked")
    for inputs in (moved, exact):
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return check_gradients(node, *inputs, rtol=tolerance, raise_on_failure=False, params=False,
                                       moved=False)
        except Exception as exc:
            refused = exc
    return refused


def _off_kinks(value: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if not np.issubdtype(value.dtype, np.floating):
        return value.copy()
    return value + 1e-3 * rng.standard_normal(value.shape)


def in_float64(loaded: LoadedConfig) -> LoadedConfig:
    """The same config with ``train.dtype`` set to float64, the precision gradients are checkable in."""
    settings = loaded.experiment
    train = settings.train.model_copy(update={"dtype": "float64"})
    return LoadedConfig(settings.model_copy(update={"train": train}), loaded.path, loaded.overrides)


def _input_name(name: str, inputs: list[str]) -> str:
    if name.startswith("input") and name[5:].isdigit() and int(name[5:]) < len(inputs):
        return f"input/{inputs[int(name[5:])]}"
    return name


def _checkable_rows(x: np.ndarray, batch: int) -> np.ndarray:
    """The first ``batch`` examples that are not all zeros.

    An all-zero example meets a zero-initialised bias exactly at a ReLU's kink,
    where central differences disagree with any one-sided derivative (the
    spiral's first point of every arm is the origin).
    """
    nonzero = np.flatnonzero(np.any(x.reshape(len(x), -1) != 0, axis=1))
    rows = nonzero[:batch]
    return rows if len(rows) == min(batch, len(x)) else np.arange(min(batch, len(x)))


def _check_loss(experiment: Experiment, out: np.ndarray, rows: np.ndarray, tolerance: float) -> GradCheckResult:
    target = experiment.dataset.y[rows]
    return check_gradients(experiment.loss, np.array(out, dtype=np.float64), target=target, rtol=tolerance,
                           raise_on_failure=False)

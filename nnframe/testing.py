"""Gradient checks for plugin authors and for nnframe's own tests; also a pytest plugin.

:func:`check_gradients` compares a node's (or model's, or loss's) analytic
gradients with central differences, in float64. It reduces the output to a
scalar with a fixed random projection ``L = Σ out * R`` so ``dout = R``
exercises every output element with a different weight.

The error of one array is the norm-wise relative error
``‖a - n‖ / max(‖a‖ + ‖n‖, 1e-12)`` between the analytic gradient ``a`` and the
numerical one ``n``; unlike an element-wise ratio it is not thrown off by
entries that are zero up to rounding. A correct float64 node scores about
1e-9; a missing factor scores 1e-2 or more. An array that fails at the first
step size, ``STEPS[0]``, is differentiated again at the larger ones and keeps
its smallest error where the differences there have converged (see
:func:`_compare`): the rounding of a difference grows as the step shrinks,
and a gradient far smaller than the scalar it moves (a parameter deep in a
net initialised at 0.01) can fail at 1e-6 from rounding alone.

:func:`check_optimizer` (from :mod:`nnframe.optimizer_check`, imported on
first use) checks an optimizer plugin's rule: updates in place, exact resumes
from its ``state_dict``, the same result on one buffer as on separate arrays.

Installed as the pytest plugin ``nnframe``, this module provides the fixtures
``gradcheck`` (this :func:`check_gradients`), ``optimizer_check``
(:func:`check_optimizer`) and ``nnframe_plugins`` (a fresh plugin manager).
"""

from __future__ import annotations

import copy
import math
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import numpy as np

from nnframe.generators import generators_in, objects_in, searched
from nnframe.graph_checks import INPUT_WRITTEN, changed_inputs, first_shared_param
from nnframe.losses import Loss

T = TypeVar("T")
DEFAULT_RTOL = 1e-5
STEPS = (1e-6, 1e-5, 1e-4)
"""Central-difference steps, tried in order until an array's error is within the tolerance."""
CONVERGED = 10
"""Differences over a step and over twice it have converged where they agree within this many tolerances:
two noisy estimates differ by more than either differs from the true gradient, while a truncation that
could pass a wrong gradient shows as a difference of 0.1 or more."""
_NORM_FLOOR = 1e-12
PROJECTION_STREAM = 0x6E6E66
"""Mixed into the seed of the projection ``R`` (and a loss's weight): the stream of a plain
``np.random.default_rng(seed)``, from which a test may well draw its input, made ``dout`` equal ``x``, and a
backward that reads its cached input where ``dout`` belongs passed."""
ROUNDING_SHARE = 1e-8
"""A gradient is zero up to rounding, and counted as zero rather than compared, where its analytic and
numerical norms both lie below this share of the largest analytic norm in the check and the numerical one
shrinks as the step grows, as rounding over the step does (a real gradient stays): a bias just before a
batch norm has gradient 0, computed as 1e-16 one way and 1e-10 the other, which the relative error reads
as 1."""
ROUNDING_SHRINK = 0.1
"""How much the numerical norm must shrink, from the smallest step to the largest, to be rounding."""
ROUNDING_NOISE = 100
"""Where the difference at the smallest step is exactly 0 (the two sides round alike), rounding is a numerical
norm at the largest step ``h`` within this many times ``eps * |L| * sqrt(size) / h``, ``L`` the checked scalar."""


class GradientCheckError(AssertionError):
    """Analytic and numerical gradients disagree; the message names the worst array."""


@dataclass
class GradCheckResult:
    """Relative error per checked array (``"input0"``, ``"W"``, ...), the worst one, and the verdict."""

    errors: dict[str, float]
    rtol: float = DEFAULT_RTOL
    problems: list[str] = field(default_factory=list)
    zero: list[str] = field(default_factory=list)
    """Arrays whose gradient is zero, numerically too, exactly or up to rounding (see
    :data:`ROUNDING_SHARE`): the result does not depend on them here (a bias just before a batch norm, or a
    node that reads its own copy of a parameter), which a zero error alone would hide."""
    notes: list[str] = field(default_factory=list)
    """What a reader of a failed check should know that is no problem of the code (``nnframe gradcheck`` notes a
    model that fails only where it stands, as at a ReLU's kink)."""
    norms: dict[str, tuple[float, float, float, int]] = field(default_factory=dict, repr=False)
    """Each array's analytic gradient norm, its numerical one at the smallest and at the last step taken, and
    its size."""

    @property
    def worst(self) -> tuple[str, float] | None:
        """The largest error, a NaN above any (``max`` alone passes over a NaN that is not first)."""
        if not self.errors:
            return None
        name = max(self.errors, key=lambda key: (math.isnan(self.errors[key]), self.errors[key]))
        return name, self.errors[name]

    @property
    def worst_name(self) -> str | None:
        return self.worst[0] if self.worst else None

    @property
    def worst_error(self) -> float:
        return self.worst[1] if self.worst else 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and self.worst_error <= self.rtol

    def describe(self) -> str:
        parts = [f"{name}={error:.3g}" for name, error in self.errors.items()]
        return f"errors: {', '.join(parts) or '(nothing checked)'}"

    def __repr__(self) -> str:
        return f"GradCheckResult(ok={self.ok}, worst={self.worst}, rtol={self.rtol})"


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``∂f/∂x`` by central differences ``(f(x + eps) - f(x - eps)) / 2eps``, one element at a time.

    ``x`` must be a float64 array; it is perturbed in place (so ``f`` may read
    it through a closure or from its argument) and restored exactly.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        found = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"numerical_gradient needs a float64 numpy array, found {found}; "
                        f"finite differences in lower precision are too coarse to check anything")
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + eps
        plus = float(f(x))
        x[index] = original - eps
        minus = float(f(x))
        x[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``‖a - n‖ / max(‖a‖ + ‖n‖, 1e-12)``: 0 when equal, 1 when unrelated or opposite."""
    scale = max(float(np.linalg.norm(analytic) + np.linalg.norm(numeric)), _NORM_FLOOR)
    return float(np.linalg.norm(analytic - numeric)) / scale


def check_gradients(obj: Any, *inputs: np.ndarray, target: Any = None, rtol: float = DEFAULT_RTOL,
                    seed: int = 0, raise_on_failure: bool = True, params: bool = True,
                    moved: bool = True) -> GradCheckResult:
    """Check ``obj``'s backward against central differences, in float64.

    ``obj`` is a node (``forward(*inputs)`` / ``backward(dout)``, ``params``,
    ``grads``), a model with the same protocol (parameters named by its
    ``param_names``), or — when ``target`` is given — a loss
    (``forward(x, target) -> float`` / ``backward(dout)``; only ``x`` is
    differentiated). Float inputs and every parameter must be float64; integer
    inputs are passed through undifferentiated. Every numpy ``Generator``
    reachable from ``obj`` (e.g. a Dropout's ``rng``, on the model's nodes too)
    is restored before each forward pass, so random masks stay fixed, and so
    is every node's state (``state_names``: running statistics). Raises
    :class:`GradientCheckError` naming the worst array when an error exceeds
    ``rtol`` (unless ``raise_on_failure`` is false) and returns the errors.
    ``params=False`` checks the input gradients only.

    Where every gradient agrees, the check has also run with the parameters
    moved off their values (see :func:`moved_params`, drawn from ``seed``),
    at :func:`moved_bound` of ``rtol``: a scale at 1 or a bias at 0 hides a
    backward that leaves it out. A node that leaves its domain there (it
    raises, or an error is not finite) is judged at its values alone, and the
    check ends on a pass at its values, so its gradients and caches are
    theirs. ``moved=False`` leaves that out.

    Each pass starts with a forward on other inputs (see
    :func:`_forward_elsewhere`), so a backward that reads what an earlier
    forward kept fails, and an input that a forward or backward changed
    fails the check, put back as it was.
    """
    __tracebackhide__ = True  # pytest shows a failed check at the test's call, not inside this function
    if target is None and isinstance(obj, Loss):
        raise TypeError(f"check_gradients: {type(obj).__name__} is a loss; give its targets by name, "
                        "check_gradients(loss, x, target=t)")
    as_given = _copy_of(obj)
    off = (off_its_values(obj, partial(_check_once, obj, inputs, target, moved_bound(rtol), seed, params), seed)
           if moved and getattr(obj, "params", None) else None)
    result = _check_once(obj, inputs, target, rtol, seed, params)
    failed = moved_failure(result, off)
    if failed is not None:
        failed.problems.append(MOVED_NOTE)
        result = failed
    if not result.ok and not result.problems and as_given is not None and _passes_first(as_given, inputs, target,
                                                                                        rtol, seed, params):
        result.problems.append(STALE_NOTE)
    if raise_on_failure and not result.ok:
        raise GradientCheckError(_failure_message(obj, result))
    return result


STALE_NOTE = ("the gradients agree when the check's forward is the first this object runs, and not after a "
              "forward on other inputs: its backward reads something kept from an earlier forward; keep what "
              "backward needs on every forward")
ELSEWHERE_STREAM = 0x656C73
"""Mixed into the seed of the other inputs of the forward a check runs first (see :func:`_forward_elsewhere`)."""
ELSEWHERE_SPREAD = 0.25


MOVED_SLACK = 100.0
MOVED_CAP = 1e-3
"""The check with the parameters moved looks for a term left out, which is off by far more than rounding: it
allows ``MOVED_SLACK`` tolerances of the values that were not chosen to difference well (a deep net's first
layer behind weights of 0.01 came to 1.2 tolerances there), but no more than ``MOVED_CAP``, which a bias at 0
left out stays above (0.009 to 0.03), so a loose tolerance does not turn the check off."""
MOVED_NOTE = ("the gradients agree at the parameters as given and not with the parameters moved off them: a "
              "backward that leaves out a parameter at 1 or 0 (a scale, a bias) passes there")


def moved_bound(rtol: float) -> float:
    """The largest error allowed with the parameters moved: see :data:`MOVED_CAP`; never below ``rtol``."""
    return max(rtol, min(rtol * MOVED_SLACK, MOVED_CAP))


def off_its_values(obj: Any, check: Callable[[], T], seed: int = 0) -> T | None:
    """``check()`` with ``obj``'s parameters moved off their values (see :func:`moved_params`), numpy's warnings
    silenced; None where it raises (a node checking its own domain, a matrix no longer positive definite)."""
    try:
        with moved_params(obj, seed), np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return check()
    except Exception:
        return None


def moved_failure(result: GradCheckResult, off: GradCheckResult | None) -> GradCheckResult | None:
    """``result`` (a pass at the values as given) with the errors of ``off`` (the check off them) beyond
    :func:`moved_bound`, and ``off``'s problems, where ``off`` fails; None where either passes, or where ``off``
    has an error that is not finite: a node that leaves its domain there is judged at its values alone."""
    if not result.ok or off is None or off.ok or not all(math.isfinite(e) for e in off.errors.values()):
        return None
    wrong = {name: error for name, error in off.errors.items() if error > moved_bound(result.rtol)}
    return GradCheckResult({**result.errors, **wrong}, result.rtol, list(off.problems),
                           zero=[name for name in result.zero if name in off.zero])


@contextmanager
def moved_params(obj: Any, seed: int = 0, spread: float = 0.5) -> Iterator[None]:
    """``obj``'s parameters moved off their values, then put back exactly.

    Values hide wrong gradients: with a scale at 1, ``dx = dy`` passes for
    ``dx = dy * s``; with a bias at 0, a term in ``b`` is left out unseen.
    Each value is multiplied by ``exp(spread * z)``, which keeps its sign (a
    variance stays positive), and a zero becomes ``0.4 * spread * z``. The
    gradients are put back too.
    """
    rng = np.random.default_rng(seed)
    params = list(getattr(obj, "params", []))
    arrays = [a for a in (*params, *getattr(obj, "grads", [])) if isinstance(a, np.ndarray)]
    kept = [a.copy() for a in arrays]  # the gradients too: a pass after this one starts where it would have
    try:
        for p in params:
            if isinstance(p, np.ndarray) and np.issubdtype(p.dtype, np.floating) and p.size:
                noise = rng.standard_normal(p.shape)
                np.copyto(p, np.where(p == 0, 0.4 * spread * noise, p * np.exp(spread * noise)))
        yield
    finally:
        for array, value in zip(arrays, kept):
            array[...] = value


def _check_once(obj: Any, inputs: tuple, target: Any, rtol: float, seed: int, params: bool,
                elsewhere: bool = True) -> GradCheckResult:
    """One check at the parameters as they are; ``elsewhere`` runs a forward on other inputs first (see
    :func:`_forward_elsewhere`)."""
    _require_float64(obj, inputs)
    rng = np.random.default_rng([PROJECTION_STREAM, seed])
    generators = _find_generators(obj)
    states = [g.bit_generator.state for g in generators]
    node_state = _find_node_state(obj)

    def restore() -> None:
        for generator, state in zip(generators, states):
            generator.bit_generator.state = state
        for owner, attribute, held, value in node_state:
            if getattr(owner, attribute, None) is held:
                held[...] = value  # into the array itself: a view of the node's own buffer stays one
            else:
                setattr(owner, attribute, value.copy())

    kept = (tuple(getattr(obj, "params", [])), tuple(getattr(obj, "grads", [])))
    given = [x.copy() for x in inputs]  # before any forward: one that writes into an index input writes it again
    if elsewhere:
        _forward_elsewhere(obj, inputs, target, seed, restore)
    if target is not None:
        scalar, analytic_inputs, again = _loss_pass(obj, inputs, target, rng, restore)
    else:
        scalar, returned, again = _node_pass(obj, inputs, rng, restore)
        analytic_inputs = returned if isinstance(returned, (tuple, list)) else (returned,)
    written = _written_inputs(obj, inputs, given)
    if written:
        return GradCheckResult({}, rtol, written)
    duck_loss = target is not None and not (hasattr(obj, "params") or hasattr(obj, "grads"))
    result = GradCheckResult({}, rtol, [] if duck_loss else _protocol_problems(obj, *kept))
    if target is None and len(inputs) > 1 and len(analytic_inputs) != len(inputs):
        result.problems.append(f"{type(obj).__name__}.backward returned {type(returned).__name__}, but it reads "
                               f"{len(inputs)} inputs, so it must return a tuple of {len(inputs)} gradients (None "
                               "for an input that takes none), as a graph requires")
    analytic_params = [np.array(g, dtype=np.float64) for g in getattr(obj, "grads", [])]
    if _varies(scalar):
        return GradCheckResult({}, rtol, [*result.problems, RANDOM_NOTE])
    if params and analytic_params:
        again()
        result.problems += _added_gradients(obj, analytic_params)
    _compare_inputs(obj, inputs, analytic_inputs, scalar, result)
    for name, param, analytic in zip(_param_names(obj), getattr(obj, "params", []) if params else [],
                                     analytic_params):
        _compare(name, analytic, partial(numerical_gradient, lambda _: scalar(), param), result)
    _zeros_up_to_rounding(result, abs(scalar()))
    restore()
    shared = first_shared_param(_param_names(obj), getattr(obj, "params", [])) if params and not result.ok else None
    if shared:
        result.problems.append(f"{shared[0]} and {shared[1]} are one array: each holds the gradient of its own "
                               "use, and the check compares it with the model's, their sum (sum them, as the book's "
                               "remove_duplicate does, or check each node on its own)")
    return result


RANDOM_NOTE = ("its forward gives another result for the same inputs each time: it draws from a random generator "
               "the check cannot find and put back, one made on its first forward or numpy's global one; keep a "
               "numpy Generator on the node from when it is built (self.rng = ctx.rng in a plugin's build), which "
               "the check finds and restores before each forward")


def _varies(scalar: Callable[[], float]) -> bool:
    """Whether two forwards on the same inputs, the generators and state put back, give different results."""
    first, second = scalar(), scalar()
    return not (math.isclose(first, second, rel_tol=1e-12, abs_tol=0.0) or (math.isnan(first) and math.isnan(second)))


def _copy_of(obj: Any) -> Any:
    """A deep copy of ``obj`` as it is before a check, or None where it has none."""
    try:
        return copy.deepcopy(obj)
    except Exception:
        return None


def _passes_first(obj: Any, inputs: tuple, target: Any, rtol: float, seed: int, params: bool) -> bool:
    """Whether a fresh ``obj`` passes where the check's forward is the first it runs."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _check_once(obj, inputs, target, rtol, seed, params, elsewhere=False).ok
    except Exception:
        return False


def _forward_elsewhere(obj: Any, inputs: tuple, target: Any, seed: int, restore: Callable[[], None]) -> None:
    """A forward on other inputs, before the check's own: a node that keeps its input only on its first forward
    (``if self.x is None``) passes a check whose forward is its first, and is wrong from its second batch on.

    Each float input is multiplied by ``exp(ELSEWHERE_SPREAD * z)``, which
    keeps its signs and zeros; a node that refuses them (a domain of its own)
    is checked without this forward.
    """
    rng = np.random.default_rng([ELSEWHERE_STREAM, seed])
    other = [x * np.exp(ELSEWHERE_SPREAD * rng.standard_normal(x.shape)) if _is_float(x) else x for x in inputs]
    restore()
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj.forward(*other) if target is None else obj.forward(other[0], target)
    except Exception:
        pass


def _written_inputs(obj: Any, inputs: tuple, given: list[np.ndarray]) -> list[str]:
    """The inputs a forward and backward changed, put back as they were: a graph keeps a node's input for the
    other nodes that read it, whose backward would then differentiate at the changed values."""
    written = changed_inputs(inputs, given)
    for i in written:
        np.copyto(inputs[i], given[i])
    return [f"{type(obj).__name__} wrote into its input{i}: {INPUT_WRITTEN}" for i in written]


Pass = tuple[Callable[[], float], Any, Callable[[], None]]
"""What a first pass gives: the scalar to differentiate numerically, the analytic input gradients (as a node's
backward returned them; a tuple from a loss), and a way to run the same forward and backward again."""


def _loss_pass(obj: Any, inputs: tuple, target: Any, rng: np.random.Generator,
               restore: Callable[[], None]) -> Pass:
    if len(inputs) != 1:
        raise TypeError(f"a loss takes one input besides the target, found {len(inputs)}")
    weight = float(rng.standard_normal())

    def scalar() -> float:
        restore()
        value = obj.forward(inputs[0], target)
        if np.ndim(value) != 0:
            raise TypeError(f"{type(obj).__name__}.forward returned {type(value).__name__} of shape "
                            f"{np.shape(value)}; a loss returns the batch's mean loss as one float")
        return weight * float(value)

    def again() -> None:
        scalar()
        obj.backward(weight)

    scalar()
    return scalar, (obj.backward(weight),), again


def _node_pass(obj: Any, inputs: tuple, rng: np.random.Generator, restore: Callable[[], None]) -> Pass:
    restore()
    out = obj.forward(*inputs)
    projection = rng.standard_normal(np.shape(out))

    def scalar() -> float:
        restore()
        return float(np.sum(obj.forward(*inputs) * projection))

    def backward() -> Any:
        return obj.backward(projection.copy())

    def again() -> None:
        restore()
        obj.forward(*inputs)
        backward()

    return scalar, backward(), again


def _added_gradients(obj: Any, first: list[np.ndarray]) -> list[str]:
    """Parameter gradients that a second forward and backward on the same data changed.

    A backward that adds to its gradient (``grads[0] += ...``) passes a
    single check, its arrays starting at zero, but in training it sums the
    gradients of every step; it must write over them.
    """
    problems = []
    for name, before, now in zip(_param_names(obj), first, getattr(obj, "grads", [])):
        scale, now_scale = _largest(before), _largest(now)
        if not np.allclose(now, before, rtol=1e-9, atol=1e-12 * scale, equal_nan=True):  # a NaN is the same NaN
            problems.append(f"parameter {name!r} has another gradient after a second forward and backward on the "
                            f"same data (first |g| max {scale:.4g}, now {now_scale:.4g}): backward must write each "
                            "parameter gradient over the old one (grads[i][...] = ...), not add to it")
    return problems


def _largest(values: np.ndarray) -> float:
    """The largest magnitude among the finite values (0 where there is none)."""
    values = np.asarray(values)
    return float(np.max(np.abs(values[np.isfinite(values)]), initial=0.0))


def _protocol_problems(obj: Any, params: tuple, grads: tuple) -> list[str]:
    """The node-protocol checks a graph makes (:mod:`nnframe.graph_checks`), as problems of this check."""
    from nnframe.errors import NodeProtocolError
    from nnframe.graph_checks import check_arrays_kept, check_node_arrays

    problems = []
    name = type(obj).__name__
    for check in (partial(check_node_arrays, name, obj), partial(check_arrays_kept, name, obj, params, grads)):
        try:
            check()
        except NodeProtocolError as exc:
            problems.append(str(exc))
    return problems


def _compare_inputs(obj: Any, inputs: tuple, analytic: tuple, scalar: Callable[[], float],
                    result: GradCheckResult) -> None:
    from nnframe.node import Node, differentiable_inputs, index_input_hint

    for i, (x, takes) in enumerate(zip(inputs, differentiable_inputs(obj, len(inputs)))):
        if not takes or not _is_float(x):  # indices, even held as floats: no gradient to check
            continue
        name = f"input{i}"
        grad = analytic[i] if i < len(analytic) else None
        if grad is None:
            if isinstance(obj, Node) and obj.need_dx:
                result.problems.append(f"{type(obj).__name__}.backward returned no gradient for {name} although "
                                       f"need_dx is True; {index_input_hint(obj, len(inputs), i)}")
            continue
        _compare(name, np.asarray(grad, dtype=np.float64), partial(numerical_gradient, lambda _: scalar(), x), result)


def _compare(name: str, analytic: np.ndarray, numerical: Callable[..., np.ndarray], result: GradCheckResult) -> None:
    """The error of ``analytic`` against ``numerical(eps=STEPS[0])``; where that fails, the smallest error at the
    larger steps whose differences have converged, stopping once passed.

    A larger step counts only where the differences over it and over twice it
    agree within :data:`CONVERGED` tolerances: there the rounding has shrunk and the
    truncation (``h**2 / 6`` times the third derivative) is not yet showing.
    Otherwise a wrong gradient shaped like the truncation (``3x**2 + h**2``
    for ``x**3`` at tiny ``x``) would pass. Within the agreement allowed, a
    truncation of a few tolerances can still match a gradient off by as much
    (``cos(150 x)`` scaled by ``1 - 3.75e-5`` for ``sin(150 x) / 150`` passes at
    ``h = 1e-4``). Richardson's ``(4 D(h) - D(2h)) / 3`` would cancel that
    term, but carries 1.34 times the rounding of ``D(h)``, where the larger
    steps are taken for rounding: correct deep nets at weights of 0.012
    failed in 23 of 30 projections against 13.
    """
    numeric = numerical(eps=STEPS[0])
    if analytic.shape != numeric.shape:
        result.errors[name] = float("inf")
        result.problems.append(f"gradient of {name} has shape {analytic.shape}, expected {numeric.shape}")
        return
    error = relative_error(analytic, numeric)
    first_norm = float(np.linalg.norm(numeric))
    if not analytic.any() and not numeric.any():
        result.zero.append(name)
    for step in STEPS[1:]:
        if error <= result.rtol:
            break
        numeric = numerical(eps=step)
        if relative_error(numeric, numerical(eps=2 * step)) <= CONVERGED * result.rtol:
            error = min(error, relative_error(analytic, numeric))
    result.errors[name] = error
    result.norms[name] = (float(np.linalg.norm(analytic)), first_norm, float(np.linalg.norm(numeric)), analytic.size)


def _zeros_up_to_rounding(result: GradCheckResult, level: float) -> None:
    """Count the failed arrays whose gradients are zero up to rounding as zero (see :data:`ROUNDING_SHARE`);
    ``level`` is the checked scalar's size."""
    largest = max((analytic for analytic, *_ in result.norms.values()), default=0.0)
    for name, (analytic, first, last, size) in result.norms.items():
        noise = ROUNDING_NOISE * np.finfo(np.float64).eps * max(level, 1.0) * math.sqrt(size) / STEPS[-1]
        rounding = last <= ROUNDING_SHRINK * first or (first == 0.0 and last <= noise)
        if (result.errors[name] > result.rtol and rounding
                and max(analytic, first, last) <= ROUNDING_SHARE * largest):
            result.errors[name] = 0.0
            if name not in result.zero:
                result.zero.append(name)


def _failure_message(obj: Any, result: GradCheckResult) -> str:
    """The problems found, then the worst relative error where it is above the tolerance: a worst error within it,
    or none where nothing was compared, would point at an array that is not what failed."""
    problems = "; ".join(result.problems)
    name, error = result.worst or ("(none)", 0.0)
    if problems and (result.worst is None or error <= result.rtol):
        return f"gradient check of {obj!r} failed: {problems}"
    return (f"gradient check of {obj!r} failed: {problems + '; ' if problems else ''}worst is {name!r} with relative "
            f"error {error:.3g} (rtol {result.rtol:g}); {result.describe()}")


def _param_names(obj: Any) -> list[str]:
    """The names a node's ``repr`` and a graph give its parameters: ``param_names``, else ``p0``, ``p1``..."""
    params = getattr(obj, "params", [])
    names = list(getattr(obj, "param_names", None) or [])
    if len(names) != len(params):
        return [f"p{i}" for i in range(len(params))]
    return names


def _is_float(x: Any) -> bool:
    return isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)


def _require_float64(obj: Any, inputs: tuple) -> None:
    for i, x in enumerate(inputs):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"check_gradients: input{i} must be a numpy array, found {type(x).__name__}")
        if _is_float(x) and x.dtype != np.float64:
            raise TypeError(f"check_gradients: input{i} is {x.dtype}; pass float64 inputs "
                            f"(gradients are only checkable in float64)")
    for name, param in zip(_param_names(obj), getattr(obj, "params", [])):
        if param.dtype != np.float64:
            raise TypeError(f"check_gradients: parameter {name!r} of {obj!r} is {param.dtype}; build it in "
                            "float64 to check its gradients (a node: NodeContext(dtype=np.float64); a model from a "
                            "config: train.dtype=float64, or `nnframe gradcheck`, which does it)")


_LAZY = {"check_optimizer": "nnframe.optimizer_check", "OptimizerCheckError": "nnframe.optimizer_check"}
"""Names served from modules this one does not import up front: pytest loads it in every session."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nnframe.testing' has no attribute {name!r}")


def _find_node_state(obj: Any) -> list[tuple[Any, str, np.ndarray, np.ndarray]]:
    """``(node, attribute, array, value)`` for the state of ``obj`` and of every node inside it (see
    :attr:`nnframe.Node.state_names`), which a forward in training may update: set back before each pass, as
    the generators are, so that every pass computes one function (anew, for a node that rebinds its state)."""
    from nnframe.node import Node

    if not isinstance(obj, Node):
        return []
    owners = [obj, *(inner for _, inner in objects_in(obj, Node, searched(obj)))]
    return [(owner, name, array, array.copy()) for owner in owners for name, array in Node.named_state(owner)]


def _find_generators(obj: Any) -> list[np.random.Generator]:
    """Every numpy ``Generator`` reachable from ``obj`` (see :func:`nnframe.generators.generators_in`)."""
    return [rng for _, rng in generators_in(obj)]


# --------------------------------------------------------------------------
# pytest plugin (entry point ``pytest11: nnframe``). pytest is already imported
# whenever it loads this module; other importers do not pay for it.
# --------------------------------------------------------------------------

if "pytest" in sys.modules:
    import pytest

    @pytest.fixture
    def gradcheck() -> Callable[..., GradCheckResult]:
        """:func:`nnframe.testing.check_gradients`, for plugin authors' tests."""
        return check_gradients

    @pytest.fixture
    def optimizer_check() -> Callable[..., None]:
        """:func:`nnframe.optimizer_check.check_optimizer`, for plugin authors' tests."""
        from nnframe.optimizer_check import check_optimizer

        return check_optimizer

    @pytest.fixture
    def nnframe_plugins() -> Any:
        """A fresh nnframe plugin manager (entry points loaded) for this test (see :func:`plugins_for_a_test`)."""
        return plugins_for_a_test()


def plugins_for_a_test() -> Any:
    """A fresh plugin manager, entry points loaded; each plugin it left out, broken, is a warning, which pytest
    shows, since a test would otherwise meet only a missing name (a ``KeyError`` from ``plugin_of``)."""
    from nnframe.plugins import get_plugin_manager

    manager = get_plugin_manager()
    for broken in manager.broken:
        warnings.warn(f"nnframe: {broken.describe()}", stacklevel=2)
    return manager

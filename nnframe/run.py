"""What the training-event hooks receive: the run, and the metrics of a step or evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from nnframe.errors import PluginError
from nnframe.hook_checks import hook_problems
from nnframe.plugin_distributions import distribution_of
from nnframe.validation_metrics import ValidationMetric


@dataclass
class StepMetrics:
    """The state after one optimizer step.

    ``accuracy`` (a classification run's) or ``rmse`` and ``mae`` (another run's,
    see :mod:`nnframe.error_measures`), all of the batch, and ``grad_norms`` are
    filled in only when ``logged`` is true.
    ``grad_norms`` maps ``"global"`` and each ``"<node>/<param>"`` to the L2 norm
    of the gradient before clipping and before the update. ``skipped`` is true
    for a step whose update ``train.on_nonfinite: skip_step`` dropped (its loss
    or a gradient was not finite); ``step`` counts it all the same.
    """

    step: int
    epoch: int
    loss: float
    lr: float
    logged: bool = False
    accuracy: float | None = None
    grad_norms: dict[str, float] | None = None
    skipped: bool = False
    rmse: float | None = None
    mae: float | None = None


@dataclass
class EvalMetrics:
    """Loss and accuracy (or, for a run that measures no accuracy, ``rmse`` and ``mae``) on the validation set at
    optimizer step ``step``.

    ``scheduled`` is false for the evaluation a run adds after its last step
    when that step is not on ``train.eval_every`` (or, without it, not at
    the end of an epoch): a length it does not divide, a stop, a run cut
    short with ``train.max_steps``. A run cut short and resumed has one such
    evaluation more than an uninterrupted run, so a plugin that counts
    evaluations (early stopping) leaves those out.
    """

    step: int
    epoch: int
    loss: float
    accuracy: float | None
    scheduled: bool = True
    rmse: float | None = None
    mae: float | None = None

    def value_of(self, metric: ValidationMetric) -> float | None:
        """The value of ``"val/loss"``, ``"val/accuracy"``, ``"val/rmse"`` or ``"val/mae"``."""
        return getattr(self, metric.removeprefix("val/"))


@dataclass
class RunContext:
    """One training run as plugins see it.

    ``config`` is the fully resolved experiment config as a plain dict;
    ``run_dir`` is ``None`` when the run writes nothing (a dry or in-memory run).
    ``model`` and ``optimizer`` are the live objects, so a logger can read
    parameters and gradients. ``summary`` collects what goes into ``summary.json``.
    ``state`` is the plugins' own: what one must find again on a resume (an
    early stopper's best loss and patience count), under a key of its own, in
    plain numbers, strings, lists and dicts with string keys; it is saved in
    every checkpoint and given back, as it was at that checkpoint, before
    ``nnframe_configure_run`` of the resume. A plugin that keeps its values
    elsewhere writes them in here in ``nnframe_checkpoint`` at the latest.
    A plugin ends a run early with :meth:`stop`.
    """

    name: str
    config: dict[str, Any]
    run_dir: Path | None
    plugin_manager: pluggy.PluginManager
    model: Any = None
    optimizer: Any = None
    step: int = 0
    epoch: int = 0
    resumed: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None
    _registered: list[object] = field(default_factory=list)

    def stop(self, reason: str | None = None) -> None:
        """End the run after the step in progress, as if it were the run's last (early stopping).

        Callable from any training hook. The trainer finishes that step (asked
        for before the first one, it trains none), then evaluates and saves
        the final checkpoint as at a planned end; the run
        completes (exit 0), its summary records ``stopped_early`` with the step
        and ``reason``, and a resume would train on from there. The first
        reason given is kept.
        """
        if self.stop_reason is None:
            self.stop_reason = "a plugin asked to stop" if reason is None or reason == "" else str(reason)

    def register(self, plugin: object) -> None:
        """Register a per-run plugin object; it is unregistered when the run ends.

        A hook implementation whose name is not a hook (``nnframe_step_ned``)
        would never be called, so it is refused here.
        """
        who = _named(plugin)
        problem = _register_checked(self.plugin_manager, plugin)
        if problem:
            raise PluginError(f"run plugin {_with_distribution(who)}{problem}")
        self._registered.append(plugin)

    def unregister_all(self) -> None:
        for plugin in reversed(self._registered):
            if self.plugin_manager.is_registered(plugin):
                self.plugin_manager.unregister(plugin)
        self._registered.clear()

    @property
    def hook(self) -> Any:
        return self.plugin_manager.hook


def run_plugin_problem(pm: pluggy.PluginManager, plugin: object) -> str | None:
    """Why ``plugin`` could not be registered for a run (a hook argument no spec has, a name that is no hook, a
    hook left unmarked), or ``None``; either way it is left unregistered. For checking a callback where it is
    configured, before any run."""
    problem = _register_checked(pm, plugin)
    if problem is None:
        pm.unregister(plugin)
    return problem


def _register_checked(pm: pluggy.PluginManager, plugin: object) -> str | None:
    """Register ``plugin``, or return why not (to follow its name in a message) and leave it unregistered."""
    who = _named(plugin)
    if pm.is_registered(plugin):
        return ": it is registered already (as a plugin, or for this run); give each use an object of its own"
    problems = hook_problems(plugin)
    if problems:
        return f" {'; '.join(problems)}; see nnframe/hookspecs.py for the hooks and their arguments"
    try:
        pm.register(plugin, name=f"{who}@{id(plugin):x}")
    except pluggy.PluginValidationError as exc:
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        return f": {exc}; see nnframe/hookspecs.py for each hook's arguments"
    except Exception as exc:  # an attribute that fails as pluggy reads the object's (a property)
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        return f": reading its attributes raised {type(exc).__name__}: {exc}{_raised_at(exc)}"
    return None


def _named(plugin: object) -> str:
    """``my_package.logger.CsvLogger``: the class of an object, or the class given itself."""
    cls = plugin if isinstance(plugin, type) else type(plugin)
    return f"{cls.__module__}.{cls.__qualname__}"


def _raised_at(exc: BaseException) -> str:
    """`` (raised in my_package/logger.py, line 12)``: the innermost frame of the traceback."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f" (raised in {tb.tb_frame.f_code.co_filename}, line {tb.tb_lineno})" if tb is not None else ""


def _with_distribution(who: str) -> str:
    """``my_package.logger.CsvLogger (from my-package 0.1)``: who to tell, looked up only for an error."""
    dist = distribution_of(who)
    return f"{who} (from {dist})" if dist else who

"""The built-in callbacks, registered through the same hook a third-party plugin uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from nnframe.components import CallbackContext, Component, Params, callback
from nnframe.errors import ConfigError
from nnframe.hookspecs import hookimpl
from nnframe.limits import MAX_COUNT
from nnframe.validation_metrics import HIGHER_IS_BETTER, ValidationMetric, is_measured

if TYPE_CHECKING:
    from nnframe.run import EvalMetrics, RunContext


class EarlyStoppingParams(Params):
    metric: ValidationMetric = Field(
        "val/loss", description="The validation metric watched: higher is better for val/accuracy, lower for "
                                "val/loss, and for val/rmse and val/mae, a run's error measures where it "
                                "measures no accuracy.")
    patience: int = Field(5, ge=1, le=MAX_COUNT,
                          description="Evaluations in a row without improvement after which the run stops.")
    min_delta: float = Field(0.0, ge=0, description="How much a value must beat the best one to count as an "
                                                    "improvement.")


class EarlyStopping:
    """Stops the run once ``metric`` has not improved by ``min_delta`` in ``patience`` scheduled evaluations.

    Its metric, best value and count of evaluations without improvement live
    in ``run.state[name]``, so a resumed run stops where an uninterrupted one
    would; a resume that watches another metric starts the count afresh. The
    evaluation a run adds after a last step off the schedule
    (``metrics.scheduled`` false) is not counted, nor is the best kept from
    it: a run cut short and resumed would otherwise count one more.
    """

    def __init__(self, name: str, metric: str, patience: int, min_delta: float) -> None:
        self.name, self.metric, self.patience, self.min_delta = name, metric, patience, min_delta

    @hookimpl
    def nnframe_run_start(self, run: RunContext) -> None:
        """A resumed run this stopper stopped stops again before its first step, so that resuming it changes
        nothing; a larger ``patience`` given with the resume trains on."""
        state = run.state.get(self.name)
        if isinstance(state, dict) and state.get("metric") == self.metric and state.get("bad", 0) >= self.patience:
            run.stop(self._reason(state))

    @hookimpl
    def nnframe_evaluation_end(self, run: RunContext, metrics: EvalMetrics) -> None:
        if not metrics.scheduled:
            return
        value = metrics.value_of(self.metric)
        state = run.state.get(self.name)
        if not isinstance(state, dict) or state.get("metric", self.metric) != self.metric:
            state = run.state[self.name] = {"metric": self.metric, "best": None, "bad": 0}
        if self._improves(value, state["best"]):
            state["best"], state["bad"] = value, 0
            return
        state["bad"] += 1
        if state["bad"] >= self.patience:
            run.stop(self._reason(state))

    def _reason(self, state: dict) -> str:
        best = "none finite" if state["best"] is None else f"{state['best']:.6g}"
        count = state["bad"]
        return (f"{self.name}: {self.metric} has not improved on its best ({best}) in {count} "
                f"evaluation{'s' if count > 1 else ''}")

    def _improves(self, value: float | None, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` by more than ``min_delta``; a NaN never does."""
        if value is None or value != value:
            return False
        if best is None:
            return True
        if self.metric in HIGHER_IS_BETTER:
            return value > best + self.min_delta
        return value < best - self.min_delta

    def __repr__(self) -> str:
        return (f"EarlyStopping(name={self.name!r}, metric={self.metric!r}, patience={self.patience}, "
                f"min_delta={self.min_delta})")


def early_stopping(params: EarlyStoppingParams, ctx: CallbackContext) -> EarlyStopping:
    """Stop when a validation metric has stopped improving."""
    if not ctx.has_validation:
        raise ConfigError(f"early_stopping watches {params.metric}, but the data has no validation set, so no "
                          "evaluation runs; set data.val_fraction (or give the dataset its own validation arrays)")
    if not is_measured(params.metric, ctx.classification, ctx.error_measures):
        raise ConfigError(f"early_stopping: {_not_measured(params.metric, ctx)}")
    return EarlyStopping(ctx.name, params.metric, params.patience, params.min_delta)


def _not_measured(metric: str, ctx: CallbackContext) -> str:
    """Why the run measures no ``metric``, and what to watch instead."""
    if metric == "val/accuracy":
        instead = "val/loss, val/rmse or val/mae" if ctx.error_measures else "val/loss"
        return (f"this run measures no val/accuracy (a regression loss, or targets that are no class labels); "
                f"watch {instead}")
    if ctx.classification:
        return (f"this classification run measures no {metric} (error measures are a regression run's); watch "
                "val/loss or val/accuracy")
    return (f"this run measures no {metric}: its loss makes no predictions of the targets' size "
            "(Loss.predictions); watch val/loss")


@hookimpl
def nnframe_register_callbacks() -> list[Component]:
    """early_stopping."""
    return [callback("early_stopping", EarlyStoppingParams, early_stopping)]

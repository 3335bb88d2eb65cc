"""The built-in learning-rate schedules, registered through the same hook a third-party plugin uses."""

from __future__ import annotations

from nnframe.components import Component, schedule
from nnframe.hookspecs import hookimpl
from nnframe.schedules import ConstantSchedule, CosineSchedule, StepSchedule


@hookimpl
def nnframe_register_schedules() -> list[Component]:
    """constant, step and cosine."""
    return [schedule("constant", ConstantSchedule, "The base rate at every step (after any warm-up)."),
            schedule("step", StepSchedule, "The rate times gamma every step_size steps."),
            schedule("cosine", CosineSchedule, "Half a cosine from the base rate down to min_lr.")]

"""Learning-rate schedules: the rate of each optimizer step from the base rate.

A schedule is a config model chosen by its ``type``: nnframe's ``constant``,
``step`` and ``cosine``, registered as components of kind ``schedule`` through
the same hook (``nnframe_register_schedules``) a plugin's use. Every schedule
takes ``warmup_steps``: the rate climbs linearly to the base rate over those
first steps, and the schedule proper then runs on the steps after the warm-up,
as if they started at step 0.

``lr_at(step, base_lr, total_steps)`` gives the rate for ``step``, the 0-based
index of the optimizer step about to be taken (the first update is step 0, and
a resumed run continues counting).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from nnframe.components import Params
from nnframe.errors import ConfigError, PluginError, not_written
from nnframe.limits import MAX_COUNT


class Schedule(Params):
    """Base of the schedules: the shared warm-up, and :meth:`lr_at`.

    Warm-up: at step ``s < warmup_steps`` the rate is ``base_lr * (s + 1) / warmup_steps``,
    so the first step is not wasted at rate 0 and step ``warmup_steps - 1`` runs at ``base_lr``.
    A subclass adds its fields and implements :meth:`rate_after_warmup`; it may refuse a run
    it cannot serve in :meth:`check` and warn in :meth:`notes`.
    """

    warmup_steps: int = Field(0, ge=0, le=MAX_COUNT,
                              description="Steps of linear warm-up from base_lr / warmup_steps to base_lr.")

    def lr_at(self, step: int, base_lr: float, total_steps: int | None = None) -> float:
        """The learning rate of the 0-based optimizer step ``step``.

        ``total_steps`` is the run's number of optimizer steps, when known; only
        a cosine schedule without its own ``total_steps`` needs it.

        Raises :class:`ConfigError` when the schedule cannot run (see :meth:`check`).
        """
        self.check(total_steps)
        if step < self.warmup_steps:
            return float(base_lr * (step + 1) / self.warmup_steps)
        rate = float(self.rate_after_warmup(step - self.warmup_steps, base_lr, total_steps))
        if not 0.0 <= rate < math.inf:  # a plugin's formula gone wrong; nnframe's own stay in range
            cls = type(self)
            while cls.__module__ == "nnframe.config" and cls.__bases__:  # the config's subclass adding the type
                cls = cls.__bases__[0]
            raise PluginError(f"schedule {getattr(self, 'type', cls.__name__)!r} ({cls.__module__}.{cls.__qualname__}) "
                              f"gave the learning rate {rate} for step {step}; a rate is a finite number, at least 0")
        return rate

    def check(self, total_steps: int | None) -> None:
        """Raise :class:`ConfigError` if the schedule cannot run for ``total_steps`` steps."""

    def notes(self, base_lr: float, total_steps: int) -> list[str]:
        """What about this schedule over a run of ``total_steps`` is likely a mistake, though it runs."""
        if self.warmup_steps > total_steps:
            return [f"optimizer.schedule.warmup_steps is {self.warmup_steps} but the run takes {total_steps} steps: "
                    f"the learning rate climbs only to {self.lr_at(total_steps - 1, base_lr, total_steps):g}, short "
                    f"of optimizer.lr ({base_lr:g})"]
        return []

    def rate_after_warmup(self, step: int, base_lr: float, total_steps: int | None) -> float:
        """The rate at ``step`` counted from the end of the warm-up; ``total_steps`` is the run's."""
        raise not_written(self, "rate_after_warmup(step, base_lr, total_steps)", "nnframe.Schedule")


DEFAULT_SCHEDULE = "constant"
"""The schedule an optimizer section without one runs under."""


class ConstantSchedule(Schedule):
    """The base rate at every step (after any warm-up)."""

    type: Literal["constant"] = DEFAULT_SCHEDULE

    def rate_after_warmup(self, step: int, base_lr: float, total_steps: int | None) -> float:
        return base_lr


class StepSchedule(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` steps: ``base_lr * gamma ** (s // step_size)``.

    ``s`` counts the steps after the warm-up.
    """

    type: Literal["step"] = "step"
    step_size: int = Field(gt=0, le=MAX_COUNT, description="Steps between two decays.")
    gamma: float = Field(0.1, gt=0, le=1, description="Factor applied to the rate at each decay.")

    def rate_after_warmup(self, step: int, base_lr: float, total_steps: int | None) -> float:
        return base_lr * self.gamma ** (step // self.step_size)


class CosineSchedule(Schedule):
    """Half a cosine from the base rate down to ``min_lr`` over the steps after the warm-up.

    With ``T = total_steps - warmup_steps`` and ``s`` the step after the warm-up:
    ``min_lr + (base_lr - min_lr) * (1 + cos(pi * min(s, T) / T)) / 2``; the rate
    reaches ``min_lr`` at ``s = T`` (one past the run's last step) and stays there.
    """

    type: Literal["cosine"] = "cosine"
    total_steps: int | None = Field(None, gt=0, le=MAX_COUNT,
                                    description="Length of the schedule in steps, warm-up included; "
                                                "null means the run's total number of steps.")
    min_lr: float = Field(0.0, ge=0, description="The rate the cosine ends at.")

    @model_validator(mode="after")
    def _warmup_fits(self) -> CosineSchedule:
        problem = self._problem(self.total_steps) if self.total_steps is not None else None
        if problem:
            raise ValueError(problem)
        return self

    def check(self, total_steps: int | None) -> None:
        problem = self._problem(total_steps)
        if problem:
            raise ConfigError(problem)

    def _problem(self, run_total: int | None) -> str | None:
        total = self.total_steps if self.total_steps is not None else run_total
        if total is None:
            return ("cosine schedule: total_steps is not set and the run's total number of steps is unknown; "
                    "set the schedule's total_steps, or train.epochs / train.max_steps")
        if total <= self.warmup_steps:
            return f"cosine schedule: warmup_steps ({self.warmup_steps}) must be less than total_steps ({total})"
        return None

    def notes(self, base_lr: float, total_steps: int) -> list[str]:
        found = super().notes(base_lr, total_steps)
        if self.min_lr > base_lr:
            found.append(f"optimizer.schedule.min_lr ({self.min_lr:g}) is above optimizer.lr ({base_lr:g}), so the "
                         "cosine raises the learning rate instead of lowering it")
        if self.total_steps is not None and self.total_steps < total_steps:
            found.append(f"optimizer.schedule.total_steps is {self.total_steps} but the run takes {total_steps} "
                         f"steps: the learning rate stays at min_lr ({self.min_lr:g}) for the last "
                         f"{total_steps - self.total_steps}; leave total_steps out to span the run")
        return found

    def rate_after_warmup(self, step: int, base_lr: float, total_steps: int | None) -> float:
        span = (self.total_steps if self.total_steps is not None else total_steps) - self.warmup_steps
        progress = min(step, span) / span
        return self.min_lr + (base_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress)) / 2.0


"""How a plugin declares a component: a name, its parameters, and how to build it.

A component declares its parameters once, as a :class:`Params` model. That one
declaration validates config sections, feeds ``nnframe schema`` and the
``nnframe plugins`` listing, and is what ``build`` receives.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

Kind = Literal["node", "loss", "optimizer", "dataset", "callback", "schedule"]
KINDS: tuple[Kind, ...] = ("node", "loss", "optimizer", "dataset", "callback", "schedule")


class Params(BaseModel):
    """Base of every component's parameter model; unknown keys, NaN and infinity are rejected."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


@dataclass
class NodeContext:
    """What a node's ``build`` knows about where it sits in the model.

    ``input_shapes`` are the shapes of a sample batch reaching the node (batch
    axis first), so ``input_shapes[0][-1]`` is the input width that decides
    ``W``'s rows. ``rng`` is the model's initialisation stream.
    """

    name: str
    input_shapes: list[tuple[int, ...]]
    dtype: np.dtype
    rng: np.random.Generator

    @property
    def in_features(self) -> int:
        return self.input_shapes[0][-1]


@dataclass
class DatasetContext:
    """What a dataset's ``build`` receives besides its params.

    ``base_dir`` is the directory of the config file, against which relative
    data paths resolve; ``rng`` is the data stream derived from the seed.
    """

    base_dir: Path
    rng: np.random.Generator
    dtype: np.dtype

    def path(self, given: str) -> Path:
        """``given`` as the dataset reads it: see :func:`absolute_path`."""
        return Path(absolute_path(given, self.base_dir))


@dataclass
class CallbackContext:
    """What a callback's ``build`` knows about the run it will join.

    ``name`` is the callback's name in the config (its ``name``, else its
    type), unique among the run's callbacks: the key of its own in
    ``run.state``. ``has_validation`` says whether the data has a validation
    set (without one no evaluation runs), ``classification`` whether the loss
    gives an accuracy, ``error_measures`` whether evaluations measure
    ``val/rmse`` and ``val/mae`` (a run that measures no accuracy, whose loss
    predicts values of the targets' size).
    """

    name: str
    has_validation: bool
    classification: bool
    error_measures: bool = False


def absolute_path(given: str, base_dir: Path) -> str:
    """A data path from a config (``~`` expanded) made absolute against ``base_dir``, the config's directory.

    Not normalised: the system resolves ``..`` after following links, as the dataset's read does.
    """
    return str(Path(base_dir) / os.path.expanduser(given))  # Path.expanduser raises for ~name of no user


def absolute_paths(given: Any, base_dir: Path) -> Any:
    """:func:`absolute_path` of a path field's value: a path, or each path of a list of them; else as given."""
    if isinstance(given, str):
        return absolute_path(given, base_dir)
    if isinstance(given, list) and all(isinstance(item, str) for item in given):
        return [absolute_path(item, base_dir) for item in given]
    return given


@dataclass(frozen=True)
class Component:
    """A registered component of one ``kind``.

    ``build`` takes the validated params and, for nodes, a :class:`NodeContext`;
    for datasets, a :class:`DatasetContext`; for callbacks, a
    :class:`CallbackContext`; losses and optimizers take the params alone. A
    schedule's params are the schedule itself, and its ``build`` returns them.
    """

    name: str
    kind: Kind
    params: type[Params]
    build: Callable[..., Any]
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """The description's first paragraph (a docstring's first sentence may run over a line), on one line."""
        text = inspect.cleandoc(self.description.strip() or self.build.__doc__ or "")
        return " ".join(re.split(r"\n\s*\n", text, maxsplit=1)[0].split())


def node(name: str, params: type[Params], build: Callable[..., Any], description: str = "") -> Component:
    return Component(name, "node", params, build, description)


def loss(name: str, params: type[Params], build: Callable[..., Any], description: str = "",
         classification: bool = True, takes_values: bool = False) -> Component:
    """A loss; ``classification`` says whether accuracy (argmax vs target) is meaningful. A classification loss
    that ``takes_values`` also trains on a regression dataset's targets (a sigmoid cross-entropy on multi-label
    or soft targets in [0, 1]), measuring no accuracy then."""
    return Component(name, "loss", params, build, description,
                     {"classification": classification, "takes_values": takes_values})


def optimizer(name: str, params: type[Params], build: Callable[..., Any], description: str = "") -> Component:
    return Component(name, "optimizer", params, build, description)


def dataset(name: str, params: type[Params], build: Callable[..., Any], description: str = "") -> Component:
    return Component(name, "dataset", params, build, description)


def callback(name: str, params: type[Params], build: Callable[..., Any], description: str = "") -> Component:
    """A callback: ``build(params, ctx)`` returns an object with hook implementations, registered for the runs
    whose config lists it under ``callbacks`` (and for no other run)."""
    return Component(name, "callback", params, build, description)


def schedule(name: str, params: type[Params], description: str = "") -> Component:
    """A learning-rate schedule for ``optimizer.schedule``: ``params`` subclasses :class:`nnframe.Schedule`, whose
    ``rate_after_warmup(step, base_lr, total_steps)`` gives the rate; the validated section is the schedule. The
    description defaults to the first line of the class's docstring."""
    return Component(name, "schedule", params, _the_schedule, description or (params.__doc__ or ""))


def _the_schedule(params: Params) -> Params:
    """A schedule is its own params."""
    return params

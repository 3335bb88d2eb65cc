"""The experiment config: pydantic models, built from the registries of a plugin manager.

Component sections (``data``, each model node, ``loss``, ``optimizer``, each callback) are
discriminated unions on ``type`` whose arms are made from the parameter model
each registered component declares, so one declaration serves validation, the
JSON Schema and the listings, and plugins extend the schema by registering.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property, partial
from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, create_model,
                      model_validator)
from pydantic.json_schema import GenerateJsonSchema

from nnframe.components import Component, schedule
from nnframe.data import shared_fields
from nnframe.limits import MAX_COUNT, MAX_SEED
from nnframe.plugins import AUTOLOAD_OFF_ENV, Plugins, Registry, env_flag
from nnframe.validation_metrics import ValidationMetric
from nnframe.schedules import DEFAULT_SCHEDULE, ConstantSchedule

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
COMPONENT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]*$"
SEQUENTIAL_TAG = "sequential form"
GRAPH_TAG = "graph form"
MODEL_FORM_ERROR = "model_form"
MAX_NAME_LENGTH = 200
"""An experiment name is a directory name: file systems take 255 bytes at most."""


class Section(BaseModel):
    """Base of every config model: unknown keys are errors, and so are NaN and infinity."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _absolute(path: str) -> str:
    """A run directory named as on the command line (``runs/spiral/...``), for a config.yaml that resumes anywhere."""
    return os.path.abspath(os.path.expanduser(path))


class InitFrom(Section):
    """Where a new run's parameters start: a checkpoint of another run (fine-tuning), instead of the nodes' init."""

    run: Annotated[str, AfterValidator(_absolute)] = Field(
        min_length=1, description="The run directory whose checkpoint the parameters are copied from; relative to "
                                  "the working directory, as --resume's, and made absolute.")
    checkpoint: Literal["latest", "best"] | Annotated[int, Field(ge=0)] = Field(
        "latest", description="Which checkpoint: 'latest', 'best' or a step number.")
    strict: bool = Field(True, description="Every parameter of the model is in the checkpoint, with its shape, and "
                                           "no other; false copies those that match and keeps the rest as "
                                           "initialised, with a note.")


class TrainConfig(Section):
    """How long and how to train."""

    epochs: int | None = Field(None, gt=0, le=MAX_COUNT, description="Passes over the training set.")
    max_steps: int | None = Field(None, gt=0, le=MAX_COUNT,
                                  description="Optimizer steps; training stops at whichever of epochs/max_steps "
                                              "comes first.")
    batch_size: int = Field(32, gt=0, le=MAX_COUNT, description="Examples per mini-batch.")
    drop_last: bool = Field(False, description="Drop the last partial batch of each epoch.")
    shuffle: bool = Field(True, description="Reshuffle the training set every epoch.")
    dtype: Literal["float32", "float64"] = Field("float32",
                                                 description="Floating-point type of parameters and activations.")
    clip_grad_norm: float | None = Field(None, gt=0, description="Scale gradients down to this global L2 norm.")
    on_nonfinite: Literal["stop", "skip_step"] = Field(
        "stop", description="What to do when the loss or a gradient is NaN or infinite.")
    eval_every: int | None = Field(None, gt=0, le=MAX_COUNT,
                                   description="Evaluate every N optimizer steps; by default at the end of each epoch.")
    init_from: InitFrom | None = Field(None, description="Start a new run from another run's parameters.")

    @model_validator(mode="after")
    def _has_length(self) -> TrainConfig:
        if self.epochs is None and self.max_steps is None:
            raise ValueError("expected train.epochs or train.max_steps (how long to train); found neither")
        return self


class LogConfig(Section):
    """What the run logs, and how often."""

    every: int = Field(10, gt=0, le=MAX_COUNT, description="Log training metrics every N optimizer steps.")
    grad_norms: bool = Field(True, description="Log the global and per-parameter gradient norms.")
    histograms_every: int = Field(0, ge=0, le=MAX_COUNT,
                                  description="Log weight and gradient histograms every N steps (0: never).")
    tensorboard: bool = Field(True, description="Write TensorBoard event files.")


class CheckpointConfig(Section):
    """When checkpoints are written and how many are kept."""

    every: int = Field(0, ge=0, le=MAX_COUNT,
                       description="Save every N optimizer steps (0: only at the end and on interruption).")
    keep: int = Field(3, ge=1, le=MAX_COUNT, description="Keep the newest K checkpoints.")
    best_metric: ValidationMetric | None = Field(
        "val/accuracy", description="Also keep the best checkpoint by this validation metric (val/loss in place "
                                    "of val/accuracy for a regression run; val/rmse and val/mae are a "
                                    "regression run's); null to disable.")


def _arm(component: Component, suffix: str, extra_fields: dict[str, Any]) -> type[BaseModel]:
    title = "".join(part.capitalize() for part in component.name.split("_")) + suffix
    arm = create_model(title, __base__=component.params, __doc__=component.summary() or None,
                       type=(Literal[component.name], Field(description=component.summary())), **extra_fields)
    if arm.model_config.get("extra") != "forbid" or arm.model_config.get("allow_inf_nan") is not False:
        arm.model_config["extra"] = "forbid"
        arm.model_config["allow_inf_nan"] = False
        arm.model_rebuild(force=True)
    return arm


def _union(arms: list[type[BaseModel]], kind: str, left_out: Mapping[tuple[str, str], str]) -> Any:
    if not arms:
        return Annotated[dict, AfterValidator(_nothing_registered(kind, left_out)),
                         Field(description=f"no {kind} types are registered")]
    return Annotated[Union[tuple(arms)], Field(discriminator="type")]  # one arm too: a wrong type says only that


def _model_form(value: Any) -> str | None:
    if isinstance(value, list):
        return SEQUENTIAL_TAG
    if single_node(value):  # neither form: its own error says to put it in a list
        return None
    if isinstance(value, (dict, BaseModel)):
        return GRAPH_TAG
    return None


def single_node(value: Any) -> bool:
    """``model: {type: affine, out: 3}``: one node written where a list of them (or a graph) goes."""
    return isinstance(value, dict) and "type" in value and "nodes" not in value


def _best_metric_for_regression(losses: Registry) -> Any:
    """``checkpoint.best_metric`` left at its default becomes ``val/loss`` where the loss is a regression loss, or
    one that takes a regression dataset's targets (a sigmoid cross-entropy on multi-label data).

    The checkpointer keeps the best checkpoint by ``val/loss`` there anyway;
    this makes the resolved config (``nnframe validate``, the run's
    ``config.yaml``) say so. The field still counts as not given, so no note
    is made about a choice the user did not make.
    """
    def resolve(experiment: Any) -> Any:
        loss_type = getattr(experiment.loss, "type", None)
        extra = losses.get(loss_type).extra if loss_type in losses else {"classification": True}
        on_values = getattr(experiment.data, "task", None) == "regression" and extra.get("takes_values", False)
        if not extra.get("classification", True) or on_values:
            best_by_loss(experiment.checkpoint)
        return experiment
    return resolve


def best_by_loss(checkpoint: CheckpointConfig) -> None:
    """``best_metric`` left at its default becomes ``val/loss``, for a run that measures no accuracy; it still
    counts as not given."""
    if checkpoint.best_metric == "val/accuracy" and "best_metric" not in checkpoint.model_fields_set:
        checkpoint.best_metric = "val/loss"
        checkpoint.model_fields_set.discard("best_metric")


def _nothing_registered(kind: str, left_out: Mapping[tuple[str, str], str]) -> Any:
    def refuse(value: dict) -> dict:
        why = (f"{AUTOLOAD_OFF_ENV} is set, which leaves out nnframe's own components too, as they load through "
               "the same entry points" if env_flag(AUTOLOAD_OFF_ENV)
               else left_out.get((kind, str(value.get("type"))))
               or "a plugin may be missing or broken (see `nnframe plugins`)")
        raise ValueError(f"no {kind} types are registered, so {value.get('type')!r} cannot be used; {why}")
    return refuse


class ConfigModels:
    """The config models for one plugin manager's registries."""

    def __init__(self, plugins: Plugins) -> None:
        self.plugins = plugins

    def _arms(self, registry: Registry, suffix: str, extra: dict[str, Any]) -> list[type[BaseModel]]:
        return [_arm(component, suffix, extra) for component in registry]

    @cached_property
    def node(self) -> Any:
        extra = {
            "name": (str | None, Field(None, pattern=NAME_PATTERN,
                                       description="Node name; by default type and position (affine1).")),
            "inputs": (list[Annotated[str, Field(pattern=NAME_PATTERN)]] | None,
                       Field(None, min_length=1, description="Names of the values this node consumes (graph form); "
                                                             "by default the node before it.")),
        }
        return _union(self._arms(self.plugins.nodes, "Node", extra), "node", self.plugins.left_out)

    @cached_property
    def loss(self) -> Any:
        return _union(self._arms(self.plugins.losses, "Loss", {}), "loss", self.plugins.left_out)

    @cached_property
    def _schedule_arms(self) -> dict[str, type[BaseModel]]:
        """The registered schedules, and nnframe's constant one where none is registered by that name (a plugin
        manager built without nnframe's own): the schedule a section without one runs under reads back."""
        arms = {component.name: _arm(component, "Schedule", {}) for component in self.plugins.schedules}
        arms.setdefault(DEFAULT_SCHEDULE, _arm(schedule(DEFAULT_SCHEDULE, ConstantSchedule), "Schedule", {}))
        return arms

    @cached_property
    def schedule(self) -> Any:
        return _union(list(self._schedule_arms.values()), "schedule", self.plugins.left_out)

    @cached_property
    def optimizer(self) -> Any:
        default = partial(self._schedule_arms[DEFAULT_SCHEDULE], type=DEFAULT_SCHEDULE)  # serialises as it validates
        extra = {"schedule": (self.schedule, Field(default_factory=default, description="Learning-rate schedule."))}
        return _union(self._arms(self.plugins.optimizers, "Optimizer", extra), "optimizer", self.plugins.left_out)

    @cached_property
    def data(self) -> Any:
        """Every dataset takes ``val_fraction`` and ``standardize``, also one whose params do not subclass
        ``DatasetParams``."""
        arms = [_arm(component, "Data", shared_fields(component.params)) for component in self.plugins.datasets]
        return _union(arms, "dataset", self.plugins.left_out)

    @cached_property
    def callback(self) -> Any:
        extra = {"name": (str | None, Field(None, pattern=COMPONENT_NAME_PATTERN,
                                            description="Its key in run.state; by default its type."))}
        return _union(self._arms(self.plugins.callbacks, "Callback", extra), "callback", self.plugins.left_out)

    @cached_property
    def graph(self) -> type[BaseModel]:
        return create_model(
            "GraphModel", __base__=Section,
            inputs=(list[Annotated[str, Field(pattern=NAME_PATTERN)]],
                    Field(default_factory=lambda: ["x"], min_length=1, description="Names of the model inputs.")),
            nodes=(list[self.node], Field(min_length=1, description="The nodes; each names its inputs.")),
            output=(str, Field(description="The node whose value is the model output.")),
        )

    @cached_property
    def experiment(self) -> type[BaseModel]:
        model_field = Annotated[
            Union[Annotated[list[self.node], Tag(SEQUENTIAL_TAG), Field(min_length=1)],
                  Annotated[self.graph, Tag(GRAPH_TAG)]],
            Discriminator(_model_form, custom_error_type=MODEL_FORM_ERROR,
                          custom_error_message="expected a list of nodes (sequential form) or a mapping "
                                               "with inputs, nodes and output (graph form)"),
        ]
        return create_model(
            "Experiment", __base__=Section,
            name=(str, Field(pattern=NAME_PATTERN, max_length=MAX_NAME_LENGTH,
                             description="Experiment name; runs go to <runs-dir>/<name>/.")),
            seed=(int, Field(0, ge=0, le=MAX_SEED, description="The one seed every random stream derives from.")),
            data=(self.data, Field(description="The dataset.")),
            model=(model_field, Field(description="A list of nodes (sequential) or a graph with named inputs.")),
            loss=(self.loss, Field(description="The loss node.")),
            optimizer=(self.optimizer, Field(description="The update rule.")),
            train=(TrainConfig, Field(description="Training length and batching.")),
            log=(LogConfig, Field(default_factory=LogConfig, description="Logging.")),
            checkpoint=(CheckpointConfig, Field(default_factory=CheckpointConfig, description="Checkpoints.")),
            callbacks=(list[self.callback], Field(default_factory=list,
                                                  description="Callbacks this run uses, such as early_stopping.")),
            __validators__={"best_metric_for_regression": model_validator(mode="after")(
                _best_metric_for_regression(self.plugins.losses))},
        )

    def json_schema(self) -> dict[str, Any]:
        schema = self.experiment.model_json_schema(schema_generator=EditorJsonSchema)
        schema["title"] = "nnframe experiment"
        return schema


BOOLEAN_WORDS = ("true", "false", "yes", "no", "on", "off", "t", "f", "y", "n", "1", "0")
"""The words pydantic takes for a true/false field, in any case; YAML 1.2 reads all but ``true`` and ``false``
as words."""


class EditorJsonSchema(GenerateJsonSchema):
    """The JSON Schema an editor checks a config file with, taking what validation takes: a true/false field
    takes ``0`` and ``1`` and the words of :data:`BOOLEAN_WORDS` in any case (JSON Schema's patterns have no
    flag for that, so each letter is a class of both cases)."""

    def bool_schema(self, schema: Any) -> dict[str, Any]:
        words = "|".join("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)
                         for word in BOOLEAN_WORDS)
        return {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}, {"type": "string", "pattern": f"^({words})$"}]}

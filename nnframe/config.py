"""The experiment config: pydantic models, built from the registries of a plugin manager.

Component sections (``data``, each model node, ``loss``, ``optimizer``) are
discriminated unions on ``type`` whose arms are made from the parameter model
each registered component declares, so one declaration serves validation, the
JSON Schema and the listings, and plugins extend the schema by registering.

:func:`model_layout` reads either form of the ``model`` section as one graph
(names, inputs, output, and each node's field path), and :func:`layout_problems`
finds what is wrong with it (duplicate names, unknown inputs, cycles, nodes that
do not reach the output) before anything is built, so each problem names its field.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, create_model,
                      model_validator)

from nnframe.components import Component
from nnframe.errors import unknown_name_message
from nnframe.graph import sequential_names
from nnframe.plugins import Plugins, Registry
from nnframe.schedules import ConstantSchedule, ScheduleConfig

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
SEQUENTIAL_TAG = "sequential form"
GRAPH_TAG = "graph form"
MAX_COUNT = 2**31 - 1
MODEL_FORM_ERROR = "model_form"


class Section(BaseModel):
    """Base of every config model: unknown keys are errors, and so are NaN and infinity."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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
    best_metric: str | None = Field("val/accuracy", description="Also keep the best checkpoint by this validation "
                                                                "metric (val/loss or val/accuracy); null to disable.")

    @model_validator(mode="after")
    def _known_metric(self) -> CheckpointConfig:
        if self.best_metric not in (None, "val/loss", "val/accuracy"):
            raise ValueError(f"best_metric must be 'val/loss', 'val/accuracy' or null, found {self.best_metric!r}")
        return self


def _arm(component: Component, suffix: str, extra_fields: dict[str, Any]) -> type[BaseModel]:
    title = "".join(part.capitalize() for part in component.name.split("_")) + suffix
    arm = create_model(title, __base__=component.params, __doc__=component.summary() or None,
                       type=(Literal[component.name], Field(description=component.summary())), **extra_fields)
    if arm.model_config.get("extra") != "forbid":
        arm.model_config["extra"] = "forbid"
        arm.model_rebuild(force=True)
    return arm


def _union(arms: list[type[BaseModel]], kind: str) -> Any:
    if not arms:
        return Annotated[dict, AfterValidator(_nothing_registered(kind)),
                         Field(description=f"no {kind} types are registered")]
    if len(arms) == 1:
        return arms[0]
    return Annotated[Union[tuple(arms)], Field(discriminator="type")]


def _model_form(value: Any) -> str | None:
    if isinstance(value, list):
        return SEQUENTIAL_TAG
    if isinstance(value, (dict, BaseModel)):
        return GRAPH_TAG
    return None


def _nothing_registered(kind: str) -> Any:
    def refuse(value: dict) -> dict:
        raise ValueError(f"no {kind} types are registered, so {value.get('type')!r} cannot be used; "
                         "a plugin may be missing or broken (see `nnframe plugins`)")
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
        return _union(self._arms(self.plugins.nodes, "Node", extra), "node")

    @cached_property
    def loss(self) -> Any:
        return _union(self._arms(self.plugins.losses, "Loss", {}), "loss")

    @cached_property
    def optimizer(self) -> Any:
        extra = {"schedule": (ScheduleConfig, Field(default_factory=ConstantSchedule,
                                                     description="Learning-rate schedule."))}
        return _union(self._arms(self.plugins.optimizers, "Optimizer", extra), "optimizer")

    @cached_property
    def data(self) -> Any:
        return _union(self._arms(self.plugins.datasets, "Data", {}), "dataset")

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
            name=(str, Field(pattern=NAME_PATTERN, description="Experiment name; runs go to <runs-dir>/<name>/.")),
            seed=(int, Field(0, ge=0, description="The one seed every random stream derives from.")),
            data=(self.data, Field(description="The dataset.")),
            model=(model_field, Field(description="A list of nodes (sequential) or a graph with named inputs.")),
            loss=(self.loss, Field(description="The loss node.")),
            optimizer=(self.optimizer, Field(description="The update rule.")),
            train=(TrainConfig, Field(description="Training length and batching.")),
            log=(LogConfig, Field(default_factory=LogConfig, description="Logging.")),
            checkpoint=(CheckpointConfig, Field(default_factory=CheckpointConfig, description="Checkpoints.")),
        )

    def json_schema(self) -> dict[str, Any]:
        schema = self.experiment.model_json_schema()
        schema["title"] = "nnframe experiment"
        return schema


@dataclass(frozen=True)
class NodeSpec:
    """One model node as the config describes it: its name and inputs filled in, and its field path."""

    name: str
    entry: BaseModel
    inputs: tuple[str, ...]
    path: str


@dataclass(frozen=True)
class ModelLayout:
    """Either model form as one graph: the nodes, the graph inputs and the output, with field paths."""

    nodes: list[NodeSpec]
    inputs: list[str]
    output: str
    output_path: str
    inputs_path: str

    def __repr__(self) -> str:
        return f"ModelLayout(inputs={self.inputs}, nodes={[n.name for n in self.nodes]}, output={self.output!r})"


def model_layout(model_config: Any) -> ModelLayout:
    """The nodes, inputs and output of a validated ``model`` section.

    Sequential nodes are named by type and position (``affine1``) unless named;
    a node without ``inputs`` reads the node before it (the first reads the
    first graph input); the output defaults to the last node.
    """
    if isinstance(model_config, list):
        entries, inputs, output, base = model_config, ["x"], None, "model"
    else:
        entries, inputs, output = model_config.nodes, list(model_config.inputs), model_config.output
        base = "model.nodes"
    names = sequential_names([entry.type for entry in entries], explicit=[entry.name for entry in entries])
    specs = []
    previous = inputs[0]
    for index, (name, entry) in enumerate(zip(names, entries)):
        reads = tuple(entry.inputs) if entry.inputs else (previous,)
        specs.append(NodeSpec(name, entry, reads, f"{base}[{index}]"))
        previous = name
    return ModelLayout(specs, inputs, output or names[-1],
                       output_path="model.output" if output else f"{base}[{len(specs) - 1}]",
                       inputs_path="model.inputs")


def layout_problems(layout: ModelLayout) -> list[tuple[str, str]]:
    """What is wrong with the graph as ``(field path, message)``: names, inputs, output, cycles, dead nodes."""
    return _name_problems(layout) or _reference_problems(layout) or _cycle_problems(layout) or _reach_problems(layout)


def _name_problems(layout: ModelLayout) -> list[tuple[str, str]]:
    problems = []
    seen_inputs: set[str] = set()
    for name in layout.inputs:
        if name in seen_inputs:
            problems.append((layout.inputs_path, f"graph input {name!r} is listed twice"))
        seen_inputs.add(name)
    first_path: dict[str, str] = {}
    for spec in layout.nodes:
        if spec.name in seen_inputs:
            problems.append((f"{spec.path}.name", f"node name {spec.name!r} is also a graph input; "
                                                  "give the node another name"))
        elif spec.name in first_path:
            problems.append((f"{spec.path}.name", f"duplicate node name {spec.name!r} "
                                                  f"(also at {first_path[spec.name]}); every node needs its own name"))
        first_path.setdefault(spec.name, spec.path)
    return problems


def _reference_problems(layout: ModelLayout) -> list[tuple[str, str]]:
    names = [spec.name for spec in layout.nodes]
    problems = []
    for spec in layout.nodes:
        available = [name for name in dict.fromkeys([*layout.inputs, *names]) if name != spec.name]
        for name in spec.inputs:
            if name == spec.name:
                problems.append((f"{spec.path}.inputs", f"node {spec.name!r} reads its own output; "
                                                        "a node cannot depend on its own output"))
            elif name not in available:
                problems.append((f"{spec.path}.inputs",
                                 f"node {spec.name!r}: " + unknown_name_message("input", name, available)))
    if layout.output in layout.inputs:
        problems.append((layout.output_path, f"the output {layout.output!r} is a graph input; "
                                             f"name one of the nodes: {', '.join(names)}"))
    elif layout.output not in names:
        problems.append((layout.output_path, unknown_name_message("graph output", layout.output, names)))
    return problems


def _cycle_problems(layout: ModelLayout) -> list[tuple[str, str]]:
    predecessors = {spec.name: [n for n in spec.inputs if n not in layout.inputs] for spec in layout.nodes}
    try:
        graphlib.TopologicalSorter(predecessors).prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        first = next(spec for spec in layout.nodes if spec.name in cycle)
        start = cycle.index(first.name)
        ordered = cycle[start:-1] + cycle[:start] + [first.name]
        return [(f"{first.path}.inputs", f"node {first.name!r} is in a cycle: {' -> '.join(ordered)}; "
                                         "a node cannot depend on its own output")]
    return []


def _reach_problems(layout: ModelLayout) -> list[tuple[str, str]]:
    by_name = {spec.name: spec for spec in layout.nodes}
    reached: set[str] = set()
    waiting = [layout.output]
    while waiting:
        name = waiting.pop()
        if name not in reached:
            reached.add(name)
            waiting.extend(by_name[name].inputs if name in by_name else ())
    problems = [(spec.path, f"node {spec.name!r} does not lead to the output {layout.output!r}; "
                            f"feed it into a node on the way to {layout.output!r} or remove it")
                for spec in layout.nodes if spec.name not in reached]
    unused = [name for name in layout.inputs if name not in reached]
    if unused:
        problems.append((layout.inputs_path, f"graph input(s) {', '.join(map(repr, unused))} are not read "
                                             f"by any node on the way to the output {layout.output!r}"))
    return problems

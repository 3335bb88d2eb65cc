"""Turn a validated experiment config into live objects: data, model, loss, optimizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from nnframe.arrays import as_dtype
from nnframe.components import Component, DatasetContext, NodeContext, Params
from nnframe.config_loader import LoadedConfig
from nnframe.data import Dataset, check_labels, load_dataset
from nnframe.errors import ConfigError, NNFrameError
from nnframe.graph import Graph, GraphNode, sequential_names
from nnframe.node import Node
from nnframe.plugins import Plugins


@dataclass
class Streams:
    """Every random stream of a run, each derived from the experiment's one seed."""

    init: np.random.Generator
    data: np.random.Generator
    shuffle: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> Streams:
        init, data, shuffle = (np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3))
        return cls(init=init, data=data, shuffle=shuffle)


@dataclass
class Experiment:
    """The live objects of one experiment, ready for the trainer."""

    config: LoadedConfig
    dataset: Dataset
    model: Graph
    loss: Any
    classification: bool
    optimizer: Any
    streams: Streams
    dtype: np.dtype

    @property
    def settings(self) -> BaseModel:
        return self.config.experiment


@dataclass
class NodeSpec:
    """One model node as the config describes it, with its name and inputs filled in."""

    name: str
    entry: BaseModel
    inputs: tuple[str, ...]


def node_specs(model_config: Any) -> tuple[list[NodeSpec], list[str], str]:
    """The nodes, model inputs and output of either model form, with default names and inputs."""
    if isinstance(model_config, list):
        entries, graph_inputs, output = model_config, ["x"], None
    else:
        entries, graph_inputs, output = model_config.nodes, list(model_config.inputs), model_config.output
    names = _node_names(entries)
    specs = []
    previous = graph_inputs[0]
    for name, entry in zip(names, entries):
        inputs = tuple(entry.inputs) if entry.inputs else (previous,)
        specs.append(NodeSpec(name, entry, inputs))
        previous = name
    return specs, graph_inputs, output or names[-1]


def _node_names(entries: list[BaseModel]) -> list[str]:
    return sequential_names([entry.type for entry in entries], explicit=[entry.name for entry in entries])


def component_params(component: Component, entry: BaseModel) -> Params:
    """The component's own params from a config entry, without the config's extra fields (type, name, ...)."""
    return component.params.model_validate({key: getattr(entry, key) for key in component.params.model_fields})


def build_model(model_config: Any, plugins: Plugins, sample: np.ndarray, rng: np.random.Generator) -> Graph:
    """Build every node in dependency order, sizing each from a sample batch that flows through the graph."""
    specs, graph_inputs, output = node_specs(model_config)
    skeleton = Graph([GraphNode(s.name, Node(), s.inputs) for s in specs], inputs=graph_inputs, output=output)
    by_name = {spec.name: spec for spec in specs}
    values = {name: sample for name in graph_inputs}
    built: dict[str, Node] = {}
    for name in skeleton.nodes:
        spec = by_name[name]
        built[name] = _build_node(spec, plugins, [values[i] for i in spec.inputs], rng)
        values[name] = _sample_forward(built[name], spec, [values[i] for i in spec.inputs])
    return Graph([GraphNode(s.name, built[s.name], s.inputs) for s in specs], inputs=graph_inputs, output=output)


def _build_node(spec: NodeSpec, plugins: Plugins, inputs: list[np.ndarray], rng: np.random.Generator) -> Node:
    component = plugins.nodes.get(spec.entry.type)
    context = NodeContext(spec.name, [tuple(x.shape) for x in inputs], inputs[0].dtype, rng)
    try:
        node = component.build(component_params(component, spec.entry), context)
    except NNFrameError:
        raise
    except (ValueError, TypeError, IndexError) as exc:
        raise ConfigError(f"model node {spec.name!r} ({spec.entry.type}) cannot be built for inputs of shape "
                          f"{', '.join(str(s) for s in context.input_shapes)}: {exc}") from None
    return node


def _sample_forward(node: Node, spec: NodeSpec, inputs: list[np.ndarray]) -> np.ndarray:
    node.training = False
    try:
        with np.errstate(all="ignore"):
            return node.forward(*inputs)
    except (ValueError, TypeError, IndexError) as exc:
        shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
        raise ConfigError(f"model node {spec.name!r} ({spec.entry.type}) does not accept inputs of shape "
                          f"{shapes}: {exc}") from None
    finally:
        node.training = True


def build_experiment(config: LoadedConfig, plugins: Plugins) -> Experiment:
    """Data first (its shape sizes the model), then model, loss and optimizer."""
    settings = config.experiment
    dtype = as_dtype(settings.train.dtype)
    streams = Streams.from_seed(settings.seed)
    base_dir = Path(config.path).resolve().parent
    data_component = plugins.datasets.get(settings.data.type)
    dataset = load_dataset(data_component, component_params(data_component, settings.data), DatasetContext(base_dir, streams.data, dtype))
    model = build_model(settings.model, plugins, dataset.x[:2].astype(dtype, copy=False), streams.init)
    loss_component = plugins.losses.get(settings.loss.type)
    classification = bool(loss_component.extra.get("classification", True))
    if classification:
        width = int(model.forward(dataset.x[:1].astype(dtype, copy=False)).shape[-1])
        check_labels(dataset.y, width, dataset.source)
        if dataset.y_val is not None:
            check_labels(dataset.y_val, width, dataset.source + " (validation)")
    optimizer_component = plugins.optimizers.get(settings.optimizer.type)
    optimizer = optimizer_component.build(component_params(optimizer_component, settings.optimizer))
    loss = loss_component.build(component_params(loss_component, settings.loss))
    return Experiment(config, dataset, model, loss, classification, optimizer, streams, dtype)

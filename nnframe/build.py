"""Turn a validated experiment config into live objects: data, model, loss, optimizer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from nnframe.arrays import as_dtype
from nnframe.batches import batches_per_epoch
from nnframe.components import CallbackContext, Component, DatasetContext, NodeContext, Params
from nnframe.config import best_by_loss
from nnframe.config_errors import path_parts
from nnframe.config_loader import LoadedConfig, parse_override, shown, with_overrides
from nnframe.data import Dataset, load_dataset
from nnframe.errors import ConfigError, DataError, GraphError, PluginError, UserError
from nnframe.gradients import first_nonfinite
from nnframe.held_signals import signals_held
from nnframe.hook_checks import HOOK_PREFIX, IMPL_MARK
from nnframe.init_from import copy_initial_params, scaled_as_source
from nnframe.loss_checks import (SHAPE_CHECK_ROWS, check_labels_fit, check_loss_accepts_targets, check_loss_outputs,
                                 error_measures, unused_scores_notes)
from nnframe.graph import Graph, GraphNode
from nnframe.graph_checks import first_shared_param
from nnframe.model_layout import ModelLayout, NodeSpec, layout_problems, model_layout
from nnframe.node import Node
from nnframe.optimizer_base import Optimizer
from nnframe.plugins import Plugins, innermost_frame_in, plugin_origin
from nnframe.run import run_plugin_problem
from nnframe.tracking import os_error_reason
from nnframe.train import planned_steps
from nnframe.unset_none import unset_nones

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
    callbacks: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the build did that a user should hear of (parameters copied from another run)."""
    error_measures: bool = False
    """Whether evaluations measure ``rmse`` and ``mae`` (see :func:`~nnframe.loss_checks.error_measures`)."""

    @property
    def settings(self) -> BaseModel:
        return self.config.experiment

    @property
    def total_steps(self) -> int:
        """The optimizer steps the config plans for this data."""
        train = self.settings.train
        return planned_steps(train, batches_per_epoch(self.dataset.n_train, train.batch_size, train.drop_last))


def component_params(component: Component, entry: BaseModel) -> Params:
    """The component's own params from a config entry, without the config's extra fields (type, name, ...) and
    without the fields left at a ``None`` default their type refuses (see :mod:`nnframe.unset_none`)."""
    unset = unset_nones(entry)
    values = {key: getattr(entry, key) for key in component.params.model_fields if unset.get(key) is not True}
    with signals_held():
        return component.params.model_validate(values)


def build_model(model_config: Any, plugins: Plugins, sample: np.ndarray | Mapping[str, np.ndarray],
                rng: np.random.Generator) -> Graph:
    """Build every node in dependency order, sizing each from a sample batch that flows through the graph.

    ``sample`` is one array for a single-input model, or an array per input name.
    Errors name the node's field path (``model[2]``, ``model.nodes[1]``).
    """
    layout = model_layout(model_config)
    _check_layout(layout)
    values = _samples(layout, sample)
    skeleton = Graph([GraphNode(s.name, Node(), s.inputs) for s in layout.nodes], inputs=layout.inputs,
                     output=layout.output)
    by_name = {spec.name: spec for spec in layout.nodes}
    built: dict[str, Node] = {}
    for name in skeleton.nodes:
        spec = by_name[name]
        built[name] = _build_node(spec, plugins, [values[i] for i in spec.inputs], rng)
        values[name] = _sample_forward(built[name], spec, [values[i] for i in spec.inputs],
                                       _from_plugin(plugins.nodes, spec.entry.type))
    model = Graph([GraphNode(s.name, built[s.name], s.inputs) for s in layout.nodes], inputs=layout.inputs,
                  output=layout.output, need_input_grad=False)
    _check_no_shared_params(model)
    model.flatten_params()
    return model


def _check_no_shared_params(model: Graph) -> None:
    """Refuse one array held as the parameter of two nodes (the book's tied weights), which a model from a
    config cannot train: the optimizer would update the array once for each holder, with the gradient of that
    holder's own use."""
    shared = first_shared_param(model.param_names, model.params)
    if shared:
        raise ConfigError(f"{shared[0]} and {shared[1]} are one array: a model built from a config cannot share a "
                          "weight between nodes; use it in one node, which reads every input that needs "
                          "it (an embedding of an (N, 2) block of ids rather than two embeddings)",
                          path="model")


def _check_layout(layout: ModelLayout) -> None:
    problems = layout_problems(layout)
    if problems:
        path, message = problems[0]
        raise GraphError(f"field {path}: {message}")


def _samples(layout: ModelLayout, sample: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not isinstance(sample, Mapping):
        if len(layout.inputs) != 1:
            raise ConfigError(f"the graph takes {len(layout.inputs)} inputs ({', '.join(layout.inputs)}); "
                              "give a sample array for each", path=layout.inputs_path)
        return {layout.inputs[0]: sample}
    missing = [name for name in layout.inputs if name not in sample]
    if missing:
        raise ConfigError(f"no sample array for graph input(s) {', '.join(map(repr, missing))}",
                          path=layout.inputs_path)
    return {name: sample[name] for name in layout.inputs}


def _build_node(spec: NodeSpec, plugins: Plugins, inputs: list[np.ndarray], rng: np.random.Generator) -> Node:
    component = plugins.nodes.get(spec.entry.type)
    context = NodeContext(spec.name, [tuple(x.shape) for x in inputs], inputs[0].dtype, rng)
    try:
        with np.errstate(all="ignore"):  # an initial scale that overflows is named below, not warned about
            node = component.build(component_params(component, spec.entry), context)
    except UserError as exc:
        raise _located(exc, _node_where(spec, exc), spec.path) from None
    except MemoryError as exc:
        raise ConfigError(f"node {spec.name!r} ({spec.entry.type}) does not fit in memory: {exc}",
                          path=spec.path) from None
    except (ValueError, TypeError, IndexError) as exc:
        raise ConfigError(f"node {spec.name!r} ({spec.entry.type}) cannot be built for inputs of shape "
                          f"{', '.join(str(s) for s in context.input_shapes)}: {exc}", path=spec.path) from None
    except Exception as exc:
        exc.add_note(f"(raised by the build of node {spec.name!r}, {_from_plugin(plugins.nodes, spec.entry.type)})")
        raise
    if not isinstance(node, Node):
        info = plugins.nodes.plugin_of(spec.entry.type)
        raise PluginError(f"field {spec.path}: node type {spec.entry.type!r} (plugin {info.name!r} from {info.dist}) "
                          f"built {type(node).__name__}, not an nnframe Node")
    _check_dtype(node, spec, context.dtype, plugins)
    _check_initial_values(node, spec)
    return node


def _check_dtype(node: Node, spec: NodeSpec, dtype: np.dtype, plugins: Plugins) -> None:
    """Parameters in the run's dtype: one a plugin made in another (``np.full(n, 1)`` is int64) would fail in
    the optimizer, or train in the wrong precision without a word."""
    for i, param in enumerate(getattr(node, "params", [])):
        if isinstance(param, np.ndarray) and param.dtype != dtype:
            raise PluginError(f"field {spec.path}: node {spec.name!r} ({_from_plugin(plugins.nodes, spec.entry.type)}) "
                              f"made params[{i}] in {param.dtype}, but the model is in {dtype}; make parameters "
                              "and gradients in ctx.dtype")


def _check_initial_values(node: Node, spec: NodeSpec) -> None:
    """A parameter that starts infinite (``scale: 1e308`` in float32) would diverge at step 1, and make
    ``nnframe gradcheck`` blame a node whose gradient is right."""
    params = list(getattr(node, "params", []))  # a node without them is named when the model is made
    names = list(getattr(node, "param_names", None) or [])
    if len(names) != len(params):
        names = [f"params[{i}]" for i in range(len(params))]
    bad = first_nonfinite(names, params) if params else None
    if bad is not None:
        raise ConfigError(f"node {spec.name!r} ({spec.entry.type}) starts with parameter {bad} not finite in "
                          f"{params[0].dtype}: its initialisation overflows (a scale too large?)", path=spec.path)


def _from_plugin(registry: Any, name: str) -> str:
    """``type 'scale' from plugin 'scale' (my-package 0.1)``: who to tell about a bug in a component."""
    info = registry.plugin_of(name)
    who = " ".join(filter(None, (info.dist, info.version)))
    return f"type {name!r} from plugin {info.name!r} " + (who if who.startswith("(") else f"({who})")


def _node_where(spec: NodeSpec, exc: Exception) -> str:
    named = repr(spec.name) in str(exc)
    return f"field {spec.path}" + ("" if named else f" (node {spec.name!r}, type {spec.entry.type!r})")


def _located(exc: UserError, where: str, path: str | None = None) -> UserError:
    """``exc`` with ``where`` (a file, a field path) in front of its message; its type is kept.

    ``path``, the field path, is kept on the error where it has none, so that
    :func:`with_origin` can tell whether an override set that field.
    """
    exc.args = (f"{where}: {exc}",)
    if path and not getattr(exc, "path", None):
        exc.path = path  # type: ignore[attr-defined]
    return exc


def with_origin(exc: UserError, config: LoadedConfig) -> UserError:
    """``exc`` with where its value came from in front: the override that set the field, else the file."""
    if getattr(exc, "file", None):
        return exc
    file = str(config.path)
    located = _located(exc, _override_behind(exc, config.overrides) or file + _overrides_within(exc, config.overrides))
    if isinstance(located, ConfigError):
        located.file = file
    return located


def _failing_path(exc: UserError) -> list[str]:
    """The field path an error is about, as parts (``["train", "batch_size"]``); a data error is about ``data``."""
    where = getattr(exc, "path", None) or ("data" if isinstance(exc, DataError) else None)
    return path_parts(where) if where else []


def _overrides_within(exc: UserError, overrides: list[str]) -> str:
    """`` (with override 'loss.type=mse')``: the overrides of fields inside a section an error is about as a
    whole, which may be behind it though none alone can be blamed."""
    failing = [path_parts(section) for section in exc.sections] or [_failing_path(exc)]
    return with_overrides([text for text in overrides if any(
        part and [str(key) for key in parse_override(text)[0]][:len(part)] == part for part in failing)])


def _override_behind(exc: UserError, overrides: list[str]) -> str | None:
    """The last override that set the failing field or a section holding it, or, for a failing field below
    the top level (``train.batch_size``, ``model[2]``), a field inside it.

    An error about a whole section (``data``, ``model``) says nothing of which
    of its fields is wrong, so an override of one of them is not blamed.
    """
    failing = _failing_path(exc)
    if not failing:
        return None
    for text in reversed(overrides):
        set_path = [str(part) for part in parse_override(text)[0]]
        holds = failing[:len(set_path)] == set_path
        inside = len(failing) > 1 and set_path[:len(failing)] == failing
        if holds or inside:
            return f"override {shown(text)}"
    return None


def _sample_forward(node: Node, spec: NodeSpec, inputs: list[np.ndarray], origin: str) -> np.ndarray:
    node.training = False
    try:
        with np.errstate(all="ignore"):
            return node.forward(*inputs)
    except UserError as exc:
        raise _located(exc, _node_where(spec, exc), spec.path) from None
    except MemoryError as exc:
        raise ConfigError(f"node {spec.name!r} ({spec.entry.type}) does not fit in memory: {exc}",
                          path=spec.path) from None
    except (ValueError, TypeError, IndexError) as exc:  # mostly a config's shapes; a plugin's line is named
        shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
        where = plugin_origin(exc) or _raised_in_node_code(exc, node)
        if where:  # the shapes a config gave it, or a bug in its code: both are said
            error = ConfigError(f"node {spec.name!r} ({spec.entry.type}) failed on inputs of shape {shapes}: "
                                f"{str(exc).strip()} {where}; either the config gives it shapes it does not take, "
                                "or its forward has a bug there", path=spec.path)
        else:
            error = ConfigError(f"node {spec.name!r} ({spec.entry.type}) does not accept inputs of shape "
                                f"{shapes}: {exc}", path=spec.path)
        error.sections = ("model",)  # its inputs' shapes come from the nodes before it: an override of one is named
        raise error from None
    except Exception as exc:
        exc.add_note(f"(raised in the forward of node {spec.name!r}, {origin})")
        raise
    finally:
        node.training = True


def _raised_in_node_code(exc: BaseException, node: Node) -> str | None:
    """``(raised in my_notebook_module, line 12)`` for a node of a plugin registered in the process, whose code no
    installed distribution names; None for nnframe's own nodes."""
    package = type(node).__module__.split(".")[0]
    found = None if package == "nnframe" else innermost_frame_in(exc, [package])
    return f"(raised in {found[0]}, line {found[1]})" if found else None


def build_experiment(config: LoadedConfig, plugins: Plugins, initial_params: bool = True) -> Experiment:
    """Data first (its shape sizes the model), then model, loss and optimizer.

    ``initial_params`` false leaves ``train.init_from`` alone: a resume, or a
    loaded run, sets the parameters from its own checkpoint.
    Every user error is raised with the config file in front of its message.
    """
    try:
        experiment = _build_experiment(config, plugins)
        init = experiment.settings.train.init_from
        if initial_params and init is not None:
            notes, saved, copied = copy_initial_params(init, experiment.model)
            if copied:  # parameters that see the inputs as their run scaled them
                experiment.dataset, scaling_notes = scaled_as_source(experiment.dataset, saved.scaling, init.run)
                notes += scaling_notes
            experiment.notes += notes
        return experiment
    except UserError as exc:
        raise with_origin(exc, config) from None


def _build_experiment(config: LoadedConfig, plugins: Plugins) -> Experiment:
    settings = config.experiment
    dtype = as_dtype(settings.train.dtype)
    streams = Streams.from_seed(settings.seed)
    _check_single_input(model_layout(settings.model))
    data_component = plugins.datasets.get(settings.data.type)
    try:
        with np.errstate(all="ignore"):  # a value that overflows is named by the dataset's checks
            dataset = load_dataset(data_component, component_params(data_component, settings.data),
                                   DatasetContext(config.base_dir, streams.data, dtype),
                                   val_fraction=settings.data.val_fraction, standardize=settings.data.standardize)
    except UserError:
        raise
    except (ValueError, OSError) as exc:  # a bad value or an unreadable file: the data, as a loss's ValueError is
        origin = _from_plugin(plugins.datasets, settings.data.type)
        reason = os_error_reason(exc) if isinstance(exc, OSError) else str(exc) or type(exc).__name__
        raise DataError(f"data: dataset {origin} cannot be built: {reason}") from None
    except Exception as exc:
        exc.add_note(f"(raised by the build of dataset {_from_plugin(plugins.datasets, settings.data.type)})")
        raise
    _check_batch_size(settings.train, dataset)
    train = settings.train
    per_epoch = batches_per_epoch(dataset.n_train, train.batch_size, train.drop_last)
    _check_schedule(settings, planned_steps(train, per_epoch))
    model = build_model(settings.model, plugins, dataset.x[:2], streams.init)
    loss_component = plugins.losses.get(settings.loss.type)
    classification = bool(loss_component.extra.get("classification", True)) and dataset.classification
    if not dataset.classification and not _fits_values(loss_component):
        registered = ("" if plugins.losses.plugin_of(settings.loss.type).dist == "nnframe" else
                      f" ({_from_plugin(plugins.losses, settings.loss.type)}: a regression loss registers with "
                      "loss(..., classification=False))")
        raise ConfigError(f"loss {settings.loss.type!r} needs class labels{registered}, but dataset "
                          f"{dataset.source} holds regression targets; use a regression loss such as mse, or give "
                          "the data as classes", path="loss.type")
    if not classification:  # known from the data too (a plugin's regression dataset), not only from the loss
        best_by_loss(settings.checkpoint)
    output_shape = _output_shape(model, dataset)
    if classification:
        try:
            check_labels_fit(output_shape, dataset)
        except DataError as exc:
            exc.sections = ("data", "model")  # the labels against the model's last node: either may be at fault
            raise
    optimizer = _build_component(plugins.optimizers, settings.optimizer, "optimizer")
    _check_built(optimizer, Optimizer, plugins.optimizers, settings.optimizer.type, "optimizer")
    loss = _build_component(plugins.losses, settings.loss, "loss")
    probe = _build_component(plugins.losses, settings.loss, "loss")  # the loss handed out sees no forward of it
    check_loss_accepts_targets(probe, settings.loss.type, output_shape, dataset)
    check_loss_outputs(probe, _from_plugin(plugins.losses, settings.loss.type), output_shape, dataset)
    if hasattr(loss, "validate_targets"):
        loss.validate_targets = False
    errors, notes = ((False, unused_scores_notes(output_shape, dataset)) if classification
                     else error_measures(probe, settings.loss.type, output_shape, dataset))
    callbacks = build_callbacks(settings.callbacks, plugins, dataset.x_val is not None, classification, errors)
    return Experiment(config, dataset, model, loss, classification, optimizer, streams, dtype, callbacks,
                      notes=notes, error_measures=errors)


def _fits_values(loss: Component) -> bool:
    """Whether a loss trains on a regression dataset's targets: a regression loss, or one that also takes them."""
    return not loss.extra.get("classification", True) or bool(loss.extra.get("takes_values", False))


def build_callbacks(entries: list[BaseModel], plugins: Plugins, has_validation: bool,
                    classification: bool, error_measures: bool) -> list[Any]:
    """The ``callbacks`` section's objects, each named (its ``name``, else its type) and checked as a run will
    register it, so that ``nnframe validate`` names a hook no spec has; an object implementing no hook would be
    registered and never heard from."""
    names: dict[str, int] = {}
    callbacks = []
    for i, entry in enumerate(entries):
        path = f"callbacks[{i}]"
        name = entry.name or entry.type
        if name in names:
            raise ConfigError(f"callbacks {names[name]} and {i} are both named {name!r}, the key each keeps its "
                              f"state under; give {path} a name of its own ({path}.name)", path=f"{path}.name")
        names[name] = i
        context = CallbackContext(name, has_validation, classification, error_measures)
        built = _build_component(plugins.callbacks, entry, path, context)
        origin = f"field {path}.type: {_from_plugin(plugins.callbacks, entry.type)} built {type(built).__name__}"
        if any(built is earlier for earlier in callbacks):
            raise PluginError(f"{origin}, the very object an earlier entry got; its build() must return a new "
                              "object for each entry")
        if not _implements_hooks(built):
            raise PluginError(f"{origin}, which implements no hook; its build() must return an object with "
                              "methods marked @nnframe.hookimpl")
        problem = run_plugin_problem(plugins.pm, built)
        if problem:
            raise PluginError(f"{origin}, which a run cannot register: {problem.removeprefix(':').strip()}")
        callbacks.append(built)
    return callbacks


def _implements_hooks(obj: Any) -> bool:
    return any(name.startswith(HOOK_PREFIX) and hasattr(getattr(obj, name, None), IMPL_MARK) for name in dir(type(obj)))


def _build_component(registry: Any, entry: BaseModel, path: str, *context: Any) -> Any:
    """A loss, optimizer or callback from its section; a build that rejects its params is a config error at
    ``path``."""
    component = registry.get(entry.type)
    try:
        return component.build(component_params(component, entry), *context)
    except UserError as exc:
        raise _located(exc, f"field {path}", path) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{component.kind} {component.name!r} cannot be built: {exc}", path=path) from None
    except Exception as exc:
        exc.add_note(f"(raised by the build of {component.kind} {_from_plugin(registry, entry.type)})")
        raise


def _check_built(built: Any, base: type, registry: Any, type_name: str, path: str) -> None:
    if not isinstance(built, base):
        raise PluginError(f"field {path}.type: {_from_plugin(registry, type_name)} built {type(built).__name__}, "
                          f"not an nnframe.{base.__name__}; its build() must return an instance of a subclass of it")


def _check_single_input(layout: ModelLayout) -> None:
    """A dataset gives one array ``x`` per example, so a trainable graph reads exactly one input."""
    if len(layout.inputs) != 1:
        names = ", ".join(layout.inputs)
        raise ConfigError(f"the graph takes {len(layout.inputs)} inputs ({names}), but a dataset gives one "
                          "array x per example; a model trained from a dataset has exactly one input",
                          path=layout.inputs_path)


def _check_batch_size(train: BaseModel, dataset: Dataset) -> None:
    if dataset.n_train < train.batch_size:
        error = ConfigError(f"{train.batch_size} is more than the {dataset.n_train} training examples of dataset "
                            f"{dataset.source}; lower batch_size to at most {dataset.n_train} or use more data",
                            path="train.batch_size")
        error.sections = ("train.batch_size", "data")
        raise error


def _check_schedule(settings: BaseModel, total_steps: int) -> None:
    """A schedule's own refusal of the run's length; a plugin's ``check`` may raise a ``ValueError``."""
    try:
        settings.optimizer.schedule.check(total_steps)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(str(exc), path="optimizer.schedule") from None


def _output_shape(model: Graph, dataset: Dataset) -> tuple[int, ...]:
    """The shape of the model's output for a batch of three examples (fewer where the data has fewer), in eval mode.

    The output must keep a row per example: a node that sums or repeats
    along the batch axis leaves the loss with scores that no longer match
    the targets, which would otherwise show only at the first step. Three,
    not the two the model was built from, so that a node that mistakes the
    batch axis for a feature axis is not hidden by the two lengths agreeing.
    """
    x = dataset.x[:SHAPE_CHECK_ROWS]
    model.eval()
    try:
        with np.errstate(all="ignore"):  # values are not the point here, as in the sample forward of the build
            out = model.forward(x)
            if np.ndim(out) == 0 or np.shape(out)[0] != len(x):
                raise ConfigError(_batch_axis_message(model, x, out), path="model")
        return tuple(np.shape(out))
    except (ValueError, TypeError, IndexError) as exc:
        node = model.failing_node(exc)
        where = f" in node {node!r} ({type(model.nodes[node]).__qualname__})" if node else ""
        raise ConfigError(f"the model fails on a batch of shape {x.shape}{where}: {exc}", path="model") from None
    finally:
        model.train()
        model.forget_forward()


def _batch_axis_message(model: Graph, x: np.ndarray, out: Any) -> str:
    rows = len(x)
    changed = next((name for name, value in model.trace(x).items() if np.ndim(value) == 0 or len(value) != rows),
                   None)
    where = (f"; node {changed!r} ({type(model.nodes[changed]).__qualname__}) is the first to change axis 0"
             if changed else "")
    return (f"the model's output has shape {np.shape(out)} for a batch of {rows} examples, but the loss needs "
            f"one row per example{where}; sum or repeat along another axis")

"""The config models: built from the registries, unknown keys refused everywhere, the model as a graph."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, Field, ValidationError

from nnframe.builtin import datasets, losses, nodes, optimizers, schedules
from nnframe.components import Params, node
from nnframe.config import ConfigModels, TrainConfig
from nnframe.hookspecs import hookimpl
from nnframe.model_layout import layout_problems, model_layout
from nnframe.plugins import get_plugin_manager

SPIRAL: dict[str, Any] = {
    "name": "spiral",
    "seed": 1984,
    "data": {"type": "spiral", "points_per_class": 10, "classes": 3},
    "model": [{"type": "affine", "out": 10}, {"type": "sigmoid"}, {"type": "affine", "out": 3}],
    "loss": {"type": "softmax_cross_entropy"},
    "optimizer": {"type": "sgd", "lr": 1.0},
    "train": {"epochs": 3, "batch_size": 30},
}
BUILTINS = [("nodes", nodes), ("losses", losses), ("optimizers", optimizers), ("schedules", schedules),
            ("datasets", datasets)]


class ScaleParams(Params):
    """Multiply by ``factor``."""

    factor: float = Field(2.0, gt=0, description="The factor.")


class ScalePlugin:
    """A third-party plugin object registering the node ``scale``."""

    @hookimpl
    def nnframe_register_nodes(self) -> list:
        return [node("scale", ScaleParams, lambda params, ctx: None, "y = factor * x")]


class LooseParams(BaseModel):
    """Params of a plugin that did not subclass nnframe's Params (pydantic ignores extra keys by default)."""

    width: int = 3


class LoosePlugin:
    """A plugin registering the node ``loose`` with :class:`LooseParams`."""

    @hookimpl
    def nnframe_register_nodes(self) -> list:
        return [node("loose", LooseParams, lambda params, ctx: None)]


@pytest.fixture
def models() -> ConfigModels:
    return ConfigModels(get_plugin_manager(autoload=False, plugins=[*BUILTINS, ("scale", ScalePlugin())]))


def with_change(path: list[Any], value: Any) -> dict[str, Any]:
    config = copy.deepcopy(SPIRAL)
    target = config
    for key in path[:-1]:
        target = target.setdefault(key, {}) if isinstance(target, dict) else target[key]
    target[path[-1]] = value
    return config


def error_locs(models: ConfigModels, config: dict[str, Any]) -> list[tuple]:
    with pytest.raises(ValidationError) as caught:
        models.experiment.model_validate(config)
    return [error["loc"] for error in caught.value.errors()]


def test_spiral_config_validates_with_defaults_filled(models: ConfigModels) -> None:
    experiment = models.experiment.model_validate(SPIRAL)
    assert experiment.train.dtype == "float32"
    assert experiment.log.every == 10
    assert experiment.checkpoint.keep == 3
    assert experiment.data.val_fraction == 0.0
    assert [entry.type for entry in experiment.model] == ["affine", "sigmoid", "affine"]
    assert experiment.model[0].init == "normal"


@pytest.mark.parametrize("path", [
    ["extra"], ["data", "extra"], ["model", 0, "extra"], ["model", 1, "out"], ["loss", "extra"],
    ["optimizer", "momentun"], ["optimizer", "schedule", "extra"], ["train", "extra"], ["log", "extra"],
    ["checkpoint", "extra"],
])
def test_every_section_forbids_unknown_keys(models: ConfigModels, path: list[Any]) -> None:
    config = with_change(path, 1) if path[:2] != ["optimizer", "schedule"] else \
        with_change(["optimizer", "schedule"], {"type": "constant", "extra": 1})
    errors = error_locs(models, config)
    assert any(loc[0] == path[0] and loc[-1] == path[-1] for loc in errors), errors


def test_graph_form_forbids_unknown_keys(models: ConfigModels) -> None:
    config = with_change(["model"], {"nodes": SPIRAL["model"], "output": "affine2", "outputs": "x"})
    assert any(loc[-1] == "outputs" for loc in error_locs(models, config))


@pytest.mark.parametrize("path, value", [
    (["model", 0, "type"], "afine"),
    (["model", 0, "out"], -1),
    (["model", 0, "out"], "ten"),
    (["optimizer", "lr"], "fast"),
    (["train", "dtype"], "float16"),
    (["train", "batch_size"], 0),
    (["seed"], -1),
    (["name"], "../escape"),
    (["model"], []),
    (["model"], 3),
    (["data", "classes"], 1),
])
def test_wrong_values_are_rejected(models: ConfigModels, path: list[Any], value: Any) -> None:
    assert error_locs(models, with_change(path, value))


def test_a_component_section_takes_exactly_the_params_its_component_declares(models: ConfigModels) -> None:
    config = with_change(["model", 1], {"type": "scale", "factor": 3.0})
    assert models.experiment.model_validate(config).model[1].factor == 3.0
    assert error_locs(models, with_change(["model", 1], {"type": "scale", "factor": 0}))
    assert error_locs(models, with_change(["model", 1], {"type": "scale", "out": 3}))


def test_unknown_keys_are_refused_even_when_a_plugins_params_allow_them() -> None:
    models = ConfigModels(get_plugin_manager(autoload=False, plugins=[*BUILTINS, ("loose", LoosePlugin())]))
    valid = models.experiment.model_validate(with_change(["model", 1], {"type": "loose", "width": 4}))
    assert valid.model[1].width == 4
    assert ("model", "sequential form", 1, "loose", "widht") in error_locs(
        models, with_change(["model", 1], {"type": "loose", "widht": 4}))
    assert LooseParams.model_validate({"widht": 4}).width == 3  # the plugin's own class is left as it is


def test_train_needs_epochs_or_max_steps() -> None:
    with pytest.raises(ValidationError, match="epochs or train.max_steps"):
        TrainConfig(batch_size=3)
    assert TrainConfig(max_steps=5).epochs is None


def test_no_registered_component_of_a_kind_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    models = ConfigModels(get_plugin_manager(autoload=False, plugins=[("nodes", nodes)]))
    with pytest.raises(ValidationError, match="no dataset types are registered, so 'spiral' cannot be used; a plugin "
                                              "may be missing or broken"):
        models.experiment.model_validate(SPIRAL)
    monkeypatch.setenv("NNFRAME_DISABLE_PLUGIN_AUTOLOAD", "1")
    models = ConfigModels(get_plugin_manager(plugins=[("nodes", nodes)]))
    with pytest.raises(ValidationError, match="NNFRAME_DISABLE_PLUGIN_AUTOLOAD is set, which leaves out nnframe's "
                                              "own components too"):
        models.experiment.model_validate(SPIRAL)


def test_an_experiment_name_fits_a_directory_name(models: ConfigModels) -> None:
    with pytest.raises(ValidationError, match="at most 200 characters"):
        models.experiment.model_validate({**SPIRAL, "name": "a" * 201})
    assert models.experiment.model_validate({**SPIRAL, "name": "a" * 200}).name == "a" * 200


def test_json_schema_lists_every_component_including_plugins(models: ConfigModels) -> None:
    schema = models.json_schema()
    assert schema["title"] == "nnframe experiment"
    assert schema["additionalProperties"] is False
    names = set(schema["$defs"])
    assert {"AffineNode", "ScaleNode", "SgdOptimizer", "SpiralData", "SoftmaxCrossEntropyLoss"} <= names
    assert schema["$defs"]["ScaleNode"]["properties"]["factor"]["exclusiveMinimum"] == 0


@pytest.mark.parametrize(("shuffle", "valid"), [(True, True), (0, True), (1, True), ("off", True), ("yes", True),
                                               ("Yes", True), ("ON", True), ("y", True), ("'1'", False),
                                               ("1", True), (2, False), ("maybe", False), (" yes", False),
                                               ("yes please", False), (0.5, False)])
def test_the_schema_takes_a_switch_as_validation_does(models: ConfigModels, shuffle: Any, valid: bool) -> None:
    """An editor checking a file with ``nnframe schema`` flags what validation refuses, and only that."""
    config = {**SPIRAL, "train": {**SPIRAL["train"], "shuffle": shuffle}}
    in_schema = jsonschema.Draft202012Validator(models.json_schema()).is_valid(config)
    try:
        models.experiment.model_validate(config)
        validates = True
    except ValidationError:
        validates = False
    assert in_schema == validates == valid


def graph(nodes_: list[dict[str, Any]], inputs: list[str] | None = None, output: str = "y") -> Any:
    models = ConfigModels(get_plugin_manager(autoload=False, plugins=BUILTINS))
    section: dict[str, Any] = {"nodes": nodes_, "output": output}
    if inputs is not None:
        section["inputs"] = inputs
    return models.experiment.model_validate(with_change(["model"], section)).model


def test_sequential_layout_names_nodes_by_type_and_position() -> None:
    models = ConfigModels(get_plugin_manager(autoload=False, plugins=BUILTINS))
    layout = model_layout(models.experiment.model_validate(SPIRAL).model)
    assert [(n.name, n.inputs, n.path) for n in layout.nodes] == [
        ("affine1", ("x",), "model[0]"), ("sigmoid1", ("affine1",), "model[1]"), ("affine2", ("sigmoid1",), "model[2]")]
    assert (layout.inputs, layout.output) == (["x"], "affine2")


def test_graph_layout_keeps_names_inputs_and_output() -> None:
    layout = model_layout(graph([
        {"name": "h", "type": "affine", "out": 4, "inputs": ["x"]},
        {"name": "a", "type": "sigmoid", "inputs": ["h"]},
        {"name": "b", "type": "tanh", "inputs": ["h"]},
        {"name": "y", "type": "add", "inputs": ["a", "b"]},
    ]))
    assert [(n.name, n.inputs) for n in layout.nodes] == [("h", ("x",)), ("a", ("h",)), ("b", ("h",)),
                                                          ("y", ("a", "b"))]
    assert layout.nodes[3].path == "model.nodes[3]"
    assert layout_problems(layout) == []


H = {"name": "h", "type": "affine", "out": 4, "inputs": ["x"]}
Y = {"name": "y", "type": "affine", "out": 3, "inputs": ["h"]}


@pytest.mark.parametrize("nodes_, inputs, output, path, words", [
    ([{**H, "inputs": ["y"]}, Y], None, "y", "model.nodes[0].inputs", ["cycle", "h -> y -> h"]),
    ([{**H, "inputs": ["xx"]}, Y], None, "y", "model.nodes[0].inputs", ["'xx'", "did you mean 'x'"]),
    ([H, {**H, "name": "z"}, Y], None, "y", "model.nodes[1]", ["'z'", "does not lead to the output"]),
    ([H, Y], None, "yy", "model.output", ["'yy'", "did you mean 'y'"]),
    ([H, Y], None, "x", "model.output", ["graph input"]),
    ([H, {**Y, "name": "h"}], None, "h", "model.nodes[1].name", ["duplicate node name 'h'", "model.nodes[0]"]),
    ([{**H, "name": "x"}, {**Y, "inputs": ["x"]}], None, "y", "model.nodes[0].name", ["also a graph input"]),
    ([H, Y], ["x", "x"], "y", "model.inputs", ["listed twice"]),
    ([H, Y], ["x", "unused"], "y", "model.inputs", ["'unused'", "not read"]),
])
def test_graph_problems_name_the_field_and_the_node(nodes_: list, inputs: list | None, output: str, path: str,
                                                    words: list[str]) -> None:
    problems = layout_problems(model_layout(graph(nodes_, inputs, output)))
    assert problems, "expected a problem"
    found_path, message = problems[0]
    assert found_path == path
    for word in words:
        assert word in message


def test_a_cycle_is_reported_from_the_first_listed_node_in_data_flow_order() -> None:
    # a reads c, b reads a, c reads b: the cycle a -> b -> c -> a, reported at a (listed first)
    problems = layout_problems(model_layout(graph([
        {"name": "a", "type": "tanh", "inputs": ["c"]},
        {"name": "b", "type": "tanh", "inputs": ["a"]},
        {"name": "c", "type": "tanh", "inputs": ["b"]},
        {"name": "y", "type": "affine", "out": 3, "inputs": ["x"]},
    ])))
    assert problems == [("model.nodes[0].inputs",
                         "node 'a' is in a cycle: a -> b -> c -> a; a node cannot depend on its own output")]


def test_graph_inputs_must_not_be_empty(models: ConfigModels) -> None:
    config = with_change(["model"], {"inputs": [], "nodes": SPIRAL["model"], "output": "affine2"})
    assert ("model", "graph form", "inputs") in error_locs(models, config)


def test_a_kind_with_no_type_registered_says_why_a_plugins_component_of_that_name_was_left_out() -> None:
    from nnframe.config import _nothing_registered

    refuse = _nothing_registered("callback", {("callback", "cfoo"): "the callback 'cfoo' of plugin 'p' was left out"})
    with pytest.raises(ValueError, match="so 'cfoo' cannot be used; the callback 'cfoo' of plugin 'p' was left out"):
        refuse({"type": "cfoo"})
    with pytest.raises(ValueError, match="so 'other' cannot be used; a plugin may be missing or broken"):
        refuse({"type": "other"})

"""From pydantic's errors to one line each: the user's field path, what was expected, what was found."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
from pydantic import Field, ValidationError

from nnframe.builtin import datasets, losses, nodes, optimizers, schedules
from nnframe.config import ConfigModels
from nnframe.components import Params, dataset, node
from nnframe.config_errors import Problem, field_path, format_path, format_validation_error
from nnframe.hookspecs import hookimpl
from nnframe.plugins import get_plugin_manager

SPIRAL: dict[str, Any] = {
    "name": "spiral",
    "data": {"type": "spiral"},
    "model": [{"type": "affine", "out": 10}, {"type": "sigmoid"}, {"type": "affine", "out": 3}],
    "loss": {"type": "softmax_cross_entropy"},
    "optimizer": {"type": "sgd", "lr": 1.0},
    "train": {"epochs": 3},
}
ROOT = ConfigModels(get_plugin_manager(autoload=False, plugins=[
    ("nodes", nodes), ("losses", losses), ("optimizers", optimizers), ("schedules", schedules),
    ("datasets", datasets)])).experiment


@pytest.mark.parametrize("parts, text", [
    (["model", 2, "out"], "model[2].out"),
    (["optimizer"], "optimizer"),
    ([], "(top level)"),
    (["model", "nodes", 0, "inputs"], "model.nodes[0].inputs"),
])
def test_format_path(parts: list[Any], text: str) -> None:
    assert format_path(parts) == text


DATA = {"model": [{"type": "affine", "out": -1}, {"type": "relu", "relu": 1}], "train": {}}


@pytest.mark.parametrize("loc, kind, path", [
    # pydantic's loc carries the union tags "sequential form" and "affine"; they are not in the data
    (("model", "sequential form", 0, "affine", "out"), "greater_than", "model[0].out"),
    # a key that repeats the node's type is the tag the first time and the key the second
    (("model", "sequential form", 1, "relu", "relu"), "extra_forbidden", "model[1].relu"),
    # a missing field is absent from the data but belongs in the path
    (("train", "epochs"), "missing", "train.epochs"),
    # a trailing tag on a value error is dropped
    (("model", "sequential form"), "too_short", "model"),
])
def test_field_path_drops_union_tags(loc: tuple, kind: str, path: str) -> None:
    assert field_path(DATA, loc, kind)[0] == path


def problems(change: dict[str, Any]) -> list[Problem]:
    config = copy.deepcopy(SPIRAL)
    for dotted, value in change.items():
        *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
        target: Any = config
        for key in parents:
            target = target[key]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    with pytest.raises(ValidationError) as caught:
        ROOT.model_validate(config)
    return format_validation_error(caught.value, config, ROOT)


DELETE = object()


@pytest.mark.parametrize("change, path, words", [
    ({"model.0.type": "afine"}, "model[0].type", ["unknown type 'afine'", "did you mean 'affine'?", "available: add,"]),
    ({"optimizer.momentun": 0.9}, "optimizer.momentun",
     ["unknown key 'momentun'", "expected one of: lr, schedule, type, weight_decay"]),
    ({"model.2.out": -3}, "model[2].out", ["greater than 0", "found -3"]),
    ({"optimizer.lr": "fast"}, "optimizer.lr", ["valid number", "found 'fast'"]),
    ({"train.dtype": "float16"}, "train.dtype", ["'float32' or 'float64'", "found 'float16'"]),
    ({"train.epochs": DELETE}, "train", ["train.epochs or train.max_steps"]),
    ({"name": DELETE}, "name", ["missing required field"]),
    ({"model.1.out": 3}, "model[1].out", ["unknown key 'out'", "expected one of: inputs, name, type"]),
    ({"model.1": "sigmoid"}, "model[1]", ["expected a mapping", "found 'sigmoid'"]),
    ({"train": 5}, "train", ["expected a mapping", "found 5"]),
    ({"model": 3}, "model", ["list of nodes (sequential form)", "(graph form)", "found 3"]),
    ({"model": {"type": "affine", "out": 3}}, "model", ["list of nodes (sequential form)",
                                                         "one node is still a list: model: [{type: affine, ...}]"]),
    ({"model": []}, "model", ["at least 1 entry"]),
    ({"optimizer": {"type": "sgd", "lr": 1, 5: None}}, "optimizer",  # the YAML of {type: sgd, lr: 1,5}
     ["key 5 is not a name; keys must be strings; if lr: 1,5 was meant as one number, write it with a point: "
      "inside { } a ',' separates entries"]),
    ({"model.1": {"type": "sigmoid", None: 1}}, "model[1]", ["key None is not a name; keys must be strings"]),
    ({"train": {"epochs": 2, datetime.date(2020, 1, 1): 5}}, "train",  # YAML's 2020-01-01: 5
     ["key datetime.date(2020, 1, 1) is not a name"]),
    ({"model.0": {"out": 3}}, "model[0].type", ["missing required key 'type'"]),
    ({"name": "no/slash"}, "name", ["letters, digits", "found 'no/slash'"]),
    ({"name": "café"}, "name", ["expected a name of ASCII letters, digits"]),
    ({"train.epochs": 1e100}, "train.epochs", ["expected a whole number; this one is larger than any setting takes; "
                                               "found 1e+100"]),
    ({"optimizer.schedule": {"type": "cosin"}}, "optimizer.schedule.type", ["did you mean 'cosine'?"]),
    ({"train.init_from": {"run": "r", "checkpoint": "lastest"}}, "train.init_from.checkpoint",
     ["input should be 'latest' or 'best', or input should be a valid integer",
      "; found 'lastest' (did you mean 'latest'?)"]),
    ({"train.init_from": {"run": "r", "checkpoint": -3}}, "train.init_from.checkpoint",
     ["input should be 'latest' or 'best', or input should be greater than or equal to 0; found -3"]),
])
def test_each_error_is_one_problem_with_path_expected_and_found(change: dict, path: str, words: list[str]) -> None:
    found = problems(change)
    assert len(found) == 1, found
    assert found[0].path == path
    for word in words:
        assert word in found[0].message


@pytest.mark.parametrize("optimizer", [{"type": "sgd", "lr": 1, 5: "x"}, {5: None, "type": "sgd", "lr": 1},
                                       {"type": "sgd", 5: None, "lr": 1}])
def test_a_number_key_is_not_taken_for_a_decimal_comma_without_a_number_before_it(optimizer: dict) -> None:
    [found] = problems({"optimizer": optimizer})
    assert found.message == "key 5 is not a name; keys must be strings"


def test_a_misspelt_section_is_one_problem_not_also_a_missing_one() -> None:
    config = copy.deepcopy(SPIRAL)
    config["optimiser"] = config.pop("optimizer")
    with pytest.raises(ValidationError) as caught:
        ROOT.model_validate(config)
    found = format_validation_error(caught.value, config, ROOT)
    assert [(p.path, p.suggestion) for p in found] == [("optimiser", "optimizer")]
    assert "did you mean 'optimizer'?" in found[0].message


def test_unrelated_missing_fields_are_all_reported() -> None:
    found = problems({"loss": DELETE, "train": DELETE})
    assert [(p.path, p.message) for p in found] == [("loss", "missing required field"),
                                                    ("train", "missing required field")]


class SpiralOnly:
    """A plugin registering one dataset type, so the data section is not a union."""

    @hookimpl
    def nnframe_register_datasets(self) -> list:
        return [dataset("spiral", datasets.SpiralParams, datasets.build_spiral)]


def test_a_single_registered_type_still_gets_unknown_type_and_did_you_mean() -> None:
    root = ConfigModels(get_plugin_manager(autoload=False, plugins=[
        ("nodes", nodes), ("losses", losses), ("optimizers", optimizers), ("schedules", schedules),
        ("spiral", SpiralOnly())])).experiment
    config = copy.deepcopy(SPIRAL)
    assert root.model_validate(config).data.type == "spiral"
    config["data"] = {"type": "spirall"}
    with pytest.raises(ValidationError) as caught:
        root.model_validate(config)
    found = format_validation_error(caught.value, config, root)
    assert found[0].path == "data.type" and "did you mean 'spiral'?" in found[0].message


@pytest.mark.parametrize("change, path, suggestion", [
    ({"data": {"type": "CSV", "path": "d.csv"}}, "data.type", "csv"),
    ({"loss": {"type": "MSE"}}, "loss.type", "mse"),
    ({"optimizer": {"type": "Adam", "lr": 0.1}}, "optimizer.type", "adam"),
    ({"model.0.type": "AFFINE"}, "model[0].type", "affine"),
])
def test_a_type_that_differs_only_in_case_suggests_the_registered_name(change: dict, path: str,
                                                                       suggestion: str) -> None:
    (problem,) = problems(change)
    assert (problem.path, problem.suggestion) == (path, suggestion)
    assert f"(did you mean {suggestion!r}?)" in problem.message


@pytest.mark.parametrize("change, path, key", [
    ({"model.0": {"tyoe": "affine", "out": 3}}, "model[0].type", "tyoe"),
    ({"optimizer": {"Type": "sgd", "lr": 0.1}}, "optimizer.type", "Type"),
    ({"data": {"typ": "spiral"}}, "data.type", "typ"),
])
def test_a_misspelt_type_key_is_named_under_the_missing_type(change: dict, path: str, key: str) -> None:
    (problem,) = problems(change)
    assert (problem.path, problem.suggestion) == (path, "type")
    assert problem.message == (f"missing required key 'type' (which component this is); found the unknown key "
                               f"{key!r} (did you mean 'type'?)")


def test_problem_parts_and_text() -> None:
    problem = Problem("model.nodes[2].out", "input should be greater than 0; found -1")
    assert problem.parts == ["model", "nodes", "2", "out"]
    assert str(problem) == "field model.nodes[2].out: input should be greater than 0; found -1"


def test_an_unknown_type_of_any_kind_suggests_a_missing_plugin() -> None:
    (schedule,) = problems({"optimizer.schedule": {"type": "cosin"}})
    assert schedule.message == ("unknown type 'cosin'; available: constant, cosine, step (did you mean 'cosine'?); "
                                "a plugin may be missing (see `nnframe plugins`)")
    (optimizer,) = problems({"optimizer": {"type": "adma", "lr": 0.1}})
    assert optimizer.message.endswith("; a plugin may be missing (see `nnframe plugins`)")


class WeightsParams(Params):
    """A mapping keyed by numbers, whose key and value can both be wrong."""

    weights: dict[int, float] = Field(default_factory=dict)


class Weighted:
    @hookimpl
    def nnframe_register_nodes(self) -> list:
        return [node("weighted", WeightsParams, lambda params, ctx: None)]


def test_a_wrong_key_and_its_wrong_value_at_one_path_stay_two_problems() -> None:
    root = ConfigModels(get_plugin_manager(autoload=False, plugins=[
        ("nodes", nodes), ("losses", losses), ("optimizers", optimizers), ("schedules", schedules),
        ("datasets", datasets), ("weighted", Weighted())])).experiment
    config = copy.deepcopy(SPIRAL)
    config["model"] = [{"type": "weighted", "weights": {"a": "b"}}]
    with pytest.raises(ValidationError) as caught:
        root.model_validate(config)
    found = format_validation_error(caught.value, config, root)
    assert [(p.path, p.message.split("; found ")[1]) for p in found] == [("model[0].weights.a", "'a'"),
                                                                         ("model[0].weights.a", "'b'")]

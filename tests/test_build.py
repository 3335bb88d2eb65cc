"""From a validated config to live objects: data, model (either form), loss, optimizer; errors located."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from nnframe.batches import batches_per_epoch
from nnframe.build import Streams, build_experiment, build_model, component_params
from nnframe.builtin import datasets, losses, nodes, optimizers, schedules
from nnframe.components import Params, callback, dataset, loss, node, optimizer
from nnframe.config import TrainConfig
from nnframe.config_loader import load_experiment
from nnframe.data import Dataset, DatasetParams
from nnframe.errors import ConfigError, DataError, GraphError, NodeProtocolError, PluginError, UserError
from nnframe.hookspecs import hookimpl
from nnframe.launch import prepare
from nnframe.losses import SoftmaxWithLoss
from nnframe.node import Node
from nnframe.optimizer_params import SGDParams
from nnframe.optimizers import SGD
from nnframe.plugins import get_plugin_manager
from nnframe.train import planned_steps

SPIRAL: dict[str, Any] = {
    "name": "spiral",
    "seed": 7,
    "data": {"type": "spiral", "points_per_class": 10, "classes": 3},
    "model": [{"type": "affine", "out": 10}, {"type": "sigmoid"}, {"type": "affine", "out": 3}],
    "loss": {"type": "softmax_cross_entropy"},
    "optimizer": {"type": "sgd", "lr": 1.0},
    "train": {"epochs": 1, "batch_size": 10},
}
BUILTINS = [("nodes", nodes), ("losses", losses), ("optimizers", optimizers), ("schedules", schedules),
            ("datasets", datasets)]
BRANCHES = {
    "inputs": ["x"],
    "nodes": [
        {"name": "h", "type": "affine", "out": 4, "inputs": ["x"]},
        {"name": "a", "type": "sigmoid", "inputs": ["h"]},
        {"name": "b", "type": "tanh", "inputs": ["h"]},
        {"name": "s", "type": "add", "inputs": ["a", "b"]},
        {"name": "r", "type": "repeat", "n": 3, "axis": 1, "inputs": ["s"]},
        {"name": "q", "type": "sum", "axis": 1, "inputs": ["r"]},
        {"name": "y", "type": "affine", "out": 3, "inputs": ["q"]},
    ],
    "output": "y",
}


class NotANode:
    """A plugin whose build returns something that is not a Node."""

    @hookimpl
    def nnframe_register_nodes(self) -> list:
        return [node("bogus", Params, lambda params, ctx: "not a node")]


class RowSum(Node):
    """Broken on purpose: sums each row to a scalar, dropping the feature axis the next layer needs."""

    def forward(self, x):
        return x.sum(axis=1)

    def backward(self, dout):
        return np.repeat(dout[:, None], 2, axis=1)


class RowSumPlugin:
    @hookimpl
    def nnframe_register_nodes(self) -> list:
        return [node("row_sum", Params, lambda params, ctx: RowSum())]


class Scales(Node):
    """A plugin-style node whose parameter's dtype is not the run's: ``np.full(3, 1)`` is int64."""

    def __init__(self, W: np.ndarray) -> None:
        super().__init__()
        self.params, self.grads = [W], [np.zeros_like(W)]

    def forward(self, x):
        return x * self.params[0]

    def backward(self, dout):
        return dout * self.params[0]


class ScalesPlugin:
    @hookimpl
    def nnframe_register_nodes(self) -> list:
        return [node("int_scale", Params, lambda params, ctx: Scales(np.full(ctx.in_features, 1))),
                node("f32_scale", Params, lambda params, ctx: Scales(np.ones(ctx.in_features, np.float32)))]


@pytest.fixture(scope="module")
def plugins() -> Any:
    return get_plugin_manager(autoload=False, plugins=[*BUILTINS, ("bogus-plugin", NotANode()),
                                                       ("row-sum-plugin", RowSumPlugin()),
                                                       ("scales-plugin", ScalesPlugin())])


@pytest.mark.parametrize(("kind", "made", "model"), [("int_scale", "int64", "float32"),
                                                     ("f32_scale", "float32", "float64")])
def test_a_node_made_in_another_dtype_than_the_run_is_refused_naming_its_plugin(tmp_path: Path, plugins: Any,
                                                                               kind: str, made: str,
                                                                               model: str) -> None:
    with pytest.raises(PluginError, match=rf"model\[1\]: node '{kind}1' \(type '{kind}' from plugin "
                                          rf"'scales-plugin'.*made params\[0\] in {made}, but the model is in "
                                          rf"{model}; make parameters and gradients in ctx.dtype"):
        experiment(tmp_path, plugins, model=[{"type": "affine", "out": 3}, {"type": kind}],
                   train={**SPIRAL["train"], "dtype": model})


def experiment(tmp_path: Path, plugins: Any, **sections: Any) -> Any:
    config = {**copy.deepcopy(SPIRAL), **sections}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return build_experiment(load_experiment(path, [], plugins), plugins)


def test_spiral_builds_with_shapes_from_the_data(tmp_path: Path, plugins: Any) -> None:
    built = experiment(tmp_path, plugins)
    assert built.model.param_names == ["affine1/W", "affine1/b", "affine2/W", "affine2/b"]
    # the input width 2 decides W's rows: (2, 10) then (10, 3)
    assert [p.shape for p in built.model.params] == [(2, 10), (10,), (10, 3), (3,)]
    assert all(p.dtype == np.float32 for p in built.model.params)
    assert built.dataset.x.dtype == np.float32 and built.dataset.n_train == 30
    assert built.classification is True
    assert built.model.forward(built.dataset.x[:5]).shape == (5, 3)
    # labels were checked once against the output width, so the loss need not recheck every batch
    assert built.loss.validate_targets is False


def test_float64_is_honoured_everywhere(tmp_path: Path, plugins: Any) -> None:
    built = experiment(tmp_path, plugins, train={"epochs": 1, "batch_size": 10, "dtype": "float64"})
    assert built.dtype == np.float64
    assert {p.dtype for p in built.model.params} == {np.dtype(np.float64)}
    assert built.dataset.x.dtype == np.float64


def test_the_same_seed_builds_the_same_weights_and_data(tmp_path: Path, plugins: Any) -> None:
    first, second = experiment(tmp_path, plugins), experiment(tmp_path, plugins)
    for a, b in zip(first.model.params, second.model.params):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.dataset.x, second.dataset.x)
    other = experiment(tmp_path, plugins, seed=8)
    assert not np.array_equal(first.model.params[0], other.model.params[0])


def test_streams_are_independent_and_reproducible() -> None:
    a, b = Streams.from_seed(3), Streams.from_seed(3)
    assert a.init.integers(1 << 30) == b.init.integers(1 << 30)
    draws = {Streams.from_seed(3).init.integers(1 << 30), Streams.from_seed(3).data.integers(1 << 30),
             Streams.from_seed(3).shuffle.integers(1 << 30)}
    assert len(draws) == 3


def test_graph_form_with_branches_repeat_and_sum_builds_and_trains_a_step(tmp_path: Path, plugins: Any) -> None:
    built = experiment(tmp_path, plugins, model=BRANCHES)
    model = built.model
    assert list(model.nodes) == ["h", "a", "b", "s", "r", "q", "y"]
    x = built.dataset.x[:6]
    out = model.forward(x)
    # h: (6, 4); repeat n=3 on axis 1: (6, 12); sum on axis 1 keeps it: (6, 1); y: (6, 3)
    assert out.shape == (6, 3)
    assert model.params[2].shape == (1, 3)
    loss = built.loss.forward(out, built.dataset.y[:6])
    model.backward(built.loss.backward())
    assert np.isfinite(loss) and np.abs(model.grads[0]).sum() > 0


def test_a_multi_input_graph_builds_from_a_sample_per_input(plugins: Any) -> None:
    config = {"inputs": ["u", "v"], "nodes": [
        {"name": "hu", "type": "affine", "out": 3, "inputs": ["u"]},
        {"name": "hv", "type": "affine", "out": 3, "inputs": ["v"]},
        {"name": "y", "type": "mul", "inputs": ["hu", "hv"]},
    ], "output": "y"}
    from nnframe.config import ConfigModels

    model_config = ConfigModels(plugins).experiment.model_validate({**SPIRAL, "model": config}).model
    samples = {"u": np.ones((2, 4), np.float32), "v": np.ones((2, 5), np.float32)}
    model = build_model(model_config, plugins, samples, np.random.default_rng(0))
    assert [p.shape for p in model.params] == [(4, 3), (3,), (5, 3), (3,)]
    assert model.forward(samples["u"], samples["v"]).shape == (2, 3)
    with pytest.raises(ConfigError, match="field model.inputs: the graph takes 2 inputs"):
        build_model(model_config, plugins, samples["u"], np.random.default_rng(0))


def test_training_a_multi_input_graph_from_a_dataset_is_refused(tmp_path: Path, plugins: Any) -> None:
    model = {"inputs": ["x", "x2"], "nodes": [
        {"name": "h", "type": "affine", "out": 2, "inputs": ["x"]},
        {"name": "s", "type": "add", "inputs": ["h", "x2"]},
        {"name": "y", "type": "affine", "out": 3, "inputs": ["s"]},
    ], "output": "y"}
    with pytest.raises(ConfigError) as caught:
        experiment(tmp_path, plugins, model=model)
    assert caught.value.path == "model.inputs"
    assert str(caught.value).startswith(f"{tmp_path / 'exp.yaml'}: field model.inputs: the graph takes 2 inputs "
                                        "(x, x2), but a dataset gives one array x per example")


@pytest.mark.parametrize("model, error, words", [
    ({"nodes": [{"name": "h", "type": "add", "inputs": ["x"]}], "output": "h"}, GraphError,
     ["field model.nodes[0]: node 'h' (add) takes 2 inputs, found 1"]),
    ({"nodes": [{"name": "h", "type": "affine", "out": 4, "inputs": ["x"]},
                {"name": "y", "type": "add", "inputs": ["h", "x"]}], "output": "y"}, ConfigError,
     ["model.nodes[1]", "node 'y' (add) does not accept inputs of shape (2, 4), (2, 2)"]),
    ([{"type": "affine", "out": 3}, {"type": "softmax", "axis": 4}], ConfigError,
     ["field model[1]: node 'softmax1' (softmax): axis 4 is out of range"]),
    ([{"type": "bogus"}], PluginError,
     ["field model[0]: node type 'bogus' (plugin 'bogus-plugin'", "not an nnframe Node"]),
])
def test_node_build_errors_name_the_file_field_and_node(tmp_path: Path, plugins: Any, model: Any, error: type,
                                                        words: list[str]) -> None:
    with pytest.raises(error) as caught:
        experiment(tmp_path, plugins, model=model)
    message = str(caught.value)
    assert str(tmp_path / "exp.yaml") in message
    for word in words:
        assert word in message
    assert isinstance(caught.value, UserError)


def test_labels_beyond_the_output_width_are_a_data_error_naming_the_file(tmp_path: Path, plugins: Any) -> None:
    model = [{"type": "affine", "out": 10}, {"type": "sigmoid"}, {"type": "affine", "out": 2}]
    with pytest.raises(DataError) as caught:
        experiment(tmp_path, plugins, model=model)
    # spiral with 10 points per class: the first label 2 is example 20
    assert str(caught.value).startswith(f"{tmp_path / 'exp.yaml'}: data: dataset spiral: y[20] is class 2, "
                                        "but the model outputs 2 values")


@pytest.mark.parametrize("out, note", [
    (3, None),
    (4, "the model gives 4 scores per example, but dataset spiral has 3 classes: the last one never meets a target "
        "(out: 3 in the last layer fits them)"),
    (6, "the model gives 6 scores per example, but dataset spiral has 3 classes: the last 3 never meet a target "
        "(out: 3 in the last layer fits them)"),
])
def test_an_output_wider_than_the_classes_trains_with_a_note(tmp_path: Path, plugins: Any, out: int,
                                                              note: str | None) -> None:
    built = experiment(tmp_path, plugins, model=[{"type": "affine", "out": 10}, {"type": "sigmoid"},
                                                 {"type": "affine", "out": out}])
    assert built.notes == ([note] if note else [])


class Misbroadcast(Node):
    """A node of a plugin defined in the process whose forward has a bug numpy reports as shapes."""

    def forward(self, x):
        return x * np.ones(3)

    def backward(self, dout):
        return dout


class MisbroadcastPlugin:
    @hookimpl
    def nnframe_register_nodes(self) -> list:
        return [node("misbroadcast", Params, lambda params, ctx: Misbroadcast())]


def test_a_shape_error_in_the_forward_of_a_plugin_of_the_process_names_its_line(tmp_path: Path) -> None:
    plugins = get_plugin_manager(autoload=False, plugins=[*BUILTINS, ("local", MisbroadcastPlugin())])
    with pytest.raises(ConfigError) as caught:
        experiment(tmp_path, plugins, model=[{"type": "misbroadcast"}, {"type": "affine", "out": 3}])
    line = Misbroadcast.forward.__code__.co_firstlineno + 1
    assert str(caught.value).endswith(f"(2,2) (3,) (raised in {__name__}, line {line}); either the config gives it "
                                      "shapes it does not take, or its forward has a bug there")
    assert "node 'misbroadcast1' (misbroadcast) failed on inputs of shape (2, 2)" in str(caught.value)


class DeclaredClasses:
    """Labels 0..2 of a dataset that declares a fourth class, and one whose labels hold one class of two."""

    @hookimpl
    def nnframe_register_datasets(self) -> list:
        x = np.random.default_rng(0).standard_normal((60, 2))
        return [dataset("four", Params, lambda params, ctx: Dataset(x, np.repeat(np.arange(3), 20), num_classes=4)),
                dataset("zeros", Params, lambda params, ctx: Dataset(x, np.zeros(60, np.int64), num_classes=2))]


@pytest.mark.parametrize("data, out", [("four", 4), ("zeros", 2)])
def test_an_output_as_wide_as_the_declared_classes_has_no_note(tmp_path: Path, data: str, out: int) -> None:
    plugins = get_plugin_manager(autoload=False, plugins=[*BUILTINS, ("declared", DeclaredClasses())])
    built = experiment(tmp_path, plugins, data={"type": data}, model=[{"type": "affine", "out": out}])
    assert not [note for note in built.notes if "scores per example" in note]


def test_a_dataset_smaller_than_one_batch_is_refused_before_training(tmp_path: Path, plugins: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        experiment(tmp_path, plugins, train={"epochs": 1, "batch_size": 31})
    assert caught.value.path == "train.batch_size"
    assert "31 is more than the 30 training examples" in str(caught.value)


def test_component_params_keep_only_the_components_own_fields(plugins: Any) -> None:
    from nnframe.config import ConfigModels

    entry = ConfigModels(plugins).experiment.model_validate(
        {**SPIRAL, "model": [{"type": "affine", "out": 5, "name": "first", "inputs": ["x"]}]}).model[0]
    params = component_params(plugins.nodes.get("affine"), entry)
    assert type(params) is nodes.AffineParams
    assert params.model_dump() == {"out": 5, "init": "normal", "scale": 0.01, "bias": True}


@pytest.mark.parametrize("train, n_train, steps", [
    ({"epochs": 3, "batch_size": 10}, 30, 9),  # 30 / 10 = 3 batches per epoch, 3 epochs
    ({"epochs": 3, "batch_size": 8}, 30, 12),  # ceil(30 / 8) = 4 batches, the last one partial
    ({"epochs": 3, "batch_size": 8, "drop_last": True}, 30, 9),  # floor(30 / 8) = 3 batches
    ({"epochs": 3, "max_steps": 5, "batch_size": 10}, 30, 5),  # whichever comes first
    ({"max_steps": 7, "batch_size": 10}, 30, 7),
])
def test_planned_steps(train: dict[str, Any], n_train: int, steps: int) -> None:
    settings = TrainConfig(**train)
    assert planned_steps(settings, batches_per_epoch(n_train, settings.batch_size, settings.drop_last)) == steps


def test_a_schedule_that_cannot_fit_the_run_is_refused_before_training(tmp_path: Path, plugins: Any) -> None:
    optimizer = {"type": "sgd", "lr": 0.1, "schedule": {"type": "cosine", "warmup_steps": 3}}
    with pytest.raises(ConfigError) as caught:
        experiment(tmp_path, plugins, optimizer=optimizer)  # 30 examples, batch 10, 1 epoch: 3 steps
    assert caught.value.path == "optimizer.schedule"
    assert "warmup_steps (3) must be less than total_steps (3)" in str(caught.value)


@pytest.mark.parametrize(("loss", "out", "classes", "message"), [
    # two classes through one output: check_labels lets 0/1 pass (a binary classifier), softmax does not
    ("softmax_cross_entropy", 1, 2, r"class indices must be in \[0, 0\]"),
    # binary cross-entropy and mse want one score per target, not 3
    ("sigmoid_cross_entropy", 3, 3, r"targets must have the scores' shape \(30, 3\), found shape \(30,\)"),
    ("mse", 3, 3, r"targets must have the scores' shape \(30, 3\), found shape \(30,\)"),
])
def test_a_loss_that_cannot_use_the_targets_is_refused_at_the_loss_field(tmp_path: Path, plugins: Any, loss: str,
                                                                         out: int, classes: int,
                                                                         message: str) -> None:
    model = [{"type": "affine", "out": 10}, {"type": "sigmoid"}, {"type": "affine", "out": out}]
    data = {"type": "spiral", "points_per_class": 10, "classes": classes}
    with pytest.raises(ConfigError, match=message) as info:
        experiment(tmp_path, plugins, model=model, loss={"type": loss}, data=data)
    assert str(info.value).startswith(f"{tmp_path / 'exp.yaml'}: field loss: loss '{loss}' cannot use the targets y")
    assert f"with a model output of shape ({10 * classes}, {out}):" in str(info.value)  # the targets' rows


def test_targets_that_overflow_the_losss_square_raise_no_numpy_warning_before_training(tmp_path: Path,
                                                                                       plugins: Any) -> None:
    rng = np.random.default_rng(0)
    y = rng.standard_normal((20, 1))
    y[3] = 1e200  # squared in the check of the loss against the targets
    np.savez(tmp_path / "data.npz", x=rng.standard_normal((20, 2)), y=y)
    model = [{"type": "affine", "out": 1}]
    data = {"type": "npz", "path": "data.npz", "task": "regression"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        experiment(tmp_path, plugins, model=model, loss={"type": "mse"}, data=data,
                   train={**SPIRAL["train"], "dtype": "float64"})


def test_a_model_that_fails_on_a_batch_is_a_config_error_naming_the_node(tmp_path: Path, plugins: Any) -> None:
    model = [{"type": "affine", "out": 2}, {"type": "row_sum"}, {"type": "affine", "out": 3}]
    with pytest.raises(ConfigError, match=r"field model: the model fails on a batch of shape \(3, 2\) in node "
                                          r"'affine2' \(Affine\): Affine: x has 3 features"):
        experiment(tmp_path, plugins, model=model)


@pytest.mark.parametrize("changing", [{"type": "sum"}, {"type": "repeat", "n": 2, "axis": 0}])
def test_a_model_that_changes_the_batch_axis_is_refused_at_the_model_field(tmp_path: Path, plugins: Any,
                                                                           changing: dict) -> None:
    model = [{"type": "affine", "out": 3}, changing, {"type": "sigmoid"}]
    with pytest.raises(ConfigError) as info:
        experiment(tmp_path, plugins, model=model)
    name = changing["type"] + "1"
    assert str(info.value).startswith(f"{tmp_path / 'exp.yaml'}: field model: the model's output has shape ")
    assert f"for a batch of 3 examples, but the loss needs one row per example; node {name!r}" in str(info.value)


BLOBS_PLUGIN = '''
import numpy as np

from nnframe import Params, hookimpl
from nnframe.components import dataset
from nnframe.data import Dataset


class BlobsParams(Params):
    """Params of its own, not nnframe.data.DatasetParams."""

    n: int = 40


def build(params, ctx):
    x = ctx.rng.normal(size=(params.n, 2))
    return Dataset(x, (x[:, 0] > 0).astype(np.int64))


@hookimpl
def nnframe_register_datasets():
    return [dataset("blobs", BlobsParams, build)]
'''


@pytest.mark.parametrize("val_fraction,n_val", [(None, 0), (0.25, 10)])
def test_a_plugin_dataset_without_datasetparams_takes_val_fraction(site, tmp_path: Path, val_fraction, n_val):
    """DESIGN: every dataset takes ``val_fraction``; a plugin's params need not subclass DatasetParams."""
    site.add("nnframe-blobs", {"nnframe_blobs": BLOBS_PLUGIN})
    data = {"type": "blobs", **({"val_fraction": val_fraction} if val_fraction is not None else {})}
    path = tmp_path / "blobs.yaml"
    path.write_text(yaml.safe_dump({"name": "blobs", "data": data, "model": [{"type": "affine", "out": 2}],
                                    "loss": {"type": "softmax_cross_entropy"},
                                    "optimizer": {"type": "sgd", "lr": 0.1}, "train": {"max_steps": 1, "batch_size": 8}}),
                    encoding="utf-8")
    experiment = prepare(path, [], get_plugin_manager())
    assert experiment.dataset.n_val == n_val
    assert experiment.dataset.n_train == 40 - n_val
    assert experiment.config.resolved["data"]["val_fraction"] == (val_fraction or 0.0)
    assert experiment.config.resolved["data"]["standardize"] is False
    standardized = prepare(path, ["data.standardize=true"], get_plugin_manager()).dataset
    np.testing.assert_allclose(standardized.x.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(standardized.x.std(axis=0), 1.0, atol=1e-5)


LABELS_AGAINST_WIDTH = "data: dataset spiral: y["
BATCH_AGAINST_DATA = "field train.batch_size: 10 is more than the 6 "


@pytest.mark.parametrize("overrides, error, expected", [
    (["model.2.out=2", "optimizer.lr=0.5"], DataError,
     f"{{path}} (with override 'model.2.out=2'): {LABELS_AGAINST_WIDTH}"),
    (["data.classes=5"], DataError, f"{{path}} (with override 'data.classes=5'): {LABELS_AGAINST_WIDTH}"),
    (["model.2.out=2", "data.noise=0.1"], DataError,
     f"{{path}} (with overrides 'model.2.out=2', 'data.noise=0.1'): {LABELS_AGAINST_WIDTH}"),
    (["data.points_per_class=2", "optimizer.lr=0.5"], ConfigError,
     f"{{path}} (with override 'data.points_per_class=2'): {BATCH_AGAINST_DATA}"),
    (["data.points_per_class=2", "train.batch_size=10"], ConfigError,
     f"override 'train.batch_size=10': {BATCH_AGAINST_DATA}"),
])
def test_an_error_over_values_of_two_sections_names_the_overrides_of_either(tmp_path: Path, plugins: Any,
                                                                            overrides: list[str], error: type,
                                                                            expected: str) -> None:
    """Labels against the model's width, the batch against the data's size: either section may be at fault."""
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(SPIRAL, sort_keys=False), encoding="utf-8")
    with pytest.raises(error) as caught:
        build_experiment(load_experiment(path, overrides, plugins), plugins)
    assert str(caught.value).startswith(expected.format(path=path))


def test_a_node_refusing_its_inputs_names_the_model_overrides_that_shaped_them(tmp_path: Path, plugins: Any) -> None:
    nodes = [{"name": "h", "type": "affine", "out": 10, "inputs": ["x"]},
             {"name": "h2", "type": "affine", "out": 10, "inputs": ["x"]},
             {"name": "m", "type": "mul", "inputs": ["h", "h2"]},
             {"name": "y", "type": "affine", "out": 3, "inputs": ["m"]}]
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({**SPIRAL, "model": {"inputs": ["x"], "nodes": nodes, "output": "y"}},
                                   sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        build_experiment(load_experiment(path, ["model.nodes.1.out=7"], plugins), plugins)
    assert str(caught.value).startswith(f"{path} (with override 'model.nodes.1.out=7'): field model.nodes[2]: node "
                                        "'m' (mul) does not accept inputs of shape (2, 10), (2, 7)")


def test_a_check_of_a_whole_section_names_the_overrides_within_it(tmp_path: Path, plugins: Any) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(SPIRAL, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        build_experiment(load_experiment(path, ["loss.type=mse", "optimizer.lr=0.5"], plugins), plugins)
    assert str(caught.value).startswith(f"{path} (with override 'loss.type=mse'): field loss: loss 'mse' cannot")


class FlattenWithoutInit(Node):
    def __init__(self) -> None:  # forgets super().__init__()
        pass

    def forward(self, x):
        return x

    def backward(self, dout):
        return dout


def test_a_plugin_node_that_skips_the_base_init_is_named_with_the_fix(tmp_path: Path) -> None:
    class Plugin:
        @hookimpl
        def nnframe_register_nodes(self) -> list:
            return [node("no_init", Params, lambda params, ctx: FlattenWithoutInit())]

    plugins = get_plugin_manager(autoload=False, plugins=[*BUILTINS, ("no-init-plugin", Plugin())])
    with pytest.raises(NodeProtocolError, match=r"node 'no_init1' \(test_build.FlattenWithoutInit\) has no params "
                                                r"and grads lists; does its __init__ call super\(\).__init__\(\)\?"):
        experiment(tmp_path, plugins, model=[{"type": "no_init"}, {"type": "affine", "out": 3}])


class ShardParams(DatasetParams):
    relative_paths = ("shards",)

    shards: list[str]


class MisspeltPathParams(DatasetParams):
    relative_paths = ("pth",)

    path: str


def build_shards(params: ShardParams, ctx: Any) -> Dataset:
    arrays = [np.load(ctx.path(shard)) for shard in params.shards]
    return Dataset(np.concatenate([a["x"] for a in arrays]), np.concatenate([a["y"] for a in arrays]))


class ShardsPlugin:
    @hookimpl
    def nnframe_register_datasets(self) -> list:
        return [dataset("shards", ShardParams, build_shards)]


class MisspeltPlugin:
    @hookimpl
    def nnframe_register_datasets(self) -> list:
        return [dataset("shards", ShardParams, build_shards),
                dataset("misspelt", MisspeltPathParams, lambda params, ctx: None)]


def test_a_list_of_paths_is_made_absolute_in_the_resolved_config(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("a.npz", "b.npz"):
        np.savez(tmp_path / name, x=rng.standard_normal((20, 2)), y=rng.integers(0, 3, 20))
    plugins = get_plugin_manager(autoload=False, plugins=[*BUILTINS, ("shards-plugin", ShardsPlugin())])
    built = experiment(tmp_path, plugins, data={"type": "shards", "shards": ["a.npz", "b.npz"]})
    assert built.dataset.n_train == 40
    assert built.config.resolved["data"]["shards"] == [str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]


def test_relative_paths_naming_no_field_is_a_broken_plugin_with_the_likely_name() -> None:
    with pytest.raises(PluginError) as caught:  # given in the process: an error, not a component left out
        get_plugin_manager(autoload=False, plugins=[*BUILTINS, ("shards-plugin", MisspeltPlugin())])
    assert str(caught.value) == ("plugin 'shards-plugin' from (local): dataset 'misspelt': relative_paths names "
                                 "'pth', which is not one of its parameters (val_fraction, standardize, path) (did "
                                 "you mean 'path'?)")


def test_one_weight_held_by_two_nodes_is_refused_naming_both() -> None:
    """The book's tied weights (two MatMul nodes given one W_in): each node's gradient is that of its own use, so
    a model from a config, whose optimizer updates each parameter it holds, cannot train them."""
    from nnframe.nodes import MatMul

    shared = np.full((2, 2), 0.1)

    class Tied:
        @hookimpl
        def nnframe_register_nodes(self) -> list:
            return [node("tied", Params, lambda params, ctx: MatMul(shared))]

    plugins = get_plugin_manager(plugins=[("tied", Tied())])
    config = {"name": "tied", "data": {"type": "spiral", "points_per_class": 10, "classes": 3},
              "model": [{"type": "tied"}, {"type": "sigmoid"}, {"type": "tied"}, {"type": "affine", "out": 3}],
              "loss": {"type": "softmax_cross_entropy"}, "optimizer": {"type": "sgd", "lr": 0.1},
              "train": {"max_steps": 2, "batch_size": 10, "dtype": "float64"}}
    with pytest.raises(ConfigError, match=r"tied1/W and tied2/W are one array: a model built from a config cannot "
                                          r"share a weight"):
        prepare(config, [], plugins)


class Halves(Node):
    """One node whose two parameters are the column halves of one array, which is no sharing."""

    param_names = ("A", "B")

    def __init__(self, W: np.ndarray) -> None:
        super().__init__()
        half = W.shape[1] // 2
        self.params = [W[:, :half], W[:, half:]]
        self.grads = [np.zeros_like(p) for p in self.params]

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return x @ self.params[0] + x @ self.params[1]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.grads[0][...] = self.x.T @ dout
        self.grads[1][...] = self.x.T @ dout
        return dout @ (self.params[0] + self.params[1]).T


def test_a_nodes_own_parameters_may_be_parts_of_one_array() -> None:
    class Split:
        @hookimpl
        def nnframe_register_nodes(self) -> list:
            return [node("halves", Params, lambda params, ctx: Halves(np.full((ctx.in_features, 6), 0.1)))]

    plugins = get_plugin_manager(plugins=[("halves", Split())])
    config = {"name": "halves", "data": {"type": "spiral", "points_per_class": 10, "classes": 3},
              "model": [{"type": "halves"}, {"type": "sigmoid"}, {"type": "affine", "out": 3}],
              "loss": {"type": "softmax_cross_entropy"}, "optimizer": {"type": "sgd", "lr": 0.1},
              "train": {"max_steps": 2, "batch_size": 10, "dtype": "float64"}}
    assert prepare(config, [], plugins).model.param_names[:2] == ["halves1/A", "halves1/B"]


def test_sigmoid_cross_entropy_trains_on_multi_label_targets_of_a_regression_dataset(tmp_path: Path) -> None:
    """Multi-hot rows are no class labels (a classification dataset wants one-hot rows), and a regression
    dataset's targets were refused by every classification loss: a multi-label problem had no way in."""
    import nnframe

    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 4))
    np.savez(tmp_path / "labels.npz", x=x, y=(x[:, :3] > 0).astype(np.float64))
    config = {"name": "multi", "data": {"type": "npz", "path": str(tmp_path / "labels.npz"), "task": "regression",
                                        "val_fraction": 0.25},
              "model": [{"type": "affine", "out": 8}, {"type": "relu"}, {"type": "affine", "out": 3}],
              "loss": {"type": "sigmoid_cross_entropy"}, "optimizer": {"type": "adam", "lr": 0.05},
              "train": {"epochs": 20, "batch_size": 10}}
    experiment = nnframe.prepare_experiment(config)
    assert experiment.classification is False and experiment.config.resolved["checkpoint"]["best_metric"] == "val/loss"
    result = nnframe.run_experiment(config, runs_dir=tmp_path / "runs", quiet=True)
    metrics = result.summary["metrics"]
    assert "train/accuracy" not in metrics and metrics["val/loss"] < 0.3  # from log 2 = 0.69 at the start
    soft = {**config, "loss": {"type": "softmax_cross_entropy"}}
    with pytest.raises(ConfigError, match="needs class labels, but dataset .* holds regression targets"):
        nnframe.prepare_experiment(soft)


def test_a_plugin_regression_dataset_under_sigmoid_cross_entropy_keeps_its_best_by_val_loss() -> None:
    """Its params have no task field, so only the built data tells that no accuracy is measured."""
    rng = np.random.default_rng(1)

    class Values:
        @hookimpl
        def nnframe_register_datasets(self) -> list:
            x = rng.standard_normal((60, 3))
            return [dataset("soft", DatasetParams, lambda params, ctx: Dataset(
                x, (x[:, :2] > 0).astype(float), classification=False))]

    plugins = get_plugin_manager(plugins=[("values", Values())])
    config = {"name": "soft", "data": {"type": "soft", "val_fraction": 0.2},
              "model": [{"type": "affine", "out": 2}], "loss": {"type": "sigmoid_cross_entropy"},
              "optimizer": {"type": "sgd", "lr": 0.1}, "train": {"max_steps": 2, "batch_size": 8}}
    experiment = prepare(config, [], plugins)
    assert experiment.classification is False
    assert experiment.config.resolved["checkpoint"]["best_metric"] == "val/loss"
    chosen = prepare({**config, "checkpoint": {"best_metric": "val/accuracy"}}, [], plugins)
    assert chosen.config.resolved["checkpoint"]["best_metric"] == "val/accuracy"  # chosen: a note says so


class SloppyLoss(SoftmaxWithLoss):
    """A softmax cross-entropy with one of a plugin author's slips."""

    def __init__(self, slip: str) -> None:
        super().__init__()
        self.slip = slip

    def forward(self, x: np.ndarray, t: np.ndarray) -> Any:
        value = super().forward(x, t)
        return np.full(len(x), value) if self.slip == "per_example" else value

    def backward(self, dout: float = 1.0) -> Any:
        dx = super().backward(dout)
        return {"one_column": dx[:, :1], "none": None}.get(self.slip, dx)


class SlipParams(Params):
    slip: str = "none_at_all"


class SloppyLossPlugin:
    @hookimpl
    def nnframe_register_losses(self) -> list:
        return [loss("sloppy", SlipParams, lambda params: SloppyLoss(params.slip))]


@pytest.mark.parametrize(("slip", "message"), [
    ("per_example", r"forward returned ndarray of shape \(3,\); it must return the batch's mean loss as one float"),
    ("one_column", r"backward\(1\.0\) returned ndarray of shape \(3, 1\) for scores of shape \(3, 3\)"),
    ("none", r"backward\(1\.0\) returned None for scores of shape \(3, 3\)"),
])
def test_a_loss_plugin_returning_the_wrong_kind_of_value_is_refused_at_build_naming_it(slip: str,
                                                                                       message: str) -> None:
    plugins = get_plugin_manager(plugins=[("sloppy-plugin", SloppyLossPlugin())])
    with pytest.raises(PluginError, match=message) as info:
        prepare({**SPIRAL, "loss": {"type": "sloppy", "slip": slip}}, [], plugins)
    assert "field loss.type: type 'sloppy' from plugin 'sloppy-plugin' (local): " in str(info.value)
    prepare({**SPIRAL, "loss": {"type": "sloppy"}}, [], plugins)


class UnreadableData:
    @hookimpl
    def nnframe_register_datasets(self) -> list:
        def missing_file(params: Params, ctx: Any) -> Dataset:
            return Dataset(*np.load(ctx.path("absent.npy")))

        def bad_value(params: Params, ctx: Any) -> Dataset:
            raise ValueError("line 3 has 2 columns, expected 3")

        def plugin_bug(params: Params, ctx: Any) -> Dataset:
            return Dataset(None + 1, None)  # type: ignore[operator]

        return [dataset("missing_file", Params, missing_file), dataset("bad_value", Params, bad_value),
                dataset("plugin_bug", Params, plugin_bug)]


@pytest.mark.parametrize(("kind", "reason"), [
    ("missing_file", "No such file or directory ({dir}/absent.npy)"),
    ("bad_value", "line 3 has 2 columns, expected 3"),
])
def test_a_dataset_build_that_cannot_read_its_data_is_a_data_error_naming_the_plugin(tmp_path: Path, kind: str,
                                                                                     reason: str) -> None:
    plugins = get_plugin_manager(plugins=[("unreadable", UnreadableData())])
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({**SPIRAL, "data": {"type": kind}}))
    with pytest.raises(DataError) as info:
        prepare(path, [], plugins)
    assert str(info.value) == (f"{path}: data: dataset type {kind!r} from plugin 'unreadable' (local) cannot be "
                               f"built: {reason.format(dir=tmp_path)}")


def test_a_bug_in_a_dataset_build_stays_a_traceback_naming_the_plugin(tmp_path: Path) -> None:
    plugins = get_plugin_manager(plugins=[("unreadable", UnreadableData())])
    with pytest.raises(TypeError) as info:
        prepare({**SPIRAL, "data": {"type": "plugin_bug"}}, [], plugins)
    assert info.value.__notes__ == ["(raised by the build of dataset type 'plugin_bug' from plugin 'unreadable' "
                                    "(local))"]


def test_images_need_flatten_before_affine_and_the_error_says_so(tmp_path: Path, plugins: Any) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "img.npz", x=rng.standard_normal((20, 1, 4, 4)), y=rng.integers(0, 3, 20))
    data = {"type": "npz", "path": "img.npz"}
    with pytest.raises(ConfigError, match=r"output of shape \(20, 1, 4, 3\).*the examples have shape \(1, 4, 4\), "
                                          r"and affine acts on their last axis: if each is one vector of features, "
                                          r"put \{type: flatten\} first"):
        experiment(tmp_path, plugins, data=data)
    built = experiment(tmp_path, plugins, data=data, model=[{"type": "flatten"}, *SPIRAL["model"]])
    assert [p.shape for p in built.model.params][0] == (16, 10)
    assert built.model.forward(built.dataset.x[:5]).shape == (5, 3)


def test_regression_targets_of_two_values_name_the_out_the_last_node_needs(tmp_path: Path, plugins: Any) -> None:
    x = np.random.default_rng(0).standard_normal((20, 3))
    np.savez(tmp_path / "two.npz", x=x, y=x[:, :2])
    data = {"type": "npz", "path": "two.npz", "task": "regression"}
    regression = {"data": data, "loss": {"type": "mse"}, "model": [{"type": "affine", "out": 1}]}
    with pytest.raises(ConfigError, match=r"the targets hold 2 values per example and the model gives 1: set the "
                                          r"last node's out to 2"):
        experiment(tmp_path, plugins, **regression)
    assert experiment(tmp_path, plugins, **{**regression, "model": [{"type": "affine", "out": 2}]}).model


class _UnsetParams(Params):
    """A plugin author's "unset": a ``None`` default under a type that refuses ``None``."""

    factor: float = None


class _UnsetDataParams(DatasetParams):
    factor: float = None


class _UnsetSGDParams(SGDParams):
    factor: float = None


class _UnsetSGD(SGD):
    params_model = _UnsetSGDParams


class _Watcher:
    @hookimpl
    def nnframe_run_start(self, run: Any) -> None:
        """Present so that the callback has a hook."""


def test_components_with_a_none_default_their_type_refuses_build_with_it_unset() -> None:
    """Each kind is built from its section, the field left out of it: the build gets the default, not an error
    blaming the config."""
    seen: dict[str, Any] = {}

    def keep(kind: str, made: Any) -> Any:
        return lambda params, *ctx: seen.setdefault(kind, (params.factor, made(params)))[1]

    x = np.random.default_rng(0).standard_normal((30, 2))

    class Unset:
        @hookimpl
        def nnframe_register_nodes(self) -> list:
            return [node("unset_node", _UnsetParams, keep("node", lambda params: nodes.Sigmoid()))]

        @hookimpl
        def nnframe_register_losses(self) -> list:
            return [loss("unset_loss", _UnsetParams, keep("loss", lambda params: SoftmaxWithLoss()))]

        @hookimpl
        def nnframe_register_optimizers(self) -> list:
            return [optimizer("unset_sgd", _UnsetSGDParams, keep("optimizer", _UnsetSGD.from_params))]

        @hookimpl
        def nnframe_register_datasets(self) -> list:
            return [dataset("unset_data", _UnsetDataParams,
                            keep("dataset", lambda params: Dataset(x, (x[:, 0] > 0).astype(np.int64))))]

        @hookimpl
        def nnframe_register_callbacks(self) -> list:
            return [callback("unset_callback", _UnsetParams, keep("callback", lambda params: _Watcher()))]

    plugins = get_plugin_manager(plugins=[("unset", Unset())])
    config = {"name": "unset", "data": {"type": "unset_data"},
              "model": [{"type": "affine", "out": 4}, {"type": "unset_node"}, {"type": "affine", "out": 2}],
              "loss": {"type": "unset_loss"}, "optimizer": {"type": "unset_sgd", "lr": 0.1},
              "train": {"max_steps": 2, "batch_size": 10}, "callbacks": [{"type": "unset_callback"}]}
    experiment = prepare(config, [], plugins)
    assert {kind: factor for kind, (factor, _) in seen.items()} == dict.fromkeys(
        ["dataset", "node", "loss", "optimizer", "callback"], None)
    assert type(experiment.optimizer) is _UnsetSGD and experiment.optimizer.factor is None
    assert "factor" not in experiment.config.resolved["optimizer"]


def test_an_optimizer_made_from_params_left_at_an_unset_none_takes_them() -> None:
    made = _UnsetSGD.from_params(_UnsetSGDParams(lr=0.5))
    assert (made.lr, made.factor) == (0.5, None)
    made.weight_decay = 0.0  # each setting is validated again with the others
    made.factor = 3.0
    assert (made.weight_decay, made.factor) == (0.0, 3.0)
    assert _UnsetSGD.from_params(_UnsetSGDParams(lr=0.5, factor=2.0)).factor == 2.0

"""``nnframe gradcheck``: the configured model and loss, checked numerically in float64."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from fixtures.console import NNFRAME
from fixtures.distributions import Site
from fixtures.nodes import ForgetsItsScale
from nnframe import Node, Params, hookimpl
from nnframe.builtin import datasets, losses, nodes, optimizers, schedules
from nnframe.cli import app
from nnframe.components import node
from nnframe.config_loader import load_experiment
from nnframe.errors import ConfigError
from nnframe.gradcheck import _node_input_gradients, check_experiment, in_float64
from nnframe.graph import Graph, GraphNode
from nnframe.nodes import Affine, Mul
from nnframe.plugins import get_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
SPIRAL = ROOT / "experiments" / "spiral.yaml"
BUILTINS = [("nodes", nodes), ("losses", losses), ("optimizers", optimizers), ("schedules", schedules),
            ("datasets", datasets)]
BROKEN_PLUGIN = '''
import numpy as np
from pydantic import Field

from nnframe import Node, Params, hookimpl
from nnframe.components import node


class BrokenParams(Params):
    """Output width."""

    out: int = Field(gt=0)


class BrokenMatMul(Node):
    """y = xW, x: (N, D) -> (N, H); its backward doubles dW by mistake."""

    param_names = ("W",)

    def __init__(self, W):
        super().__init__()
        self.params = [W]
        self.grads = [np.zeros_like(W)]

    def forward(self, x):
        self.x = x
        return x @ self.params[0]

    def backward(self, dout):
        self.grads[0][...] = 2 * self.x.T @ dout
        return dout @ self.params[0].T


class ForgetfulTriple(Node):
    """y = 3x; its backward forgets the factor 3."""

    def forward(self, x):
        return 3 * x

    def backward(self, dout):
        return dout


class NoParams(Params):
    """No parameters."""


def build(params, ctx):
    """A matmul with a wrong weight gradient."""
    W = ctx.rng.standard_normal((ctx.in_features, params.out)).astype(ctx.dtype)
    return BrokenMatMul(W)


@hookimpl
def nnframe_register_nodes():
    return [node("broken_matmul", BrokenParams, build),
            node("forgetful_triple", NoParams, lambda params, ctx: ForgetfulTriple())]
'''


def tiny_config(tmp_path: Path, model: Any) -> Path:
    config = yaml.safe_load(SPIRAL.read_text(encoding="utf-8"))
    config["data"]["points_per_class"] = 10
    config["model"] = model
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def builtins() -> Any:
    return get_plugin_manager(autoload=False, plugins=BUILTINS)


def test_the_spiral_experiment_passes(builtins: Any) -> None:
    report = check_experiment(SPIRAL, [], builtins)
    assert report.ok
    assert list(report.errors) == ["input/x", "affine1/W", "affine1/b", "affine2/W", "affine2/b", "loss/input"]
    # correct float64 backward passes agree with central differences to about 1e-8 or better
    assert report.worst_error < 1e-6


@pytest.mark.parametrize("model", [
    [{"type": "affine", "out": 6}, {"type": "dropout", "ratio": 0.5}, {"type": "tanh"}, {"type": "affine", "out": 3}],
    {"inputs": ["x"], "output": "y", "nodes": [
        {"name": "h", "type": "affine", "out": 4, "inputs": ["x"]},
        {"name": "a", "type": "sigmoid", "inputs": ["h"]},
        {"name": "b", "type": "relu", "inputs": ["h"]},
        {"name": "m", "type": "mul", "inputs": ["a", "b"]},
        {"name": "r", "type": "repeat", "n": 2, "axis": 1, "inputs": ["m"]},
        {"name": "s", "type": "sum", "axis": 1, "inputs": ["r"]},
        {"name": "y", "type": "affine", "out": 3, "inputs": ["s", ]},
    ]},
])
def test_dropout_branches_repeat_and_sum_pass(tmp_path: Path, builtins: Any, model: Any) -> None:
    report = check_experiment(tiny_config(tmp_path, model), [], builtins, batch=5)
    assert report.ok, report.describe()


def test_in_float64_changes_only_the_dtype(builtins: Any) -> None:
    loaded = load_experiment(SPIRAL, ["train.dtype=float32"], builtins)
    converted = in_float64(loaded)
    assert converted.experiment.train.dtype == "float64"
    assert loaded.experiment.train.dtype == "float32"
    before, after = loaded.resolved, converted.resolved
    before["train"].pop("dtype"), after["train"].pop("dtype")
    assert before == after


@pytest.mark.parametrize("batch, tolerance, words", [(0, 1e-5, "at least 1 example"), (4, 0.0, "above 0")])
def test_a_bad_batch_or_tolerance_is_a_user_error(builtins: Any, batch: int, tolerance: float, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        check_experiment(SPIRAL, [], builtins, batch=batch, tolerance=tolerance)


BROKEN_MODEL = [{"type": "affine", "out": 5}, {"type": "tanh"}, {"type": "broken_matmul", "out": 3}]


def test_a_broken_plugin_node_fails_by_name(site: Site, tmp_path: Path) -> None:
    site.add("nnframe-broken", {"nnframe_broken": BROKEN_PLUGIN})
    report = check_experiment(tiny_config(tmp_path, BROKEN_MODEL), [], get_plugin_manager())
    assert not report.ok
    assert report.worst_name == "broken_matmul1/W"
    # dW is doubled: |2n - n| / (|2n| + |n|) = 1/3
    assert report.worst_error == pytest.approx(1 / 3, rel=1e-4)
    assert report.errors["affine1/W"] < 1e-6
    assert report.notes == []  # wrong at every point: no kink is blamed


def test_a_wrong_input_gradient_is_blamed_on_its_node_not_on_the_parameters_before_it(site: Site,
                                                                                      tmp_path: Path) -> None:
    site.add("nnframe-broken", {"nnframe_broken": BROKEN_PLUGIN})
    model = [{"type": "affine", "out": 5}, {"type": "tanh"}, {"type": "forgetful_triple"}, {"type": "dropout"},
             {"type": "relu"}, {"type": "affine", "out": 3}]
    report = check_experiment(tiny_config(tmp_path, model), [], get_plugin_manager())
    assert report.errors["affine1/W"] > 1e-2 and report.errors["affine2/W"] < 1e-6
    assert report.errors["forgetful_triple1/dx[tanh1]"] > 1e-2
    # the dropout's exact zeros would put relu1 on its kink; the check moves its input off it
    assert report.errors["tanh1/dx[affine1]"] < 1e-6 and report.errors["relu1/dx[dropout1]"] < 1e-6
    assert report.problems == ["node 'forgetful_triple1' (nnframe_broken.ForgetfulTriple) returns a wrong gradient "
                               "for its input 'tanh1' (relative error 5.000e-01); the errors of the nodes before it "
                               "may follow from it"]
    assert report.notes == []
    result = subprocess.run([NNFRAME, "gradcheck", str(tiny_config(tmp_path, model))], capture_output=True,
                            text=True, timeout=120, env=site.env())
    assert result.returncode == 1
    assert "error: gradient check failed: node 'forgetful_triple1' (nnframe_broken.ForgetfulTriple)" in result.stderr


def test_cli_gradcheck_passes_on_spiral() -> None:
    result = CliRunner().invoke(app, ["gradcheck", str(SPIRAL), "--batch", "3"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("gradient                       relative error\n")
    assert "affine1/W" in result.output and "worst: " in result.output
    assert "FAIL" not in result.output and result.output.endswith("gradient check passed\n")


def test_cli_gradcheck_rejects_a_zero_batch() -> None:
    result = CliRunner().invoke(app, ["gradcheck", str(SPIRAL), "--batch", "0"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_console_script_gradcheck_fails_for_a_broken_plugin_node(site: Site, tmp_path: Path) -> None:
    site.add("nnframe-broken", {"nnframe_broken": BROKEN_PLUGIN})
    config = tiny_config(tmp_path, BROKEN_MODEL)
    done = subprocess.run([NNFRAME, "gradcheck", str(config)], capture_output=True,
                          text=True, env=site.env(), timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert lines["broken_matmul1/W"].endswith("FAIL")
    assert not lines["affine1/W"].endswith("FAIL")
    assert "error: gradient check failed: broken_matmul1/W has relative error 3.33" in done.stderr
    assert "Traceback" not in output
    assert np.isfinite(float(lines["loss/input"].split()[1]))


@pytest.mark.parametrize("model", [
    [{"type": "affine", "out": 6}, {"type": "dropout", "ratio": 0.5}, {"type": "relu"}, {"type": "affine", "out": 3}],
    [{"type": "affine", "out": 6}, {"type": "relu"}, {"type": "relu"}, {"type": "affine", "out": 3}],
    {"inputs": ["x"], "output": "y", "nodes": [
        {"name": "h", "type": "affine", "out": 4, "inputs": ["x"]},
        {"name": "sq", "type": "mul", "inputs": ["h", "h"]},
        {"name": "y", "type": "affine", "out": 3, "inputs": ["sq"]},
    ]},
])
def test_kinks_and_a_value_read_twice_pass(tmp_path: Path, builtins: Any, model: Any) -> None:
    report = check_experiment(tiny_config(tmp_path, model), [], builtins, batch=5)
    assert report.ok, report.describe()


def test_the_per_node_check_keeps_apart_two_arguments_of_one_value() -> None:
    rng = np.random.default_rng(0)
    model = Graph([GraphNode("h", Affine(rng.standard_normal((2, 4)), np.zeros(4)), ("x",)),
                   GraphNode("sq", Mul(), ("h", "h"))], output="sq")
    model.need_input_grad = True
    errors, problems = _node_input_gradients(model, rng.standard_normal((3, 2)), 1e-5)
    assert problems == []
    assert set(errors) == {"h/dx[x]", "sq/dx[h, argument 0]", "sq/dx[h, argument 1]"}
    assert max(errors.values()) < 1e-6


def test_a_deep_net_initialised_at_001_passes_whatever_the_seed(tmp_path) -> None:
    """Three sigmoid layers behind weights of 0.01: the first layer's gradient is lost in the rounding at 1e-6,
    and differences over 1e-4 and 2e-4, both a little noisy, agree within ten tolerances, not one."""
    from nnframe.plugins import get_plugin_manager

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "experiments" / "spiral.yaml").read_text())
    hidden = [{"type": "affine", "out": 10, "init": "normal", "scale": 0.01}, {"type": "sigmoid"}]
    config["model"] = [*hidden * 3, {"type": "affine", "out": 3, "init": "normal", "scale": 0.01}]
    path = tmp_path / "deep.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    plugins = get_plugin_manager()
    for seed in (11, 19, 40):
        assert check_experiment(path, [f"seed={seed}"], plugins).ok


class Embedding(Node):
    """Rows of W picked by the indices in x, flattened: (N, T) -> (N, T * D), as in the book's word2vec."""

    param_names = ("W",)
    differentiable_input = False

    def __init__(self, W: np.ndarray) -> None:
        super().__init__()
        self.params, self.grads = [W], [np.zeros_like(W)]

    def forward(self, x):
        self.index = x.astype(np.intp)  # the run's dtype carries the indices
        return self.params[0][self.index].reshape(len(x), -1)

    def backward(self, dout):
        self.grads[0][...] = 0
        np.add.at(self.grads[0], self.index, dout.reshape(*self.index.shape, -1))
        return None


class EmbeddingPlugin:
    @hookimpl
    def nnframe_register_nodes(self) -> list:
        def build(params, ctx):
            return Embedding(ctx.rng.standard_normal((params.vocabulary, 4)).astype(ctx.dtype))

        return [node("embedding", EmbeddingParams, build)]


class EmbeddingParams(Params):
    vocabulary: int = 10


def test_a_model_that_starts_with_an_index_input_is_checked_without_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tokens.npz", x=rng.integers(0, 10, (40, 3)), y=rng.integers(0, 2, 40))
    config = tmp_path / "words.yaml"
    config.write_text(yaml.safe_dump({
        "name": "words", "data": {"type": "npz", "path": "tokens.npz"},
        "model": [{"type": "embedding"}, {"type": "affine", "out": 5}, {"type": "tanh"}, {"type": "affine", "out": 2}],
        "loss": {"type": "softmax_cross_entropy"}, "optimizer": {"type": "sgd", "lr": 0.1},
        "train": {"epochs": 1, "batch_size": 10}}), encoding="utf-8")
    plugins = get_plugin_manager(autoload=False, plugins=[*BUILTINS, ("embedding-plugin", EmbeddingPlugin())])
    report = check_experiment(config, [], plugins)
    assert report.ok, report.problems
    assert "input/x" not in report.errors and "embedding1/W" in report.errors
    assert not any(name.startswith("embedding1/dx") for name in report.errors)


class StrictEmbedding(Embedding):
    """An embedding that refuses indices that are not whole, as ``nnframe.node.indices`` does."""

    def forward(self, x):
        from nnframe.node import indices

        self.index = indices(x, len(self.params[0]), self)
        return self.params[0][self.index].reshape(len(x), -1)


class Arcsin(Node):
    """arcsin, refusing |x| >= 1."""

    def forward(self, x):
        if np.any(np.abs(x) >= 1):
            raise ValueError("arcsin: |x| must be < 1")
        self.x = x
        return np.arcsin(x)

    def backward(self, dout):
        return dout / np.sqrt(1 - self.x**2)


class DropsItsFactor(Node):
    """y = 3x, whose backward forgets the 3."""

    def forward(self, x):
        return 3 * x

    def backward(self, dout):
        return dout


@pytest.mark.parametrize("first", ["strict_embedding", "arcsin"])
def test_a_correct_node_that_refuses_moved_inputs_leaves_the_wrong_node_named(tmp_path: Path, first: str) -> None:
    """When the model fails, each node is checked alone at its inputs moved by about 1e-3: an index moved so
    is no index, and a value at 0.9995 leaves arcsin's domain; the command ended on that node's refusal."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 10, (40, 3)).astype(float) if first == "strict_embedding" else np.full((40, 3), 0.9995)
    np.savez(tmp_path / "d.npz", x=x, y=rng.integers(0, 2, 40))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "name": "c", "data": {"type": "npz", "path": "d.npz"},
        "model": [{"type": first}, {"type": "forgetful"}, {"type": "affine", "out": 2}],
        "loss": {"type": "softmax_cross_entropy"}, "optimizer": {"type": "sgd", "lr": 0.1},
        "train": {"epochs": 1, "batch_size": 10}}), encoding="utf-8")

    class Plugin:
        @hookimpl
        def nnframe_register_nodes(self) -> list:
            table = lambda params, ctx: StrictEmbedding(ctx.rng.standard_normal((10, 4)))  # noqa: E731
            return [node("strict_embedding", Params, table), node("arcsin", Params, lambda params, ctx: Arcsin()),
                    node("forgetful", Params, lambda params, ctx: DropsItsFactor())]

    report = check_experiment(config, [], get_plugin_manager(autoload=False, plugins=[*BUILTINS, ("p", Plugin())]))
    assert not report.ok
    assert any("node 'forgetful1'" in problem and "returns a wrong gradient" in problem for problem in report.problems)


class Jitters(Node):
    """y = x * (1 + u), u drawn from numpy's global generator, which no check puts back."""

    def forward(self, x):
        self.scale = 1 + np.random.random(x.shape)
        return x * self.scale

    def backward(self, dout):
        return dout * self.scale


class PowerOneAndAHalf(Node):
    """x ** 1.5 on x >= 0, refusing negatives; its backward forgets the 1.5."""

    def forward(self, x):
        if np.any(x < 0):
            raise ValueError("x ** 1.5 needs x >= 0")
        self.x = x
        return x ** 1.5

    def backward(self, dout):
        return dout * self.x ** 0.5


@pytest.mark.parametrize(("middle", "named"), [
    ("jitters", "node 'jitters1' (test_gradcheck.Jitters): its forward gives another result for the same inputs"),
    ("power", "node 'power1' (test_gradcheck.PowerOneAndAHalf) could not be checked on its own, at the values that "
              "reach it or near them (ValueError: x ** 1.5 needs x >= 0); its gradients are unknown"),
])
def test_a_node_the_per_node_check_cannot_judge_is_named_with_why(tmp_path: Path, middle: str, named: str) -> None:
    """A random forward, or a node that refuses its inputs moved and as they are (ReLU's zeros, a step below 0):
    the model failed and no node was named."""
    model = [{"type": "affine", "out": 4}, {"type": "relu"}, {"type": middle}, {"type": "affine", "out": 3}]

    class Plugin:
        @hookimpl
        def nnframe_register_nodes(self) -> list:
            return [node("jitters", Params, lambda params, ctx: Jitters()),
                    node("power", Params, lambda params, ctx: PowerOneAndAHalf())]

    plugins = get_plugin_manager(autoload=False, plugins=[*BUILTINS, ("p", Plugin())])
    report = check_experiment(tiny_config(tmp_path, model), [], plugins)
    assert not report.ok
    assert any(problem.startswith(named) for problem in report.problems), report.problems


class ReadsACopy(Node):
    """Reads a copy of its weight taken when built, so the model's output does not depend on the parameter."""

    param_names = ("W",)

    def __init__(self, W: np.ndarray) -> None:
        super().__init__()
        self.params, self.grads = [W], [np.zeros_like(W)]
        self.copy = W.copy()

    def forward(self, x):
        return x @ self.copy

    def backward(self, dout):
        self.grads[0][...] = 0.0
        return dout @ self.copy.T


class OneNodePlugin:
    """A plugin of this process that registers one node type, without params, made by ``build(ctx)``."""

    def __init__(self, name: str, build: Any) -> None:
        self.name, self.build = name, build

    @hookimpl
    def nnframe_register_nodes(self) -> list:
        return [node(self.name, Params, lambda params, ctx: self.build(ctx))]


def with_node(name: str, build: Any) -> Any:
    """The built-in components and a plugin for the node ``name`` (see :class:`OneNodePlugin`)."""
    return get_plugin_manager(autoload=False, plugins=[*BUILTINS, (f"{name}-plugin", OneNodePlugin(name, build))])


def test_a_parameter_the_output_does_not_depend_on_is_noted_by_the_check_and_the_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = yaml.safe_load(SPIRAL.read_text(encoding="utf-8"))
    config["model"] = [{"type": "reads_a_copy"}, {"type": "tanh"}, {"type": "affine", "out": 3}]
    path = tmp_path / "copy.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    plugins = with_node("reads_a_copy",
                        lambda ctx: ReadsACopy(ctx.rng.standard_normal((ctx.in_features, 4)).astype(ctx.dtype)))
    report = check_experiment(path, [], plugins)
    assert report.ok and report.zero == ["reads_a_copy1/W"]

    import nnframe.gradcheck

    monkeypatch.setattr(nnframe.gradcheck, "check_experiment", lambda *args: report)
    printed = CliRunner().invoke(app, ["gradcheck", str(path)])
    assert printed.exit_code == 0
    assert "note: the model's output does not depend on reads_a_copy1/W on this batch" in printed.stdout


def test_a_gradient_right_only_at_the_initial_parameters_fails_with_them_moved(tmp_path: Path) -> None:
    plugins = with_node("forgetful_scale", lambda ctx: ForgetsItsScale(np.ones(ctx.in_features, ctx.dtype)))
    model = [{"type": "affine", "out": 4}, {"type": "forgetful_scale"}, {"type": "tanh"}, {"type": "affine", "out": 3}]
    report = check_experiment(tiny_config(tmp_path, model), [], plugins)
    assert not report.ok
    assert report.errors["forgetful_scale1/dx[affine1]"] > 1e-2 and report.errors["affine2/W"] < 1e-6
    blamed, moved = report.problems
    assert blamed.startswith("node 'forgetful_scale1' (fixtures.nodes.ForgetsItsScale) returns a wrong gradient for "
                             "its input 'affine1'")
    assert moved == ("the gradients agree at the parameters as given and not with the parameters moved off them: a "
                     "backward that leaves out a parameter at 1 or 0 (a scale, a bias) passes there")
    assert report.notes == []  # 0.1% off a scale of 1, the factor left out is still seen


class LockedTriple(Node):
    """y = 3x; its backward forgets the 3, and it holds a lock, which no copy can take."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def forward(self, x):
        return 3 * x

    def backward(self, dout):
        return dout


def test_a_failing_model_that_does_not_copy_is_checked_all_the_same(tmp_path: Path) -> None:
    """The checks around a failure run on a copy of the model; a node that holds a lock is checked in place."""
    plugins = with_node("locked_triple", lambda ctx: LockedTriple())
    model = [{"type": "affine", "out": 4}, {"type": "locked_triple"}, {"type": "tanh"}, {"type": "affine", "out": 3}]
    report = check_experiment(tiny_config(tmp_path, model), [], plugins)
    assert not report.ok and report.notes == []
    assert report.problems[0].startswith("node 'locked_triple1' (test_gradcheck.LockedTriple) returns a wrong gradient")


class LoggedTriple(LockedTriple):
    """y = 3x, writing each batch's length to a log file it drops when copied (files do not pickle); its backward
    forgets the 3."""

    def __init__(self, log: Path) -> None:
        Node.__init__(self)
        self.log = log.open("a", encoding="utf-8")

    def __getstate__(self) -> dict:
        return {**self.__dict__, "log": None}

    def forward(self, x):
        self.log.write(f"{len(x)}\n")
        return 3 * x


def test_a_failing_model_whose_copy_does_not_run_is_checked_all_the_same(tmp_path: Path) -> None:
    """Its copy raised in the trace that names the node with a wrong input gradient, which ended the check."""
    plugins = with_node("logged_triple", lambda ctx: LoggedTriple(tmp_path / "batches.log"))
    model = [{"type": "affine", "out": 4}, {"type": "logged_triple"}, {"type": "tanh"}, {"type": "affine", "out": 3}]
    report = check_experiment(tiny_config(tmp_path, model), [], plugins)
    assert not report.ok and report.notes == []
    assert report.problems[0].startswith("node 'logged_triple1' (test_gradcheck.LoggedTriple) returns a wrong gradient")


def test_every_node_with_a_wrong_input_gradient_is_named_the_nearest_the_output_first(site: Site,
                                                                                   tmp_path: Path) -> None:
    site.add("nnframe-broken", {"nnframe_broken": BROKEN_PLUGIN})
    model = [{"type": "affine", "out": 5}, {"type": "forgetful_triple"}, {"type": "tanh"},
             {"type": "forgetful_triple"}, {"type": "affine", "out": 3}]
    report = check_experiment(tiny_config(tmp_path, model), [], get_plugin_manager())
    assert [problem.split(" returns")[0] for problem in report.problems] == [
        "node 'forgetful_triple2' (nnframe_broken.ForgetfulTriple)", "node 'forgetful_triple1' "
                                                                    "(nnframe_broken.ForgetfulTriple)"]


def test_the_moved_check_puts_the_initial_parameters_back(builtins: Any) -> None:
    from nnframe.testing import moved_params

    model = Graph([GraphNode("a", Affine(np.full((3, 2), 0.5), np.zeros(2)), ["x"])], ["x"], "a")
    before = [p.copy() for p in model.params]
    with moved_params(model):
        assert all(np.abs(p - b).min() > 0 for p, b in zip(model.params, before))
    assert all(np.array_equal(p, b) for p, b in zip(model.params, before))


class BoundedScale(Node):
    """y = x * f(s) with a correct backward, for an ``f`` defined on part of the line only."""

    param_names = ("s",)
    FORMS = {"sqrt": (0.01, np.sqrt, lambda s: 0.5 / np.sqrt(s)),  # a variance: positive
             "log1m": (0.9, lambda s: np.log(1 - s), lambda s: -1 / (1 - s))}  # below 1: off it, NaN

    def __init__(self, form: str, width: int, dtype: Any) -> None:
        super().__init__()
        start, self.f, self.df = self.FORMS[form]
        self.params, self.grads = [np.full(width, start, dtype)], [np.zeros(width, dtype)]

    def forward(self, x):
        self.x = x
        return x * self.f(self.params[0])

    def backward(self, dout):
        self.grads[0][...] = (dout * self.x).sum(axis=0) * self.df(self.params[0])
        return dout * self.f(self.params[0])


class BoundedPlugin:
    @hookimpl
    def nnframe_register_nodes(self) -> list:
        return [node(f"{form}_scale", Params, lambda params, ctx, form=form: BoundedScale(form, ctx.in_features,
                                                                                         ctx.dtype))
                for form in BoundedScale.FORMS]


@pytest.mark.parametrize("form", BoundedScale.FORMS)
def test_a_right_gradient_of_a_parameter_with_a_domain_passes_off_its_initial_values(tmp_path: Path,
                                                                                    form: str) -> None:
    plugins = get_plugin_manager(autoload=False, plugins=[*BUILTINS, ("bounded-plugin", BoundedPlugin())])
    model = [{"type": "affine", "out": 8}, {"type": f"{form}_scale"}, {"type": "tanh"}, {"type": "affine", "out": 3}]
    with np.errstate(all="ignore"):  # log1m: 8 features, so some s is moved beyond 1
        report = check_experiment(tiny_config(tmp_path, model), [], plugins)
    assert report.ok, (report.problems, report.errors)

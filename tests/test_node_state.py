"""Node state (``state_names``): arrays a node updates itself, saved in checkpoints and written back in place."""

from __future__ import annotations

import collections
import types
from pathlib import Path

import numpy as np
import pytest

import nnframe
from nnframe.components import Params, node
from nnframe.errors import GraphError
from nnframe.graph import Graph
from nnframe.hookspecs import hookimpl
from nnframe.node import Node
from nnframe.plugins import get_plugin_manager

CONFIG = {
    "name": "centered",
    "seed": 3,
    "data": {"type": "spiral", "points_per_class": 30, "classes": 3, "val_fraction": 0.2},
    "model": [{"type": "running_center"}, {"type": "affine", "out": 8}, {"type": "tanh"}, {"type": "affine", "out": 3}],
    "loss": {"type": "softmax_cross_entropy"},
    "optimizer": {"type": "adam", "lr": 0.05},
    "train": {"max_steps": 40, "batch_size": 12},
    "log": {"tensorboard": False},
}


class RunningCenter(Node):
    """Subtracts a running mean of its inputs, updated while training and used as it is in evaluation, as a
    batch norm's statistics are."""

    state_names = ("mean",)

    def __init__(self, width: int, dtype: np.dtype) -> None:
        super().__init__()
        self.mean = np.full(width, 5.0, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = x - self.mean
        if self.training:
            self.mean *= 0.5
            self.mean += 0.5 * x.mean(axis=0)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout


class CenterBlock(Node):
    """A node made of others: a graph holding a RunningCenter, whose state the block does not name itself."""

    def __init__(self, width: int, dtype: np.dtype) -> None:
        super().__init__()
        self.inner = Graph.sequential([("center", RunningCenter(width, dtype))])

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.inner.training = self.training
        return self.inner.forward(x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout


class RenamedCenter(RunningCenter):
    """The same node, its state named otherwise, as a plugin's next version might."""

    state_names = ("average",)

    def __init__(self, width: int, dtype: np.dtype) -> None:
        super().__init__(width, dtype)
        self.average = self.mean


class RebindsToFloat64(RunningCenter):
    def forward(self, x: np.ndarray) -> np.ndarray:
        out = x - self.mean
        if self.training:
            self.mean = 0.5 * (self.mean + x.mean(axis=0, dtype=np.float64))
        return out


NODES = {"running_center": RunningCenter, "center_block": CenterBlock, "renamed": RenamedCenter,
         "rebinds": RebindsToFloat64}


class CenterPlugin:
    def __init__(self, **chosen: type) -> None:
        self.nodes = {**NODES, **chosen}

    @hookimpl
    def nnframe_register_nodes(self) -> list:
        return [node(name, Params, lambda params, ctx, cls=cls: cls(ctx.in_features, ctx.dtype))
                for name, cls in self.nodes.items()]


def plugins(**chosen: type) -> nnframe.plugins.Plugins:
    return get_plugin_manager(plugins=[("center", CenterPlugin(**chosen))])


def train(tmp_path: Path, overrides: list[str], resume: Path | None = None) -> nnframe.launch.RunResult:
    return nnframe.run_experiment(CONFIG, overrides, runs_dir=tmp_path / "runs", resume=resume, quiet=True,
                                  plugins=plugins())


def test_a_resumed_run_goes_on_with_the_state_its_checkpoint_saved(tmp_path: Path) -> None:
    """Before, the running mean started again from its initial value: the resumed run's evaluations differed."""
    whole = train(tmp_path, [])
    cut = train(tmp_path, ["train.max_steps=17"])
    resumed = train(tmp_path, ["train.max_steps=40"], resume=cut.run_dir)
    assert resumed.summary["metrics"] == whole.summary["metrics"]
    assert np.array_equal(resumed.model.nodes["running_center1"].mean, whole.model.nodes["running_center1"].mean)


def test_a_loaded_run_predicts_with_the_state_it_trained_to(tmp_path: Path) -> None:
    result = train(tmp_path, [])
    loaded = nnframe.load_run(result.run_dir, plugins=plugins())
    x = loaded.experiment.dataset.x
    assert not np.all(loaded.model.nodes["running_center1"].mean == 5.0)
    assert np.array_equal(loaded.model.forward(x), result.model.forward(x))


def test_fine_tuning_copies_the_state_with_the_parameters(tmp_path: Path) -> None:
    source = train(tmp_path, [])
    tuned = nnframe.prepare_experiment(CONFIG, [f"train.init_from.run={source.run_dir}"], plugins=plugins())
    assert np.array_equal(tuned.model.nodes["running_center1"].mean, source.model.nodes["running_center1"].mean)
    assert any("and 1 node state (running statistics)" in note for note in tuned.notes), tuned.notes


@pytest.mark.parametrize("model, overrides, note", [
    ([{"type": "running_center"}, *CONFIG["model"]], [],
     "train.init_from: the model's node state running_center2/mean is not in the checkpoint, and keeps its built "
     "values"),
    (CONFIG["model"][1:], [], "train.init_from: the checkpoint's node state running_center1/mean is not in the "
                              "model"),
    (CONFIG["model"], ["data={type: npz, path: five.npz, val_fraction: 0.2}", "train.init_from.strict=false"],
     "train.init_from: node state shapes differ, and the model's keeps its built values: running_center1/mean (2,) "
     "against the model's (5,)"),
])
def test_fine_tuning_names_the_state_it_does_not_copy(tmp_path: Path, model: list, overrides: list, note: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, state left as built and state left behind went without a word."""
    source = train(tmp_path, [])
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "five.npz", x=rng.standard_normal((40, 5)), y=rng.integers(0, 3, 40))
    tuned = nnframe.prepare_experiment({**CONFIG, "model": model}, [f"train.init_from.run={source.run_dir}",
                                                                   *overrides], plugins=plugins())
    assert note in tuned.notes, tuned.notes


@pytest.mark.parametrize("value, found", [(None, "missing"), ([0.0, 0.0], "a list")])
def test_a_state_name_that_is_no_array_is_refused_where_the_model_is_made(value, found) -> None:
    centered = RunningCenter(2, np.dtype(np.float64))
    if value is None:
        del centered.mean
    else:
        centered.mean = value
    with pytest.raises(GraphError, match=rf"RunningCenter: state_names lists 'mean', which is {found}, not a numpy "
                                         "array"):
        Graph.sequential([centered])


def test_the_state_of_a_node_inside_another_is_found_saved_and_put_back(tmp_path: Path) -> None:
    """A block holding a graph names no state of its own; its inner node's was lost on every resume and load."""
    model = [{"type": "center_block"}, *CONFIG["model"][1:]]
    result = nnframe.run_experiment({**CONFIG, "model": model}, [], runs_dir=tmp_path / "runs", quiet=True,
                                    plugins=plugins())
    (name, mean), = result.model.named_state()
    assert name == "center_block1:inner.nodes['center']/mean" and not np.all(mean == 5.0)
    loaded = nnframe.load_run(result.run_dir, plugins=plugins())
    x = loaded.experiment.dataset.x
    assert np.array_equal(loaded.model.forward(x), result.model.forward(x))


def test_a_node_whose_state_names_changed_since_the_run_is_refused_by_name(tmp_path: Path) -> None:
    result = train(tmp_path, [])
    with pytest.raises(nnframe.UserError, match=r"its state running_center1/mean has no place in the model, which "
                                                r"keeps running_center1/average instead: state_names, or the nodes "
                                                r"holding them, changed since the run trained"):
        nnframe.load_run(result.run_dir, plugins=plugins(running_center=RenamedCenter))


def test_state_added_to_a_node_since_the_run_keeps_its_built_value(tmp_path: Path) -> None:
    """A plugin's next version keeping one more array loads the runs of the one before."""

    class CountsToo(RunningCenter):
        state_names = ("mean", "seen")

        def __init__(self, width: int, dtype: np.dtype) -> None:
            super().__init__(width, dtype)
            self.seen = np.zeros(1)

    result = train(tmp_path, [])
    loaded = nnframe.load_run(result.run_dir, plugins=plugins(running_center=CountsToo))
    center = loaded.model.nodes["running_center1"]
    assert np.array_equal(center.mean, result.model.nodes["running_center1"].mean) and center.seen[0] == 0


def test_a_state_that_is_not_finite_is_saved_all_the_same(tmp_path: Path) -> None:
    """Where parameters must be finite for a checkpoint, state need not be: a running maximum starts at -inf."""

    class StartsAtMinusInfinity(RunningCenter):
        state_names = ("mean", "highest")

        def __init__(self, width: int, dtype: np.dtype) -> None:
            super().__init__(width, dtype)
            self.highest = np.full(width, -np.inf, dtype=dtype)

    result = nnframe.run_experiment(CONFIG, [], runs_dir=tmp_path / "runs", quiet=True,
                                    plugins=plugins(running_center=StartsAtMinusInfinity))
    loaded = nnframe.load_run(result.run_dir, plugins=plugins(running_center=StartsAtMinusInfinity))
    assert loaded.step == 40 and np.all(loaded.model.nodes["running_center1"].highest == -np.inf)


def test_a_node_that_rebinds_its_state_to_another_dtype_is_told_at_its_first_step(tmp_path: Path) -> None:
    """A float64 mean in a float32 run trained on, and its resume and load_run were not what it trained as."""
    model = [{"type": "rebinds"}, *CONFIG["model"][1:]]
    with pytest.raises(GraphError, match=r"state 'rebinds1/mean' is now float64 of shape \(2,\), but was float32 "
                                         r"of shape \(2,\) when the model was built; a node writes into its state "
                                         r"in place"):
        nnframe.run_experiment({**CONFIG, "model": model}, ["train.dtype=float32"], runs_dir=tmp_path / "runs",
                               quiet=True, plugins=plugins())


def test_a_node_made_at_the_first_training_forward_is_told_at_the_first_step(tmp_path: Path) -> None:
    """The build's sample forward runs in evaluation mode, so its state was not in the built model; a resume,
    which writes the checkpoint back before the first step, had nowhere to put it and went on from a fresh
    running mean, silently."""

    class MadeLazily(CenterBlock):
        def __init__(self, width: int, dtype: np.dtype) -> None:
            Node.__init__(self)
            self.width, self.dtype, self.inner = width, dtype, None

        def forward(self, x: np.ndarray) -> np.ndarray:
            if self.inner is None and self.training:
                self.inner = Graph.sequential([("center", RunningCenter(self.width, self.dtype))])
            return x if self.inner is None else super().forward(x)

    model = [{"type": "center_block"}, *CONFIG["model"][1:]]
    with pytest.raises(GraphError, match=r"state \"center_block1:inner.nodes\['center'\]/mean\" appeared after "
                                         r"the model was built \(a node made in a forward\?\); a node makes the "
                                         r"nodes it is made of, and their state, in its __init__"):
        nnframe.run_experiment({**CONFIG, "model": model}, [], runs_dir=tmp_path / "runs", quiet=True,
                               plugins=plugins(center_block=MadeLazily))


class Holder(Node):
    """Holds any object, to place a helper or a node at a chosen depth from a graph's node."""

    def __init__(self, held: object) -> None:
        super().__init__()
        self.held = held

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout


def nested(held: object, levels: int) -> object:
    for _ in range(levels):
        held = [held]
    return held


def test_a_helper_held_nearer_by_a_later_node_is_found_though_an_earlier_one_reaches_it_at_the_last_depth() -> None:
    """The first node's search took a helper it reached at the last depth as searched without looking inside,
    and the second node's search, holding it as an attribute, then skipped it: its state was not saved."""
    from nnframe.generators import MAX_DEPTH

    helper = types.SimpleNamespace(center=RunningCenter(2, np.dtype(np.float64)))
    model = Graph.sequential([("far", Holder(nested(helper, MAX_DEPTH - 1))), ("near", Holder(helper))])
    assert [name for name, _ in model.named_state()] == ["near:held.center/mean"]


def test_the_nodes_inside_a_node_found_at_the_last_depth_are_found() -> None:
    """A block reached at the last depth was found, and what it holds was not looked at: the running mean of the
    graph inside it was neither saved nor held still by a gradient check. The depth counts afresh inside it."""
    from nnframe.generators import MAX_DEPTH

    block = CenterBlock(2, np.dtype(np.float64))
    far = Graph.sequential([("far", Holder(nested(block, MAX_DEPTH - 1))), ("near", Holder(block))])
    assert [name for name, _ in far.named_state()] == [f"far:held{'[0]' * (MAX_DEPTH - 1)}.inner.nodes['center']/mean"]


def test_a_helper_reached_deep_first_and_near_later_is_looked_into_as_far_as_the_nearer_allows() -> None:
    """Reached one level short of the last, the helper was taken as searched with only its children looked at:
    the node two levels inside it was lost, whichever held it nearer, and, inside one search, whether it was
    found depended on the order of the attributes."""
    from nnframe.generators import MAX_DEPTH, objects_in, searched

    def boxed() -> types.SimpleNamespace:
        return types.SimpleNamespace(inside=types.SimpleNamespace(inside=RunningCenter(2, np.dtype(np.float64))))

    helper = boxed()
    model = Graph.sequential([("far", Holder(nested(helper, MAX_DEPTH - 2))), ("near", Holder(helper))])
    assert [name for name, _ in model.named_state()] == ["near:held.inside.inside/mean"]
    helper = boxed()
    inner = Holder(nested(helper, MAX_DEPTH - 4))  # the helper at the same level of the search as by far
    held = {"inner": inner, "far": nested(helper, MAX_DEPTH - 3)}
    for order in (("far", "inner"), ("inner", "far")):
        outer = Holder({name: held[name] for name in order})
        found = [path for path, _ in objects_in(outer, Node, searched(outer))]
        assert found == ["held['inner']", f"held['inner'].held{'[0]' * (MAX_DEPTH - 4)}.inside.inside"], order


def test_every_node_named_through_a_list_that_named_nodes_makes_is_found() -> None:
    """The search kept the id of each list a block's named_nodes() made; freed, the next block's list could take
    that id and be skipped as searched, and its running mean was not saved."""

    class Block(Holder):
        """Holds its node where the search does not look (a deque), and names it through named_nodes()."""

        def named_nodes(self) -> list[tuple[str, Node]]:
            return [("center", self.held[0])]

    model = Graph.sequential([(f"block{i}", Block(collections.deque([RunningCenter(2, np.dtype(np.float64))])))
                              for i in range(4)])
    assert [name for name, _ in model.named_state()] == [f"block{i}:.named_nodes()[0][1]/mean" for i in range(4)]


class RouterByMode(Node):
    """Two running centers, one for training and one for evaluation; it keeps the one it took, for backward, in
    an attribute set ahead of the list, which a search that names by the shortest path then reaches first."""

    def __init__(self, width: int, dtype: np.dtype) -> None:
        super().__init__()
        self.chosen: RunningCenter | None = None
        self.branches = [RunningCenter(width, dtype), RunningCenter(width, dtype)]

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.chosen = self.branches[0 if self.training else 1]
        self.chosen.training = self.training
        return self.chosen.forward(x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.chosen.backward(dout)


def test_state_keeps_the_name_it_was_built_with_when_a_forward_shortens_its_path() -> None:
    """Named afresh at each checkpoint, the training branch's mean was saved as router:chosen/mean after a
    training step and the evaluation branch's after an evaluation; a resume put one into the other."""
    model = Graph.sequential([("router", RouterByMode(2, np.dtype(np.float64)))])
    built = {name: id(array) for name, array in model.named_state()}
    for training in (True, False):
        model.training = training
        model.forward(np.ones((3, 2)))
        assert {name: id(array) for name, array in model.named_state()} == built


def test_state_whose_node_a_forward_replaced_is_refused() -> None:
    class Replaces(CenterBlock):
        def forward(self, x: np.ndarray) -> np.ndarray:
            self.inner = Graph.sequential([("center", RunningCenter(2, np.dtype(np.float64)))])
            return super().forward(x)

    class Drops(CenterBlock):
        def forward(self, x: np.ndarray) -> np.ndarray:
            out = super().forward(x)
            self.inner = None
            return out

    replaced = Graph.sequential([("block", Replaces(2, np.dtype(np.float64)))])
    replaced.forward(np.ones((3, 2)))
    with pytest.raises(GraphError, match=r"state \"block:inner.nodes\['center'\]/mean\" appeared after the model"):
        replaced.named_state()
    dropped = Graph.sequential([("block", Drops(2, np.dtype(np.float64)))])
    dropped.forward(np.ones((3, 2)))
    with pytest.raises(GraphError, match=r"state \"block:inner.nodes\['center'\]/mean\" is no longer held by the "
                                         r"model \(a forward dropped or replaced the node that held it\?\)"):
        dropped.named_state()


def test_a_state_names_string_is_refused_with_the_comma_it_lacks() -> None:
    class OneString(RunningCenter):
        state_names = "mean"

    with pytest.raises(GraphError, match=r"state_names is the string 'mean', not a tuple of names; write \('mean',\)"):
        Graph.sequential([OneString(2, np.dtype(np.float64))])


def test_a_gradient_check_holds_the_state_still_between_passes() -> None:
    """Each pass moved the running mean the forward reads: a right backward failed the check."""
    from nnframe.testing import check_gradients

    rng = np.random.default_rng(0)
    centered = RunningCenter(3, np.dtype(np.float64))
    before = centered.mean.copy()
    assert check_gradients(centered, rng.standard_normal((4, 3)), raise_on_failure=False).ok
    assert np.array_equal(centered.mean, before)


def test_a_gradient_check_holds_still_a_state_the_node_rebinds() -> None:
    """Put back into the array the node no longer holds, the state moved on between passes."""
    from nnframe.testing import check_gradients

    class Rebinds(RunningCenter):
        def forward(self, x: np.ndarray) -> np.ndarray:
            out = x - self.mean
            if self.training:
                self.mean = 0.5 * self.mean + 0.5 * x.mean(axis=0)
            return out

    centered = Rebinds(3, np.dtype(np.float64))
    assert check_gradients(centered, np.random.default_rng(1).standard_normal((4, 3)), raise_on_failure=False).ok
    assert np.array_equal(centered.mean, np.full(3, 5.0))


def test_a_gradient_check_puts_the_state_back_into_the_array_the_node_holds() -> None:
    """A node whose state is a view of a buffer its forward reads: given a copy in its place, it failed a right
    backward and went on training a buffer its state no longer showed."""
    from nnframe.testing import check_gradients

    class ReadsItsBuffer(RunningCenter):
        def __init__(self, width: int, dtype: np.dtype) -> None:
            super().__init__(width, dtype)
            self.buffer = np.full((2, width), 5.0, dtype=dtype)
            self.mean = self.buffer[0]

        def forward(self, x: np.ndarray) -> np.ndarray:
            out = x - self.buffer[0]
            if self.training:
                self.buffer[0] = 0.5 * self.buffer[0] + 0.5 * x.mean(axis=0)
            return out

    centered = ReadsItsBuffer(3, np.dtype(np.float64))
    assert check_gradients(centered, np.random.default_rng(2).standard_normal((4, 3)), raise_on_failure=False).ok
    assert centered.mean.base is centered.buffer and np.all(centered.buffer == 5.0)


def test_a_state_blown_up_in_training_is_not_saved_over_the_last_good_checkpoint(tmp_path: Path, capsys) -> None:
    """Finite when built, infinite later: a dead batch norm, as a diverged parameter is, is kept out of every
    checkpoint after it; the -inf a state starts with is not (see the test above)."""
    from nnframe.checkpoint import latest_checkpoint

    class BlowsUp(RunningCenter):
        """Centres on the batch's mean in training, as a batch norm does, and on the running mean otherwise."""

        calls = 0

        def forward(self, x: np.ndarray) -> np.ndarray:
            if not self.training:
                return x - self.mean
            self.calls += 1
            self.mean[...] = np.inf if self.calls > 22 else 0.5 * self.mean + 0.5 * x.mean(axis=0)
            return x - x.mean(axis=0)

        def backward(self, dout: np.ndarray) -> np.ndarray:
            return dout - dout.mean(axis=0)

    result = nnframe.run_experiment(CONFIG, ["checkpoint.every=5"], runs_dir=tmp_path / "runs", quiet=True,
                                    plugins=plugins(running_center=BlowsUp))
    assert latest_checkpoint(result.run_dir / "checkpoints").step == 20
    assert "running_center1/mean is not finite; the last good checkpoint is kept" in capsys.readouterr().err


def test_a_state_that_starts_not_a_number_is_saved(tmp_path: Path) -> None:
    """A NaN for "not seen yet" that the node keeps: refused, no checkpoint of the run was ever saved."""

    class NotSeenYet(RunningCenter):
        state_names = ("mean", "first")

        def __init__(self, width: int, dtype: np.dtype) -> None:
            super().__init__(width, dtype)
            self.first = np.full(width, np.nan, dtype=dtype)

    result = nnframe.run_experiment(CONFIG, [], runs_dir=tmp_path / "runs", quiet=True,
                                    plugins=plugins(running_center=NotSeenYet))
    assert nnframe.load_run(result.run_dir, plugins=plugins(running_center=NotSeenYet)).step == 40


def test_the_state_as_built_is_kept_through_flattening() -> None:
    """flatten_params collected the model again and took a NaN already there as how the state started."""
    centered = RunningCenter(2, np.dtype(np.float64))
    model = Graph.sequential([("center", centered), ("affine", nnframe_affine(2))])
    centered.mean[0] = np.nan
    assert model.nonfinite_state() == "center/mean"
    assert model.flatten_params()
    assert model.nonfinite_state() == "center/mean"


def nnframe_affine(width: int) -> Node:
    from nnframe.nodes import Affine

    return Affine(np.ones((width, 2)), np.zeros(2))

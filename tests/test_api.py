"""nnframe from Python: run_experiment and prepare_experiment, from a file or a mapping."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from fixtures.console import NNFRAME
from fixtures.distributions import Site
import nnframe
from nnframe.errors import ConfigError, GraphError, UserError
from nnframe.hookspecs import hookimpl
from nnframe.losses import SoftmaxWithLoss
from nnframe.plugins import get_plugin_manager
from nnframe.train import Interrupted

ROOT = Path(__file__).resolve().parents[1]
SPIRAL = ROOT / "experiments" / "spiral.yaml"


def spiral() -> dict:
    return yaml.safe_load(SPIRAL.read_text(encoding="utf-8"))


def test_a_mapping_trains_like_its_file(tmp_path: Path) -> None:
    from_file = nnframe.run_experiment(SPIRAL, ["train.epochs=5"], runs_dir=tmp_path / "a", quiet=True)
    from_mapping = nnframe.run_experiment(spiral(), ["train.epochs=5"], runs_dir=tmp_path / "b", quiet=True)
    assert from_mapping.summary["metrics"] == from_file.summary["metrics"]
    assert from_mapping.run_dir.parent == tmp_path / "b" / "spiral"
    assert (from_mapping.run_dir / "config.yaml").read_text() == (from_file.run_dir / "config.yaml").read_text()
    model = from_mapping.model
    assert not model.training
    assert all(np.array_equal(a, b) for a, b in zip(model.params, from_file.model.params))


def test_a_mistake_in_a_mapping_names_it_and_the_field_and_writes_nothing(tmp_path: Path) -> None:
    config = spiral()
    config["optimizer"] = {"type": "sgd", "lrr": 1.0}
    with pytest.raises(ConfigError, match=r"^<mapping>: field optimizer.lrr: unknown key 'lrr'.*did you mean 'lr'"):
        nnframe.run_experiment(config, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
    assert config["optimizer"] == {"type": "sgd", "lrr": 1.0}  # the caller's mapping is left as it was


def test_relative_paths_in_a_mapping_are_relative_to_the_working_directory(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.standard_normal((40, 2)), y=rng.integers(0, 3, 40))
    monkeypatch.chdir(tmp_path)
    experiment = nnframe.prepare_experiment({**spiral(), "data": {"type": "npz", "path": "data.npz"}})
    assert experiment.config.resolved["data"]["path"] == str(tmp_path / "data.npz")
    assert experiment.dataset.n_train == 40
    assert experiment.model.forward(experiment.dataset.x[:4]).shape == (4, 3)


class InterruptAt:
    def __init__(self, step: int) -> None:
        self.step = step

    @hookimpl
    def nnframe_step_end(self, run, metrics) -> None:
        if metrics.step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_an_interrupted_mapping_run_resumes_from_python_or_the_command_it_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nnframe.launch import train

    plugins = get_plugin_manager()
    plugins.pm.register(InterruptAt(40))
    monkeypatch.chdir(tmp_path)  # a notebook's directory
    with pytest.raises(Interrupted) as caught:
        train(spiral(), ["train.epochs=10"], plugins, runs_dir=Path("runs"), quiet=True)
    (run_dir,) = (tmp_path / "runs" / "spiral").iterdir()
    command = str(caught.value).split("continue it with: ")[1]
    assert command == f"nnframe train {run_dir / 'config.yaml'} --resume {run_dir}"  # both absolute
    done = subprocess.run([NNFRAME, *shlex.split(command)[1:], "train.epochs=20"], capture_output=True, text=True,
                          timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr
    with pytest.raises(UserError, match=r"runs_dir 'elsewhere' is not where run .* lies; a resume stays in the "
                                        r"run's directory, so leave runs_dir out"):
        nnframe.run_experiment(spiral(), ["train.epochs=30"], resume=run_dir, runs_dir="elsewhere", quiet=True)
    (tmp_path / "latest").symlink_to(run_dir)  # a link to the run lies where the run does
    again = nnframe.run_experiment(spiral(), ["train.epochs=30"], resume=tmp_path / "latest", runs_dir="runs",
                                   quiet=True)
    assert again.summary["steps"] == 300
    assert "resumed with train.epochs: 20 in the run, 30 now" in again.notes


def status_and_steps(run_dir: Path) -> tuple[str, int]:
    summary = json.loads((run_dir / "summary.json").read_text())
    return summary["status"], summary["steps"]


class ExitsIn:
    """``sys.exit(code)`` in one hook at one step, each time it is called there: Ray Tune's scheduler stops a trial
    with ``sys.exit(0)`` inside ``tune.report``, called from the hook that reports."""

    def __init__(self, hook: str, step: int, code: int | None = 0) -> None:
        self.hook, self.step, self.code = hook, step, code

    def _maybe_exit(self, hook: str, step: int) -> None:
        if hook == self.hook and step == self.step:
            sys.exit(self.code)

    @hookimpl(tryfirst=True)  # before the run's own loggers, which the exit must not cost their call
    def nnframe_step_end(self, run, metrics) -> None:
        self._maybe_exit("nnframe_step_end", metrics.step)

    @hookimpl(tryfirst=True)
    def nnframe_log_metrics(self, run, metrics) -> None:
        self._maybe_exit("nnframe_log_metrics", metrics.step)

    @hookimpl(tryfirst=True)
    def nnframe_evaluation_end(self, run, metrics) -> None:
        self._maybe_exit("nnframe_evaluation_end", metrics.step)

    @hookimpl(tryfirst=True)
    def nnframe_checkpoint(self, run) -> None:
        self._maybe_exit("nnframe_checkpoint", run.step)

    @hookimpl
    def nnframe_run_end(self, run, status, summary) -> None:
        self._maybe_exit("nnframe_run_end", run.step)


EXIT_OVERRIDES = ["train.epochs=6", "data.val_fraction=0.2", "log.every=5", "checkpoint.every=4"]


def scalar_steps(run_dir: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [event.step for event in events.Scalars(tag)]


@pytest.mark.parametrize(("hook", "step"), [("nnframe_step_end", 16), ("nnframe_step_end", 15),
                                            ("nnframe_log_metrics", 15), ("nnframe_evaluation_end", 16),
                                            ("nnframe_checkpoint", 12)])
def test_a_hooks_sys_exit_stops_the_run_as_a_ctrl_c_does_and_it_resumes_to_the_straight_result(
        tmp_path: Path, hook: str, step: int) -> None:
    """The step it came in is finished (logged, evaluated, its best and scheduled checkpoints written), the run
    is saved and listed interrupted, and the resume's curves, best checkpoint and result are the straight run's."""
    plugins = get_plugin_manager(plugins=[("tune", ExitsIn(hook, step))])
    with pytest.raises(SystemExit) as caught:
        nnframe.run_experiment(spiral(), EXIT_OVERRIDES, runs_dir=tmp_path / "runs", quiet=True, plugins=plugins)
    assert caught.value.code == 0 and caught.value.__context__ is None
    (run_dir,) = (tmp_path / "runs" / "spiral").iterdir()
    assert status_and_steps(run_dir) == ("interrupted", step)
    assert (run_dir / "checkpoints" / f"step-{step:08d}.npz").is_file()
    resumed = nnframe.run_experiment(spiral(), EXIT_OVERRIDES, resume=run_dir, quiet=True)
    straight = nnframe.run_experiment(spiral(), EXIT_OVERRIDES, runs_dir=tmp_path / "straight", quiet=True)
    assert resumed.summary["steps"] == straight.summary["steps"] == 48
    assert resumed.summary["metrics"] == straight.summary["metrics"]
    for tag in ("train/loss", "val/loss"):
        assert scalar_steps(run_dir, tag) == scalar_steps(straight.run_dir, tag), tag
    assert nnframe.load_run(run_dir, "best").step == nnframe.load_run(straight.run_dir, "best").step


@pytest.mark.parametrize("hook", ["nnframe_evaluation_end", "nnframe_log_metrics", "nnframe_run_end"])
def test_a_hooks_sys_exit_in_the_last_step_lets_the_run_complete_first(tmp_path: Path, hook: str) -> None:
    plugins = get_plugin_manager(plugins=[("tune", ExitsIn(hook, 48))])
    with pytest.raises(SystemExit) as caught:
        nnframe.run_experiment(spiral(), EXIT_OVERRIDES, runs_dir=tmp_path, quiet=True, plugins=plugins)
    (run_dir,) = (tmp_path / "spiral").iterdir()
    assert status_and_steps(run_dir) == ("completed", 48)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["train/accuracy"] is not None  # the whole training set was measured
    assert caught.value.__notes__ == [f"a plugin called sys.exit(0) as the run completed (step 48); the run is in "
                                      f"{run_dir}"]


class DivergesAtStep10:
    @hookimpl
    def nnframe_step_end(self, run, metrics) -> None:
        if metrics.step == 10:
            run.model.params[0][0, 0] = float("nan")


def test_a_sys_exit_in_run_end_leaves_what_ended_the_run_the_error(tmp_path: Path) -> None:
    plugins = get_plugin_manager(plugins=[("tune", ExitsIn("nnframe_run_end", 10)), ("nan", DivergesAtStep10())])
    with pytest.raises(nnframe.errors.NonFiniteError) as caught:
        nnframe.run_experiment(spiral(), EXIT_OVERRIDES, runs_dir=tmp_path, quiet=True, plugins=plugins)
    assert "a plugin's nnframe_run_end failed too: SystemExit(0)" in str(caught.value)


def test_a_resume_that_completes_a_run_before_a_sys_exit_writes_its_summary(tmp_path: Path) -> None:
    """Stopped by a Ctrl-C in its last step, the run is resumed to no new step; a plugin exits in run_end."""
    overrides = [*EXIT_OVERRIDES, "train.epochs=2"]
    with pytest.raises(Interrupted):
        nnframe.run_experiment(spiral(), overrides, runs_dir=tmp_path, quiet=True,
                               plugins=get_plugin_manager(plugins=[("ctrl-c", InterruptAt(16))]))
    (run_dir,) = (tmp_path / "spiral").iterdir()
    with pytest.raises(SystemExit):
        nnframe.run_experiment(spiral(), overrides, resume=run_dir, quiet=True,
                               plugins=get_plugin_manager(plugins=[("tune", ExitsIn("nnframe_run_end", 16))]))
    assert status_and_steps(run_dir) == ("completed", 16)


def test_a_sys_exit_while_a_ctrl_c_is_saved_leaves_the_interruption_the_error(tmp_path: Path) -> None:
    plugins = get_plugin_manager(plugins=[("tune", ExitsIn("nnframe_checkpoint", 10)), ("ctrl-c", InterruptAt(10))])
    with pytest.raises(Interrupted) as caught:
        nnframe.run_experiment(spiral(), EXIT_OVERRIDES, runs_dir=tmp_path, quiet=True, plugins=plugins)
    assert caught.value.exit_code == 130
    assert "a plugin's nnframe_checkpoint failed too: SystemExit(0)" in str(caught.value)
    (run_dir,) = (tmp_path / "spiral").iterdir()
    assert (run_dir / "checkpoints" / "step-00000010.npz").is_file()


def test_a_hooks_sys_exit_with_another_code_fails_the_run_at_once(tmp_path: Path) -> None:
    plugins = get_plugin_manager(plugins=[("fatal", ExitsIn("nnframe_step_end", 16, code=3))])
    with pytest.raises(SystemExit) as caught:
        nnframe.run_experiment(spiral(), EXIT_OVERRIDES, runs_dir=tmp_path, quiet=True, plugins=plugins)
    assert caught.value.code == 3
    (run_dir,) = (tmp_path / "spiral").iterdir()
    assert status_and_steps(run_dir) == ("failed", 16)
    assert caught.value.__notes__ == [f"a plugin ended the run with sys.exit(3) after step 16; the run is in "
                                      f"{run_dir} (its last good checkpoint is kept)"]


class FailsAtStep3:
    @hookimpl
    def nnframe_step_end(self, run, metrics) -> None:
        if metrics.step == 3:
            raise RuntimeError("the hook's own bug")


def test_a_run_in_another_thread_fails_with_its_own_error_alone(tmp_path: Path) -> None:
    """Signals cannot be handled there (Ray Tune's trials, a thread pool); that must not show in its errors."""
    caught: list[BaseException] = []

    def train() -> None:
        try:
            nnframe.run_experiment(spiral(), ["train.epochs=1"], runs_dir=tmp_path, quiet=True,
                                   plugins=get_plugin_manager(plugins=[("fails", FailsAtStep3())]))
        except BaseException as exc:
            caught.append(exc)

    worker = threading.Thread(target=train)
    worker.start()
    worker.join()
    (error,) = caught
    assert isinstance(error, RuntimeError) and error.__context__ is None


def test_the_book_readers_submodules_are_reachable_from_the_package_alone() -> None:
    code = ("import nnframe; print(nnframe.nodes.Affine.__name__, nnframe.losses.SoftmaxWithLoss.__name__, "
            "nnframe.schedules.CosineSchedule.__name__, nnframe.gradients.clip_grad_norm.__name__, "
            "nnframe.graph.Graph.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    expected = ["Affine", "SoftmaxWithLoss", "CosineSchedule", "clip_grad_norm", "Graph"]
    assert done.stdout.split() == expected, done.stderr


def test_a_mapping_may_hold_other_mappings_tuples_and_numpy_numbers() -> None:
    from collections import OrderedDict
    from types import MappingProxyType

    config = spiral()
    config["optimizer"] = MappingProxyType({"type": "sgd", "lr": np.float32(0.5)})
    config["model"] = tuple(config["model"])
    config["train"] = OrderedDict(epochs=np.int64(2), batch_size=30)
    resolved = nnframe.prepare_experiment(config).config.resolved
    assert (resolved["optimizer"]["lr"], resolved["train"]["epochs"]) == (0.5, 2)
    assert [entry["type"] for entry in resolved["model"]] == ["affine", "sigmoid", "affine"]


def test_a_mapping_that_holds_itself_is_a_config_error() -> None:
    config = spiral()
    config["data"]["loop"] = config
    with pytest.raises(ConfigError, match="nested too deeply to be a config"):
        nnframe.prepare_experiment(config)


def test_mistaken_arguments_are_named(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"overrides are a list of 'key=value' strings; found the one string "
                                        r"'train.epochs=3', so give \['train.epochs=3'\]"):
        nnframe.run_experiment(SPIRAL, "train.epochs=3", runs_dir=tmp_path)
    with pytest.raises(TypeError, match="a config is a YAML file's path or its content as a mapping; found list"):
        nnframe.prepare_experiment([spiral()])
    with pytest.raises(TypeError, match="not a mapping"):
        nnframe.prepare_experiment(SPIRAL, {"train.epochs": 3})
    assert nnframe.prepare_experiment(SPIRAL, None).settings.train.epochs == 300
    for overrides, found in [(["train.epochs=3", None], "NoneType None among them"), ([0.1], "float 0.1 among them"),
                             ([Path("a=b")], "PosixPath('a=b') among them"), (5, "found int 5")]:
        with pytest.raises(TypeError, match=re.escape(found)):
            nnframe.prepare_experiment(SPIRAL, overrides)
    with pytest.raises(TypeError, match="on_note takes a function of one note"):
        nnframe.run_experiment(SPIRAL, ["train.epochs=1"], runs_dir=tmp_path, on_note="print")
    assert not (tmp_path / "spiral").exists()
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.standard_normal((40, 2)), y=rng.integers(0, 3, 40))
    experiment = nnframe.prepare_experiment({**spiral(), "data": {"type": "npz", "path": tmp_path / "data.npz"}})
    assert experiment.dataset.n_train == 40  # a Path where YAML would hold a string


class Doubles(nnframe.Node):
    def forward(self, x):
        return 2 * x

    def backward(self, dout):
        return 2 * dout


class NotebookPlugin:
    @hookimpl
    def nnframe_register_nodes(self) -> list:
        from nnframe.components import node

        return [node("doubles", nnframe.Params, lambda params, ctx: Doubles())]


def test_a_component_defined_in_the_notebook_trains_through_a_plugin_manager_given(tmp_path: Path) -> None:
    plugins = nnframe.get_plugin_manager(plugins=[("notebook", NotebookPlugin())])
    config = {**spiral(), "model": [{"type": "doubles"}, *spiral()["model"]]}
    result = nnframe.run_experiment(config, ["train.epochs=2"], runs_dir=tmp_path, quiet=True, plugins=plugins)
    assert list(result.model.nodes)[0] == "doubles1"
    assert nnframe.prepare_experiment(config, plugins=plugins).model.nodes["doubles1"].forward(1.0) == 2.0


def test_a_plugin_that_fails_to_load_is_named_in_a_warning(site: Site) -> None:
    site.add("nnframe-faulty", {"nnframe_faulty": "raise ImportError('a broken plugin')\n"}, version="0.3.1")
    with pytest.warns(UserWarning, match=r"nnframe: plugin 'nnframe_faulty' from nnframe-faulty 0.3.1: import failed"):
        nnframe.prepare_experiment(SPIRAL)


def test_the_loss_handed_out_checks_the_targets_of_every_batch() -> None:
    loss = nnframe.prepare_experiment(SPIRAL).loss
    with pytest.raises(nnframe.UserError, match=r"class indices must be in \[0, 2\]"):
        loss.forward(np.zeros((4, 3)), np.array([0, 1, 2, -1]))


def test_the_model_and_loss_handed_out_have_seen_no_forward_of_the_builds_checks() -> None:
    experiment = nnframe.prepare_experiment(SPIRAL)
    with pytest.raises(GraphError, match="backward was called before forward"):
        experiment.model.backward(np.ones((3, 3)))  # the shape of the build's own check batch
    with pytest.raises(RuntimeError, match="SoftmaxWithLoss.backward was called before forward"):
        experiment.loss.backward()
    x, t = experiment.dataset.x[:4], experiment.dataset.y[:4]
    experiment.loss.forward(experiment.model.forward(x), t)
    assert experiment.model.backward(experiment.loss.backward()) is None  # the first layer's input needs none


class Delegating(nnframe.Loss):
    """A loss that hands what it lacks to an inner one, as wrappers do: a copy of it would recurse."""

    def __init__(self) -> None:
        self.inner = SoftmaxWithLoss()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def forward(self, x, t):
        return self.inner.forward(x, t)

    def backward(self, dout=1.0):
        return self.inner.backward(dout)


class DelegatingLossPlugin:
    @hookimpl
    def nnframe_register_losses(self) -> list:
        from nnframe.components import loss

        return [loss("delegating", nnframe.Params, lambda params: Delegating())]


def test_a_wrapping_loss_is_checked_against_the_targets_without_a_forward_left_on_it() -> None:
    plugins = nnframe.get_plugin_manager(plugins=[("notebook", DelegatingLossPlugin())])
    experiment = nnframe.prepare_experiment({**spiral(), "loss": {"type": "delegating"}}, plugins=plugins)
    with pytest.raises(RuntimeError, match="SoftmaxWithLoss.backward was called before forward"):
        experiment.loss.backward()

"""The plugin manager: entry-point loading, broken plugins, strict mode, collisions, unknown names.

Every third-party plugin here is a real distribution (a ``.dist-info`` folder on
``sys.path`` or ``PYTHONPATH``, see ``fixtures/distributions.py``), so these tests
go through ``importlib.metadata`` and the manager's own loading path.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pydantic
import pytest
import yaml
from typer.testing import CliRunner

import nnframe
from fixtures.console import NNFRAME
from fixtures.distributions import Site
from fixtures.sources import component_plugin, MISSPELLED_HOOK, RAISING_HOOK, node_plugin
from nnframe.cli import app
from nnframe.components import KINDS, Params, loss, node
from nnframe.config import ConfigModels
from nnframe.config_loader import load_experiment
from nnframe.errors import ConfigError, PluginError, UnknownComponentError
from nnframe.hookspecs import hookimpl
from nnframe.plugins import Plugins, get_plugin_manager

BUILTIN_NAMES = {
    "node": "matmul affine add mul repeat sum sigmoid relu tanh softmax dropout".split(),
    "loss": "softmax_cross_entropy sigmoid_cross_entropy mse".split(),
    "optimizer": "sgd momentum nesterov adagrad rmsprop adam adamw".split(),
    "dataset": "spiral npz csv".split(),
    "callback": ["early_stopping"],
    "schedule": "constant step cosine".split(),
}
BUILTIN_ENTRY_POINTS = {
    "nodes": "nnframe.builtin.nodes",
    "losses": "nnframe.builtin.losses",
    "optimizers": "nnframe.builtin.optimizers",
    "datasets": "nnframe.builtin.datasets",
    "callbacks": "nnframe.builtin.callbacks",
    "schedules": "nnframe.builtin.schedules",
    "tensorboard": "nnframe.builtin.tensorboard",
}
TINY_CONFIG = {
    "name": "tiny",
    "seed": 3,
    "data": {"type": "spiral", "points_per_class": 10, "classes": 3},
    "model": [{"type": "affine", "out": 4}, {"type": "sigmoid"}, {"type": "affine", "out": 3}],
    "loss": {"type": "softmax_cross_entropy"},
    "optimizer": {"type": "sgd", "lr": 1.0},
    "train": {"max_steps": 20, "batch_size": 10},
}
FAULTY = ("nnframe-faulty", "0.3.1")


def write_config(directory: Path, **sections: object) -> Path:
    path = directory / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY_CONFIG, **sections}, sort_keys=False), encoding="utf-8")
    return path


def nnframe_cli(site: Site, *args: str, env: dict[str, str] | None = None,
                cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real installed console script, seeing ``site``'s distributions."""
    return subprocess.run([NNFRAME, *args], env={**site.env(), **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def broken_of(plugins, dist: str) -> list:
    return [item for item in plugins.broken if item.dist == dist]


def assert_builtins_present(plugins) -> None:
    for kind, names in BUILTIN_NAMES.items():
        assert set(names) <= set(plugins.registry(kind).names()), kind


# ------------------------------------------------------------------ autoload


@pytest.mark.parametrize("env_value", [None, "1", "true"])
def test_autoload_off_registers_no_components(site: Site, monkeypatch: pytest.MonkeyPatch,
                                              env_value: str | None) -> None:
    site.add("nnframe-scale", {"nnframe_scale": node_plugin("scale")})
    if env_value is None:
        plugins = get_plugin_manager(autoload=False)
    else:
        monkeypatch.setenv("NNFRAME_DISABLE_PLUGIN_AUTOLOAD", env_value)
        plugins = get_plugin_manager()
    assert plugins.pm.get_plugins() == set()
    assert {kind: len(plugins.registry(kind)) for kind in KINDS} == dict.fromkeys(KINDS, 0)


def test_autoload_off_still_takes_explicit_plugins(site: Site) -> None:
    site.add("nnframe-scale", {"nnframe_scale": node_plugin("scale")})
    module = importlib.import_module("nnframe_scale")
    plugins = get_plugin_manager(autoload=False, plugins=[("scale", module)])
    assert plugins.nodes.names() == ["scale"]
    assert plugins.nodes.plugin_of("scale").dist == "(local)"


@pytest.mark.parametrize("kind,name", [(kind, name) for kind, names in BUILTIN_NAMES.items() for name in names])
def test_builtin_component_comes_from_nnframes_entry_points(kind: str, name: str) -> None:
    plugins = get_plugin_manager()
    origin = plugins.registry(kind).plugin_of(name)
    assert (origin.dist, origin.version) == ("nnframe", nnframe.__version__)
    assert origin.name in BUILTIN_ENTRY_POINTS


def test_builtins_are_registered_as_their_entry_point_modules() -> None:
    declared = {ep.name: ep.value for ep in metadata.distribution("nnframe").entry_points.select(group="nnframe")}
    assert declared == BUILTIN_ENTRY_POINTS
    plugins = get_plugin_manager()
    for name, module in BUILTIN_ENTRY_POINTS.items():
        assert plugins.pm.get_plugin(name) is importlib.import_module(module)


def test_third_party_component_is_attributed_to_its_distribution(site: Site) -> None:
    site.add("nnframe-scale", {"nnframe_scale": node_plugin("scale")}, entry_points={"scale": "nnframe_scale"},
             version="0.2.0")
    plugins = get_plugin_manager()
    origin = plugins.nodes.plugin_of("scale")
    assert (origin.name, origin.dist, origin.version) == ("scale", "nnframe-scale", "0.2.0")
    assert plugins.versions()["nnframe-scale"] == "0.2.0"
    assert_builtins_present(plugins)


# ----------------------------------------------------------- broken plugins

BROKEN_CASES = {
    "import error": (
        {"nnframe_faulty": "import nnframe_missing_dependency_xyz\n"}, "nnframe_faulty",
        ["import failed", "ModuleNotFoundError", "nnframe_missing_dependency_xyz"]),
    "syntax error": (
        {"nnframe_faulty": "def broken(:\n    pass\n"}, "nnframe_faulty",
        ["import failed", "SyntaxError", "nnframe_faulty.py, line 1) (in /", "/nnframe_faulty.py)"]),
    "exit at import": (
        {"nnframe_faulty": "raise SystemExit(3)\n"}, "nnframe_faulty",
        ["import failed", "SystemExit"]),
    "skip at import": (  # a BaseException, as a missing optional dependency's pytest.importorskip raises
        {"nnframe_faulty": "import pytest\n\npytest.importorskip('nnframe_missing_dependency_xyz')\n"},
        "nnframe_faulty",
        ["import failed: Skipped", "nnframe_missing_dependency_xyz", "(raised in nnframe_faulty, line 3)"]),
    "BaseException at import": (
        {"nnframe_faulty": "class NoBackend(BaseException):\n    pass\n\n\nraise NoBackend('no GPU backend')\n"},
        "nnframe_faulty", ["import failed: NoBackend: no GPU backend (raised in nnframe_faulty, line 5)"]),
    "registration hook that exits": (
        {"nnframe_faulty": RAISING_HOOK.replace('raise RuntimeError("layer table is corrupt")', "raise SystemExit(4)")},
        "nnframe_faulty", ["nnframe_register_nodes raised SystemExit: 4 (raised in nnframe_faulty, line 7)"]),
    "missing attribute": (
        {"nnframe_faulty": "PLUGIN = None\n"}, "nnframe_faulty:plugin_object",
        ["import failed", "AttributeError", "plugin_object"]),
    "registration hook raises": (
        {"nnframe_faulty": RAISING_HOOK}, "nnframe_faulty",
        ["nnframe_register_nodes raised RuntimeError", "layer table is corrupt (raised in nnframe_faulty, line 7)"]),
    "registration hook returns a non-component": (
        {"nnframe_faulty": "from nnframe import hookimpl\n\n@hookimpl\ndef nnframe_register_losses():\n"
                           "    return ['cross_entropy']\n"}, "nnframe_faulty",
        ["nnframe_register_losses returned 'cross_entropy', not a loss Component"]),
    "component of the wrong kind": (
        {"nnframe_faulty": node_plugin("scale").replace("nnframe_register_nodes", "nnframe_register_datasets")},
        "nnframe_faulty",
        ["nnframe_register_datasets returned Component(name='scale', kind='node'", "not a dataset Component"]),
    "misspelled hook": (
        {"nnframe_faulty": MISSPELLED_HOOK}, "nnframe_faulty",
        ["unknown hook 'nnframe_regster_nodes'", "did you mean 'nnframe_register_nodes'?"]),
    "parameter named like a field nnframe reads": (
        {"nnframe_faulty": component_plugin("node", "router").replace(
            '"""No parameters."""', '"""Which inputs to route."""\n    inputs: int = 2')}, "nnframe_faulty",
        ["node 'router' declares the parameter(s) 'inputs', which nnframe reserves in a node section"]),
    "default its own type refuses": (
        {"nnframe_faulty": node_plugin("scale").replace("factor: float = 2.0", "factor: int = 0.01")},
        "nnframe_faulty", ["node 'scale': the default of its parameter 'factor', 0.01, fails the parameter's "
                           "own validation: input should be a valid integer"]),
    "default that no config can hold": (
        {"nnframe_faulty": node_plugin("scale").replace("factor: float = 2.0", "factor: object = print")},
        "nnframe_faulty", ["node 'scale': the default of its parameter 'factor' cannot be written to a config: "
                           "Unable to serialize unknown type: <class 'builtin_function_or_method'>; parameters are "
                           "what a YAML config holds"]),
    "parameter that no config can give": (
        {"nnframe_faulty": node_plugin("scale").replace("factor: float = 2.0", "factor: type")},
        "nnframe_faulty", ["node 'scale': its parameter 'factor' (type) takes values that no config can give"]),
    "name with a space": (
        {"nnframe_faulty": node_plugin("my_scale").replace("'my_scale'", "'My Scale'")}, "nnframe_faulty",
        ["node name 'My Scale' is not letters, digits and underscores from a letter: configs give it"]),
    "build that cannot take the context": (
        {"nnframe_faulty": node_plugin("scale").replace("def build_scale(params, ctx):", "def build_scale(params):")},
        "nnframe_faulty", ["node 'scale': its build(params) cannot be called as build(params, ctx)"]),
    "hook without its mark": (
        {"nnframe_faulty": "def nnframe_register_nodes():\n    return []\n"}, "nnframe_faulty",
        ["defines nnframe_register_nodes without @nnframe.hookimpl, so nnframe never calls it"]),
    "params that are no class of settings": (
        {"nnframe_faulty": node_plugin("scale").replace("node('scale', ScaleParams,", "node('scale', None,")},
        "nnframe_faulty", ["node 'scale': its params are None, not a class of settings; give a subclass of "
                           "nnframe.Params (nnframe.Params itself for a node without any)"]),
    "params given as an instance": (
        {"nnframe_faulty": node_plugin("scale").replace("node('scale', ScaleParams,", "node('scale', ScaleParams(),")},
        "nnframe_faulty", ["node 'scale': its params are ScaleParams(factor=2.0), not a class of settings"]),
    "optimizer params that are no class": (
        {"nnframe_faulty": component_plugin("optimizer", "lion").replace("EmptyParams, build", "dict, build")},
        "nnframe_faulty", ["optimizer 'lion': its params are <class 'dict'>, not a class of settings; give a "
                           "subclass of nnframe.OptimizerParams"]),
    "hook returns one component, not a list": (
        {"nnframe_faulty": node_plugin("scale").replace("return [node('scale', ScaleParams, build_scale)]",
                                                        "return node('scale', ScaleParams, build_scale)")},
        "nnframe_faulty", ["nnframe_register_nodes returned the node 'scale' itself, not a list of components; "
                           "return [node(...)]"]),
    "hook returns something that is no list": (
        {"nnframe_faulty": "from nnframe import hookimpl\n\n@hookimpl\ndef nnframe_register_losses():\n"
                           "    return 42\n"}, "nnframe_faulty",
        ["nnframe_register_losses returned 42, not a list of components"]),
    "entry point naming a module that is not there": (
        {"nnframe_faulty": node_plugin("scale")}, "nnframe_faulty.nodes",
        ["import failed: ModuleNotFoundError: No module named 'nnframe_faulty.nodes'",
         "; the entry point faulty = 'nnframe_faulty.nodes' names that module: fix it under "
         "[project.entry-points.nnframe] in the plugin's pyproject.toml, then install the plugin again"]),
    "entry point naming the hook, not its module": (
        {"nnframe_faulty": node_plugin("scale")}, "nnframe_faulty:nnframe_register_nodes",
        ["implements no nnframe hook, so it adds nothing; an entry point names the module that holds the "
         "@nnframe.hookimpl functions: 'nnframe_faulty', not 'nnframe_faulty:nnframe_register_nodes'"]),
    "entry point naming an object of a module without hooks": (
        {"nnframe_faulty": "REGISTRY = {'nodes': []}\n"}, "nnframe_faulty:REGISTRY",
        ["implements no nnframe hook, so it adds nothing; mark its hook functions with @nnframe.hookimpl"]),
    "module without hooks": (
        {"nnframe_faulty": "def register_nodes():\n    return []\n"}, "nnframe_faulty",
        ["implements no nnframe hook, so it adds nothing; mark its hook functions with @nnframe.hookimpl"]),
    "import error on a line of the plugin": (
        {"nnframe_faulty": "import numpy as np\n\nTABLE = np.zeroes(3)\n"}, "nnframe_faulty",
        ["import failed: AttributeError", "zeroes", "(raised in nnframe_faulty, line 3)"]),
    "hook argument not in the spec": (
        {"nnframe_faulty": "from nnframe import hookimpl\n\n@hookimpl\ndef nnframe_step_end(run, metric):\n"
                           "    pass\n"}, "nnframe_faulty",
        ["implements nnframe_step_end with the argument 'metric', which the hook does not give (did you mean "
         "'metrics'?); it gives (run, metrics)"]),
}


def add_faulty(site: Site, case: str) -> None:
    modules, target, _ = BROKEN_CASES[case]
    site.add(FAULTY[0], modules, entry_points={"faulty": target}, version=FAULTY[1])


def test_params_that_a_config_gives_through_a_conversion_are_accepted() -> None:
    """A ``Path``, a ``Sequence`` or an array read from a list and written back as one hold an instance check
    inside their schema, for values given as they are; a config gives them all the same."""
    import numpy as np
    from pathlib import Path
    from typing import Annotated, Optional, Sequence

    from pydantic import BeforeValidator, ConfigDict, PlainSerializer

    from nnframe import Params, hookimpl
    from nnframe.components import node

    class Converted(Params):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        cache: Optional[Path] = None
        sizes: Sequence[int] = (1, 2)
        table: Annotated[np.ndarray, BeforeValidator(np.asarray), PlainSerializer(lambda a: a.tolist())] = np.zeros(2)

    class Plugin:
        @hookimpl
        def nnframe_register_nodes(self):
            return [node("converted", Converted, lambda params, ctx: None)]

    assert "converted" in get_plugin_manager(plugins=[("mine", Plugin())]).nodes


@pytest.mark.parametrize("where", ["import", "registration"])
@pytest.mark.parametrize("stop", ["KeyboardInterrupt()", "nnframe.errors.Terminated()"])
def test_ctrl_c_or_sigterm_while_a_plugin_loads_stops_the_command(site: Site, where: str, stop: str) -> None:
    """A SIGTERM at start-up is ``Terminated``, a ``BaseException``: taken for the plugin's failure, the run trained
    on to exit 0."""
    raising = f"import nnframe.errors\n\nraise {stop}\n" if where == "import" else RAISING_HOOK.replace(
        'raise RuntimeError("layer table is corrupt")', f"import nnframe.errors\n    raise {stop}")
    site.add(FAULTY[0], {"nnframe_faulty": raising}, entry_points={"faulty": "nnframe_faulty"}, version=FAULTY[1])
    with pytest.raises(BaseException) as caught:
        get_plugin_manager().build_registries()
    assert type(caught.value).__name__ == stop.split(".")[-1].removesuffix("()")


@pytest.mark.parametrize("case", BROKEN_CASES)
def test_broken_plugin_is_reported_and_everything_else_works(site: Site, case: str) -> None:
    add_faulty(site, case)
    plugins = get_plugin_manager()
    [broken] = broken_of(plugins, "nnframe-faulty")
    assert (broken.name, broken.version) == ("faulty", "0.3.1")
    for fragment in BROKEN_CASES[case][2]:
        assert fragment in broken.error
    assert broken.describe().startswith("plugin 'faulty' from nnframe-faulty 0.3.1: ")
    assert_builtins_present(plugins)


def test_a_plugin_missing_a_module_it_imports_is_not_told_to_fix_its_entry_point(site: Site) -> None:
    site.add(FAULTY[0], {"nnframe_faulty": "import nnframe_faulty_dependency\n"},
             entry_points={"faulty": "nnframe_faulty"}, version=FAULTY[1])
    [broken] = broken_of(get_plugin_manager(), "nnframe-faulty")
    assert "No module named 'nnframe_faulty_dependency'" in broken.error and "entry point" not in broken.error


@pytest.mark.parametrize("case", BROKEN_CASES)
@pytest.mark.parametrize("how", ["argument", "environment"])
def test_strict_mode_makes_a_broken_plugin_fatal(site: Site, monkeypatch: pytest.MonkeyPatch,
                                                 case: str, how: str) -> None:
    add_faulty(site, case)
    if how == "environment":
        monkeypatch.setenv("NNFRAME_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError) as caught:
        get_plugin_manager(strict=True if how == "argument" else None)
    message = str(caught.value)
    assert "plugin 'faulty' from nnframe-faulty 0.3.1" in message
    assert "strict" in message
    assert BROKEN_CASES[case][2][0] in message
    assert caught.value.exit_code == 2


def test_strict_mode_names_every_broken_plugin_in_one_error(site: Site) -> None:
    """An import failure and a failing registration hook, in two distributions: both named at once, so fixing one
    does not just reveal the other."""
    add_faulty(site, "import error")
    modules, target, _ = BROKEN_CASES["registration hook raises"]
    site.add("nnframe-other", {"nnframe_other": modules["nnframe_faulty"]}, entry_points={"other": "nnframe_other"},
             version="1.2")
    with pytest.raises(PluginError) as caught:
        get_plugin_manager(strict=True)
    message = str(caught.value)
    assert "plugin 'faulty' from nnframe-faulty 0.3.1: import failed" in message
    assert "plugin 'other' from nnframe-other 1.2: nnframe_register_nodes raised RuntimeError" in message
    assert message.endswith("(strict plugin mode is on)") and message.count("strict") == 1


def test_strict_mode_names_every_broken_plugin_with_plugins_given_and_registers_a_good_one_later(
        site: Site) -> None:
    add_faulty(site, "import error")
    modules, _, _ = BROKEN_CASES["registration hook raises"]
    site.add("nnframe-other", {"nnframe_other": modules["nnframe_faulty"]}, entry_points={"other": "nnframe_other"},
             version="1.2")
    with pytest.raises(PluginError) as caught:
        get_plugin_manager(strict=True, plugins=[("local", LocalScale())])
    assert "nnframe-faulty 0.3.1: import failed" in str(caught.value)
    assert "nnframe-other 1.2: nnframe_register_nodes raised" in str(caught.value)
    plugins = Plugins(strict=True)
    assert plugins.register(LocalScale(), name="scale") is True
    with pytest.raises(PluginError, match="the name 'scale' is taken"):
        plugins.register(LocalScale(), name="scale")
    assert plugins.register(object(), name="good") is True  # not refused for the broken one before it


def test_a_broken_registration_hook_is_reported_once_however_often_registries_rebuild(site: Site) -> None:
    add_faulty(site, "registration hook raises")
    plugins = get_plugin_manager()
    assert len(broken_of(plugins, "nnframe-faulty")) == 1
    assert plugins.register(object(), name="late") is True
    assert_builtins_present(plugins)
    assert len(broken_of(plugins, "nnframe-faulty")) == 1


HALF_BROKEN = node_plugin("scale") + '''

@hookimpl
def nnframe_register_losses():
    {losses}


@hookimpl
def nnframe_run_start(run):
    import pathlib
    pathlib.Path(run.run_dir, "half_broken_ran").write_text("ran")
'''


@pytest.mark.parametrize("losses", ["raise RuntimeError('loss table is corrupt')", "return 'cross_entropy'"])
def test_a_plugin_whose_registration_hook_fails_is_left_out_whole(site: Site, tmp_path: Path, losses: str) -> None:
    """Its other components are not registered and its run hooks never run: a plugin reported broken is not
    half-loaded."""
    site.add("nnframe-half", {"nnframe_half": HALF_BROKEN.replace("{losses}", losses)},
             entry_points={"half": "nnframe_half"}, version="0.2")
    plugins = get_plugin_manager()
    [broken] = broken_of(plugins, "nnframe-half")
    assert "nnframe_register_losses" in broken.error
    assert "scale" not in plugins.nodes.names() and "half" not in plugins.infos
    assert plugins.pm.get_plugin("half") is None
    listed = json.loads(nnframe_cli(site, "plugins", "--json").stdout)
    assert "nnframe-half" not in {row["distribution"] for row in listed["plugins"]}
    assert [row["plugin"] for row in listed["broken"] if row["distribution"] == "nnframe-half"] == ["half"]
    trained = nnframe_cli(site, "train", str(write_config(tmp_path)), "-q", "--runs-dir", str(tmp_path / "runs"))
    assert trained.returncode == 0, trained.stderr
    assert "warning: plugin 'half' from nnframe-half 0.2" in trained.stderr
    assert not list((tmp_path / "runs").rglob("half_broken_ran"))


class LocalScale:
    """A plugin defined in the process (a notebook's), registering node ``scale``."""

    @hookimpl
    def nnframe_register_nodes(self) -> list:
        return [node("scale", Params, lambda params, ctx: None)]


class MisspelledLogger:
    @hookimpl
    def nnframe_step_edn(self, run, metrics) -> None:
        pass


def test_a_broken_plugin_given_in_the_process_is_an_error_not_left_out() -> None:
    with pytest.raises(PluginError) as caught:
        get_plugin_manager(plugins=[("logger", MisspelledLogger())])
    assert str(caught.value) == ("plugin 'logger' from (local): implements unknown hook 'nnframe_step_edn' (did you "
                                 "mean 'nnframe_step_end'?)")


@pytest.mark.parametrize("entry, words", [
    (MisspelledLogger(), "plugins are (name, plugin) pairs, such as [('mine', Mine())]; found <"),
    (("logger",), "plugins are (name, plugin) pairs"),
    (("logger", LocalScale), "plugin 'logger' is the class LocalScale, whose hooks are methods: register an "
                             "instance, ('logger', LocalScale())"),
])
def test_a_plugin_given_in_the_wrong_shape_is_a_type_error_saying_how(entry: object, words: str) -> None:
    with pytest.raises(TypeError) as caught:
        get_plugin_manager(autoload=False, plugins=[entry])
    assert str(caught.value).startswith(words)


def test_a_plugin_of_the_process_named_as_an_installed_one_is_told_to_take_another_name() -> None:
    with pytest.raises(PluginError) as caught:
        get_plugin_manager(plugins=[("nodes", LocalScale())])
    assert str(caught.value) == (f"plugin 'nodes' from (local): the name 'nodes' is taken by the plugin of nnframe "
                                 f"{nnframe.__version__}; register this one under another")


def test_a_plugin_given_as_a_list_pair_is_taken() -> None:
    assert "scale" in get_plugin_manager(autoload=False, plugins=[["scale", LocalScale()]]).nodes


def test_run_experiment_takes_a_plugin_manager_not_a_list(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"^plugins= takes a plugin manager, nnframe.get_plugin_manager\(plugins="
                                        r"\[\(name, plugin\)\]\); found list$"):
        nnframe.run_experiment(write_config(tmp_path), plugins=[("scale", LocalScale())])


def test_misspelled_hook_in_a_local_plugin_is_reported() -> None:
    class Logger:
        @nnframe.hookimpl
        def nnframe_stepend(self, run, metrics):
            pass

    plugins = get_plugin_manager(autoload=False)
    assert plugins.register(Logger(), name="logger") is False
    [broken] = plugins.broken
    assert (broken.name, broken.dist) == ("logger", "(local)")
    assert "unknown hook 'nnframe_stepend' (did you mean 'nnframe_step_end'?)" in broken.error
    assert "logger" not in plugins.infos


@pytest.mark.parametrize("case", ["import error", "registration hook raises", "misspelled hook"])
def test_cli_lists_broken_plugin_and_strict_flag_exits_2(site: Site, case: str) -> None:
    add_faulty(site, case)
    runner = CliRunner()
    assert runner.invoke(app, ["--help"]).exit_code == 0
    listed = runner.invoke(app, ["plugins", "--json"])
    assert listed.exit_code == 0, listed.output
    assert "warning: plugin 'faulty' from nnframe-faulty 0.3.1" in listed.stderr
    report = json.loads(listed.stdout)
    assert [(b["plugin"], b["distribution"], b["version"]) for b in report["broken"]
            if b["distribution"] == "nnframe-faulty"] == [("faulty", "nnframe-faulty", "0.3.1")]
    strict = runner.invoke(app, ["plugins", "--strict-plugins"])
    assert strict.exit_code == 2
    assert "error: plugin 'faulty' from nnframe-faulty 0.3.1" in strict.stderr
    assert "Traceback" not in strict.output


@pytest.mark.parametrize("case", ["import error", "registration hook raises"])
def test_console_script_survives_a_broken_plugin(site: Site, tmp_path: Path, case: str) -> None:
    add_faulty(site, case)
    warning = "warning: plugin 'faulty' from nnframe-faulty 0.3.1"
    helped = nnframe_cli(site, "--help")
    assert helped.returncode == 0 and "plugins" in helped.stdout
    listed = nnframe_cli(site, "plugins")
    assert listed.returncode == 0, listed.stderr
    assert warning in listed.stderr
    assert "nnframe-faulty" in listed.stdout and "affine" in listed.stdout
    config = write_config(tmp_path)
    trained = nnframe_cli(site, "train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q")
    assert trained.returncode == 0, trained.stderr
    assert warning in trained.stderr
    [summary] = (tmp_path / "runs" / "tiny").glob("*/summary.json")
    assert json.loads(summary.read_text())["steps"] == 20


def test_a_plugin_nodes_shape_error_names_its_line(site: Site, tmp_path: Path) -> None:
    """A numpy error in a node's forward on the sample batch is mostly a config's shapes (exit 2), but may be
    the plugin's own bug: its line is named, nnframe's own nodes' never."""
    source = node_plugin("scale").replace("return x * self.factor", "return x * self.factor * np.ones(3)")
    site.add("nnframe-bcast", {"nnframe_bcast": "import numpy as np\n" + source})
    line = next(number for number, text in enumerate(("import numpy as np\n" + source).splitlines(), start=1)
                if "np.ones(3)" in text)
    config = write_config(tmp_path, model=[{"type": "scale"}, {"type": "affine", "out": 3}])
    trained = nnframe_cli(site, "train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q")
    assert trained.returncode == 2, trained.stderr
    assert "node 'scale1' (scale) failed on inputs of shape (2, 2): operands could not be broadcast" in trained.stderr
    assert trained.stderr.rstrip().endswith(
        f" (raised in nnframe_bcast, line {line}, of the plugin distribution nnframe-bcast 1.0); either the config "
        "gives it shapes it does not take, or its forward has a bug there"), trained.stderr
    assert "Traceback" not in trained.stderr
    graph = {"nodes": [{"name": "h", "type": "affine", "out": 4, "inputs": ["x"]},
                       {"name": "y", "type": "add", "inputs": ["h", "x"]}], "output": "y"}
    builtin = nnframe_cli(site, "train", str(write_config(tmp_path, model=graph)), "-q",
                          "--runs-dir", str(tmp_path / "runs"))
    assert builtin.returncode == 2, builtin.stderr
    assert "node 'y' (add) does not accept inputs of shape" in builtin.stderr
    assert builtin.stderr.rstrip().endswith("must be equal or 1 in one of them"), builtin.stderr


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_console_script_strict_mode_exits_2_naming_the_plugin(site: Site, tmp_path: Path, how: str) -> None:
    add_faulty(site, "import error")
    flags, env = (["--strict-plugins"], None) if how == "flag" else ([], {"NNFRAME_STRICT_PLUGINS": "1"})
    config = write_config(tmp_path)
    for args in (["plugins", *flags], ["train", str(config), "--runs-dir", str(tmp_path / "runs"), *flags]):
        result = nnframe_cli(site, *args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert "error: plugin 'faulty' from nnframe-faulty 0.3.1: import failed" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------- collisions


def test_two_distributions_registering_one_name_is_an_error_naming_both(site: Site) -> None:
    site.add("nnframe-alpha", {"nnframe_alpha": node_plugin("scale")}, version="1.0")
    site.add("nnframe-beta", {"nnframe_beta": node_plugin("scale", factor=3.0)}, version="2.0")
    with pytest.raises(PluginError) as caught:
        get_plugin_manager()
    message = str(caught.value)
    assert "two plugins register the node 'scale'" in message
    assert "nnframe-alpha 1.0" in message and "nnframe-beta 2.0" in message


def test_two_entry_points_of_one_distribution_registering_one_name_are_told_to_rename(site: Site) -> None:
    site.add("nnframe-twice", {"nnframe_first": node_plugin("scale"), "nnframe_second": node_plugin("scale")},
             entry_points={"first": "nnframe_first", "second": "nnframe_second"}, version="0.1")
    with pytest.raises(PluginError) as caught:
        get_plugin_manager()
    message = str(caught.value)
    assert "two plugins register the node 'scale'" in message
    assert message.endswith("register one of them under another name") and "uninstall" not in message


def test_a_plugin_reusing_a_builtin_name_is_an_error_naming_nnframe(site: Site) -> None:
    site.add("nnframe-gamma", {"nnframe_gamma": node_plugin("affine")}, version="0.5")
    with pytest.raises(PluginError) as caught:
        get_plugin_manager()
    message = str(caught.value)
    assert "'affine'" in message
    assert f"nnframe {nnframe.__version__}" in message and "nnframe-gamma 0.5" in message
    assert message.endswith("'affine' is one of nnframe's own, so nnframe-gamma must register its node under "
                            "another name")


def test_a_clash_between_plugins_of_the_process_says_to_rename_one() -> None:
    with pytest.raises(PluginError) as caught:
        get_plugin_manager(autoload=False, plugins=[("first", LocalScale()), ("second", LocalScale())])
    assert str(caught.value) == ("two plugins register the node 'scale': (local) (plugin 'first') and (local) "
                                 "(plugin 'second'); register one of them under another name")


def test_one_name_in_two_kinds_is_not_a_collision(site: Site) -> None:
    source = node_plugin("sgd")
    site.add("nnframe-delta", {"nnframe_delta": source})
    plugins = get_plugin_manager()
    assert plugins.nodes.plugin_of("sgd").dist == "nnframe-delta"
    assert plugins.optimizers.plugin_of("sgd").dist == "nnframe"


def test_collision_is_a_clean_cli_error(site: Site) -> None:
    site.add("nnframe-alpha", {"nnframe_alpha": node_plugin("scale")}, version="1.0")
    site.add("nnframe-beta", {"nnframe_beta": node_plugin("scale")}, version="2.0")
    result = CliRunner().invoke(app, ["plugins"])
    assert result.exit_code == 2
    assert "nnframe-alpha 1.0" in result.stderr and "nnframe-beta 2.0" in result.stderr
    script = nnframe_cli(site, "plugins", "--json")
    assert script.returncode == 2
    assert "two plugins register the node 'scale'" in script.stderr
    assert "Traceback" not in script.stderr
    listed = json.loads(script.stdout)  # still listed: the command that shows what is installed must not stop
    assert any(row["name"] == "affine" and not row["clash"] for row in listed["components"])
    scales = [(row["distribution"], row["clash"]) for row in listed["components"] if row["name"] == "scale"]
    assert sorted(scales) == [("nnframe-alpha", True), ("nnframe-beta", True)]  # both, not one in effect
    assert listed["clashes"] == [script.stderr.removeprefix("error: ").strip()]


def test_every_collision_is_named_at_once(site: Site) -> None:
    site.add("nnframe-alpha", {"nnframe_alpha": node_plugin("scale")}, version="1.0")
    site.add("nnframe-beta", {"nnframe_beta": node_plugin("scale")}, version="2.0")
    site.add("nnframe-gamma", {"nnframe_gamma": node_plugin("affine")}, version="0.5")
    with pytest.raises(PluginError) as caught:
        get_plugin_manager()
    assert "the node 'scale'" in str(caught.value) and "the node 'affine'" in str(caught.value)


# ------------------------------------------------------------ unknown names

UNKNOWN_CASES = [
    ("node", "afine", "affine"),
    ("loss", "softmax_crossentropy", "softmax_cross_entropy"),
    ("optimizer", "adma", "adam"),
    ("dataset", "spirals", "spiral"),
]


@pytest.mark.parametrize("kind,wrong,meant", UNKNOWN_CASES)
def test_unknown_name_lists_available_names_and_the_close_match(kind: str, wrong: str, meant: str) -> None:
    registry = get_plugin_manager().registry(kind)
    with pytest.raises(UnknownComponentError) as caught:
        registry.get(wrong)
    message = str(caught.value)
    assert message.startswith(f"unknown {kind} type {wrong!r}; available: {', '.join(registry.names())} ")
    assert f"(did you mean {meant!r}?)" in message
    assert "a plugin may be missing (see `nnframe plugins`)" in message
    assert caught.value.exit_code == 2


CONFIG_UNKNOWN_CASES = [
    ("node", "model[1].type", {"model": [{"type": "affine", "out": 4}, {"type": "sigmod"}]}, "sigmoid"),
    ("loss", "loss.type", {"loss": {"type": "softmax_crossentropy"}}, "softmax_cross_entropy"),
    ("optimizer", "optimizer.type", {"optimizer": {"type": "adma", "lr": 0.1}}, "adam"),
    ("dataset", "data.type", {"data": {"type": "spirals"}}, "spiral"),
]


@pytest.mark.parametrize("kind,field,sections,meant", CONFIG_UNKNOWN_CASES)
def test_unknown_name_in_a_config_names_field_available_names_and_plugins_hint(
        tmp_path: Path, kind: str, field: str, sections: dict, meant: str) -> None:
    plugins = get_plugin_manager()
    path = write_config(tmp_path, **sections)
    with pytest.raises(ConfigError) as caught:
        load_experiment(path, [], plugins)
    message = str(caught.value)
    assert f"field {field}" in message and str(path) in message
    assert f"available: {', '.join(plugins.registry(kind).names())}" in message
    assert f"(did you mean {meant!r}?)" in message
    assert "a plugin may be missing (see `nnframe plugins`)" in message


def test_a_config_using_a_plugin_component_needs_its_distribution(site: Site, tmp_path: Path) -> None:
    path = write_config(tmp_path, model=[{"type": "scale", "factor": 0.5}, {"type": "affine", "out": 3}])
    missing = CliRunner().invoke(app, ["validate", str(path)])
    assert missing.exit_code == 2
    assert "unknown type 'scale'" in missing.stderr and "see `nnframe plugins`" in missing.stderr
    site.add("nnframe-scale", {"nnframe_scale": node_plugin("scale")})
    found = CliRunner().invoke(app, ["validate", str(path)])
    assert found.exit_code == 0, found.output
    assert yaml.safe_load(found.stdout)["model"][0] == {"type": "scale", "name": None, "inputs": None, "factor": 0.5}


# ------------------------------------------------- every registered component

ALL_COMPONENTS = [(kind, name) for kind in KINDS for name in get_plugin_manager().registry(kind).names()]


@pytest.fixture(scope="module")
def schema_types() -> dict[str, list[str]]:
    """The ``type`` constants of each component section in the JSON Schema, by arm title suffix."""
    schema = ConfigModels(get_plugin_manager()).json_schema()
    return type_constants(schema)


def type_constants(schema: dict) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for title, definition in schema.get("$defs", {}).items():
        const = definition.get("properties", {}).get("type", {}).get("const")
        if const is not None:
            suffix = next((s for s in ("Node", "Loss", "Optimizer", "Data", "Callback", "Schedule")
                           if title.endswith(s)), title)
            found.setdefault(suffix, []).append(const)
    return found


SCHEMA_SECTION = {"node": "Node", "loss": "Loss", "optimizer": "Optimizer", "dataset": "Data", "callback": "Callback",
                  "schedule": "Schedule"}


@pytest.mark.parametrize("kind,name", ALL_COMPONENTS)
def test_every_registered_component_declares_params_summary_and_schema(
        kind: str, name: str, schema_types: dict[str, list[str]]) -> None:
    component = get_plugin_manager().registry(kind).get(name)
    assert (component.name, component.kind) == (name, kind)
    assert issubclass(component.params, Params)
    assert component.params.model_config.get("extra") == "forbid"
    assert component.summary().strip()
    assert schema_types[SCHEMA_SECTION[kind]].count(name) == 1


def test_a_summary_is_the_first_paragraph_of_a_docstring_on_one_line() -> None:
    def build(params: Params) -> None:
        """Sigmoid + binary cross-entropy; targets shaped like the
        scores.

        Details that the listing leaves out.
        """

    assert loss("sce", Params, build).summary() == "Sigmoid + binary cross-entropy; targets shaped like the scores."
    sigmoid_ce = get_plugin_manager().losses.get("sigmoid_cross_entropy").summary()
    assert sigmoid_ce.endswith(".") and "\n" not in sigmoid_ce  # not cut where its docstring's first line ends


def test_builtin_components_are_in_the_table_driven_check() -> None:
    for kind, names in BUILTIN_NAMES.items():
        assert {(kind, name) for name in names} <= set(ALL_COMPONENTS)


def test_a_plugin_extends_the_schema(site: Site) -> None:
    before = CliRunner().invoke(app, ["schema"])
    assert before.exit_code == 0
    assert "scale" not in type_constants(json.loads(before.stdout)).get("Node", [])
    site.add("nnframe-scale", {"nnframe_scale": node_plugin("scale")})
    after = CliRunner().invoke(app, ["schema"])
    assert after.exit_code == 0, after.output
    schema = json.loads(after.stdout)
    assert type_constants(schema)["Node"].count("scale") == 1
    assert schema["$defs"]["ScaleNode"]["properties"]["factor"]["default"] == 2.0
    script = nnframe_cli(site, "schema")
    assert script.returncode == 0, script.stderr
    assert json.loads(script.stdout) == schema


class _LeftToTheModel(Params):
    """A default the model's own validator turns into the field's type, as pydantic allows."""

    model_config = {"validate_default": True}
    sizes: tuple[int, ...] = "1,2"

    @pydantic.field_validator("sizes", mode="before")
    @classmethod
    def _split(cls, value):
        return tuple(int(part) for part in value.split(",")) if isinstance(value, str) else value


class _UnsetByNone(Params):
    """The old idiom: None for "unset" under a plain type; and a field read under another name."""

    seed: int = None
    rate: float = pydantic.Field(0.5, validation_alias="learning_rate")


class _DefaultsPlugin:
    @nnframe.hookimpl
    def nnframe_register_nodes(self):
        from nnframe.components import node

        return [node("left_to_model", _LeftToTheModel, lambda params, ctx: None),
                node("unset_by_none", _UnsetByNone, lambda params, ctx: None)]


def test_defaults_left_to_the_models_validators_or_none_are_not_refused():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins = get_plugin_manager(autoload=False, plugins=[("defaults", _DefaultsPlugin())])
    assert not caught  # a default its validator converts is written without a serializer's warning
    assert not plugins.broken
    assert {"left_to_model", "unset_by_none"} <= set(plugins.nodes.names())
    assert _LeftToTheModel().sizes == (1, 2)



BAD_RUN_OBJECT = """
from nnframe import hookimpl


class CsvLogger:
    @hookimpl
    def nnframe_step_ned(self, run, metrics):
        pass


@hookimpl
def nnframe_configure_run(run):
    run.register(CsvLogger())
"""


def test_a_per_run_object_registered_wrongly_names_its_distribution(site: Site, tmp_path: Path) -> None:
    site.add("nnframe-csvlog", {"csvlog_plugin": BAD_RUN_OBJECT}, version="0.3")
    spiral = Path(__file__).resolve().parents[1] / "experiments" / "spiral.yaml"
    done = nnframe_cli(site, "train", str(spiral), "train.epochs=1", "--runs-dir", str(tmp_path / "runs"), "-q")
    assert done.returncode == 2, done.stderr
    assert ("run plugin csvlog_plugin.CsvLogger (from nnframe-csvlog 0.3) implements unknown hook "
            "'nnframe_step_ned'") in done.stderr


def test_a_plugin_in_a_group_named_like_nnframes_is_pointed_out_by_nnframe_plugins(site: Site) -> None:
    site.add("nnframe-misgrouped", {"nnframe_misgrouped": node_plugin("scale")}, version="0.2",
             group="nnframe.plugins")
    assert "scale" not in get_plugin_manager().nodes  # never read, so it must be said
    listed = nnframe_cli(site, "plugins")
    assert listed.returncode == 0, listed.stderr
    assert ("warning: nnframe-misgrouped 0.2 declares entry points in the group 'nnframe.plugins', which nnframe "
            "does not read; plugins go under [project.entry-points.nnframe]") in listed.stderr


def test_the_plugin_fixture_warns_of_each_plugin_it_left_out(site: Site) -> None:
    from nnframe.testing import plugins_for_a_test

    add_faulty(site, "hook returns one component, not a list")
    with pytest.warns(UserWarning, match=r"^nnframe: plugin 'faulty' from nnframe-faulty 0.3.1: "
                                         r"nnframe_register_nodes returned the node 'scale' itself"):
        plugins = plugins_for_a_test()
    assert "scale" not in plugins.nodes


def test_a_misspelled_group_is_pointed_out_once(site: Site, tmp_path: Path) -> None:
    info = site.add("nnframe-typo", {"nnframe_typo": node_plugin("scale")}, version="0.4", group="nnfrane")
    egg_info = tmp_path / "nnframe_typo.egg-info"  # what building it leaves in its source folder
    egg_info.mkdir()
    (egg_info / "PKG-INFO").write_text((info / "METADATA").read_text(encoding="utf-8"), encoding="utf-8")
    shutil.copy(info / "entry_points.txt", egg_info)
    twice = os.pathsep.join([str(site.root), str(tmp_path)])  # one install found twice on the path
    listed = nnframe_cli(site, "plugins", env={"PYTHONPATH": twice})
    assert listed.returncode == 0, listed.stderr
    warning = ("warning: nnframe-typo 0.4 declares entry points in the group 'nnfrane', which nnframe does not "
               "read; plugins go under [project.entry-points.nnframe]")
    assert listed.stderr.count(warning) == 1, listed.stderr


class _NoRule(nnframe.Optimizer):
    slots = ("velocity",)


class _NoBackward(nnframe.Loss):
    def forward(self, x, t):
        return 0.0


class _NoForward(nnframe.Node):
    pass


class _NoRate(nnframe.Schedule):
    pass


@pytest.mark.parametrize(("call", "message"), [
    (lambda: _NoRule(lr=0.1).update([np.ones(3)], [np.ones(3)]),
     r"test_plugins\._NoRule does not define _update_one\(p, g, tmp, velocity\), its update rule; a subclass of "
     r"nnframe\.Optimizer must"),
    (lambda: _NoBackward().backward(1.0), r"_NoBackward does not define backward\(dout\); a subclass of nnframe.Loss"),
    (lambda: _NoForward().forward(np.ones(2)), r"_NoForward does not define forward\(x\); a subclass of nnframe.Node"),
    (lambda: _NoRate().rate_after_warmup(1, 0.1, 10), r"_NoRate does not define rate_after_warmup\(step, base_lr, "
                                                       r"total_steps\); a subclass of nnframe.Schedule must"),
])
def test_a_subclass_missing_the_method_it_must_write_is_told_which(call, message: str) -> None:
    with pytest.raises(NotImplementedError, match=message):
        call()


def test_a_loss_plugin_without_backward_is_named_at_build() -> None:
    class Plugin:
        @nnframe.hookimpl
        def nnframe_register_losses(self):
            return [loss("no_backward", nnframe.Params, lambda params: _NoBackward())]

    plugins = get_plugin_manager(plugins=[("no-backward", Plugin())])
    config = {**TINY_CONFIG, "loss": {"type": "no_backward"}}
    with pytest.raises(NotImplementedError, match=r"_NoBackward does not define backward\(dout\)"):
        nnframe.prepare_experiment(config, plugins=plugins)

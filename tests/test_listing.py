"""``nnframe plugins``: every component by kind with its plugin and distribution, and broken plugins."""

from __future__ import annotations

import io
import json
import subprocess

import pytest
from rich.console import Console
from typer.testing import CliRunner

import nnframe
from fixtures.console import NNFRAME
from fixtures.distributions import Site
from fixtures.sources import RAISING_HOOK, node_plugin
from nnframe.cli import app
from nnframe.components import KINDS
from nnframe.listing import component_rows, plugin_rows, plugins_json, plugins_table
from nnframe.plugins import BrokenPlugin, get_plugin_manager

ROW_KEYS = {"kind", "name", "params", "summary", "plugin", "distribution", "version", "clash"}
SCALE_ROW = {
    "kind": "node",
    "name": "scale",
    "params": ["factor"],
    "summary": "Multiply the input by a constant factor.",
    "plugin": "scaling",
    "distribution": "nnframe-scale",
    "version": "0.2.0",
    "clash": False,
}
FAULTY_ROW = {
    "plugin": "faulty",
    "distribution": "nnframe-faulty",
    "version": "0.3.1",
    "error": "nnframe_register_nodes raised RuntimeError: layer table is corrupt (raised in nnframe_faulty, line 7)",
}


@pytest.fixture
def third_party(site: Site) -> Site:
    """One working plugin distribution and one whose registration hook raises."""
    site.add("nnframe-scale", {"nnframe_scale": node_plugin("scale")}, entry_points={"scaling": "nnframe_scale"},
             version="0.2.0")
    site.add("nnframe-faulty", {"nnframe_faulty": RAISING_HOOK}, entry_points={"faulty": "nnframe_faulty"},
             version="0.3.1")
    return site


def render(renderable: object, width: int = 250) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_component_rows_cover_every_registry_in_kind_then_name_order() -> None:
    plugins = get_plugin_manager()
    rows = component_rows(plugins)
    assert all(set(row) == ROW_KEYS for row in rows)
    assert [(row["kind"], row["name"]) for row in rows] == [
        (kind, name) for kind in KINDS for name in plugins.registry(kind).names()]


def test_builtin_rows_name_their_entry_point_and_nnframe() -> None:
    rows = {(row["kind"], row["name"]): row for row in component_rows(get_plugin_manager())}
    affine = rows[("node", "affine")]
    assert (affine["plugin"], affine["distribution"], affine["version"]) == ("nodes", "nnframe", nnframe.__version__)
    assert rows[("optimizer", "adam")]["plugin"] == "optimizers"
    assert rows[("loss", "mse")]["plugin"] == "losses"
    assert rows[("dataset", "spiral")]["plugin"] == "datasets"
    assert "lr" in rows[("optimizer", "sgd")]["params"]


def test_plugin_rows_and_broken_plugins_in_json(third_party: Site) -> None:
    report = plugins_json(get_plugin_manager())
    assert set(report) == {"components", "plugins", "broken", "clashes"}
    assert SCALE_ROW in report["components"]
    assert {"plugin": "scaling", "distribution": "nnframe-scale", "version": "0.2.0",
            "hooks": ["nnframe_register_nodes"]} in report["plugins"]
    assert [item for item in report["broken"] if item["distribution"] == "nnframe-faulty"] == [FAULTY_ROW]


def test_table_shows_components_origins_and_broken_plugins(third_party: Site) -> None:
    plugins = get_plugin_manager()
    text = render(plugins_table(plugins))
    for row in component_rows(plugins):
        assert row["name"] in text
        assert f"{row['distribution']} {row['version']}" in text
    line = next(line for line in text.splitlines() if "│ scale " in line)
    assert all(cell in line for cell in ("node", "factor", "scaling", "nnframe-scale 0.2.0", "Multiply the input"))
    assert "broken plugins" in text
    assert "layer table is corrupt" in text and "nnframe-faulty 0.3.1" in text


def test_table_without_broken_plugins_has_no_broken_section() -> None:
    plugins = get_plugin_manager()
    plugins.broken.clear()
    assert "broken plugins" not in render(plugins_table(plugins))


def test_a_broken_plugins_error_with_brackets_is_shown_as_it_is() -> None:
    plugins = get_plugin_manager()
    plugins.broken.append(BrokenPlugin("odd", "nnframe-odd", "1.0", "KeyError: ['bold'] [red]missing[/red]"))
    assert "KeyError: ['bold'] [red]missing[/red]" in render(plugins_table(plugins), width=200)


def test_narrow_table_folds_names_instead_of_cutting_them(third_party: Site) -> None:
    text = render(plugins_table(get_plugin_manager()), width=80)
    cells = [line.split("│")[1:6] for line in text.splitlines() if line.count("│") == 7]
    assert cells
    assert not [cell for row in cells for cell in row if "…" in cell]


def test_cli_json_matches_the_library(third_party: Site) -> None:
    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == plugins_json(get_plugin_manager())


def test_cli_table_lists_every_component(third_party: Site) -> None:
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, ["plugins"])
    assert result.exit_code == 0, result.output
    for row in component_rows(get_plugin_manager()):
        assert row["name"] in result.stdout
    assert "nnframe-scale 0.2.0" in result.stdout
    assert "layer table is corrupt" in result.stdout
    assert "warning: plugin 'faulty' from nnframe-faulty 0.3.1" in result.stderr


def test_console_script_lists_plugins_as_table_and_json(third_party: Site) -> None:
    table = subprocess.run([NNFRAME, "plugins"], env=third_party.env(), capture_output=True, text=True,
                           timeout=120)
    assert table.returncode == 0, table.stderr
    assert "nnframe-scale 0.2.0" in table.stdout and "layer table is corrupt" in table.stdout
    as_json = subprocess.run([NNFRAME, "plugins", "--json"], env=third_party.env(), capture_output=True,
                             text=True, timeout=120)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert SCALE_ROW in report["components"]
    assert FAULTY_ROW in report["broken"]
    names = {(row["kind"], row["name"]) for row in report["components"] if row["distribution"] == "nnframe"}
    assert ("node", "affine") in names and ("dataset", "spiral") in names


def test_console_script_with_autoload_off_lists_nothing(third_party: Site) -> None:
    env = {**third_party.env(), "NNFRAME_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run([NNFRAME, "plugins", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"components": [], "plugins": [], "broken": [], "clashes": []}


LOGGER_PLUGIN = """
from nnframe import hookimpl


@hookimpl
def nnframe_run_end(run, status, summary):
    pass
"""


def test_a_plugin_without_components_is_listed_with_its_hooks(site: Site) -> None:
    site.add("nnframe-notify", {"nnframe_notify": LOGGER_PLUGIN}, entry_points={"notify": "nnframe_notify"},
             version="1.0")
    plugins = get_plugin_manager()
    rows = {row["plugin"]: row for row in plugin_rows(plugins)}
    assert rows["notify"] == {"plugin": "notify", "distribution": "nnframe-notify", "version": "1.0",
                              "hooks": ["nnframe_run_end"]}
    assert rows["tensorboard"]["hooks"] == ["nnframe_configure_run"]
    line = next(line for line in render(plugins_table(plugins)).splitlines() if "│ notify " in line)
    assert "nnframe-notify 1.0" in line and "run_end" in line


def test_a_dataset_lists_the_fields_every_dataset_section_takes():
    from nnframe import Params
    from nnframe.listing import _params_of

    class OwnParams(Params):
        """A plugin dataset's params that do not subclass DatasetParams."""

        n: int = 3

    assert _params_of("dataset", OwnParams) == ["val_fraction", "standardize", "n"]
    assert _params_of("loss", OwnParams) == ["n"]

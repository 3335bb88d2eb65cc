"""What ``nnframe plugins`` shows: every component by kind with its origin, every plugin with its hooks, broken plugins.

A plugin that registers no component (a logger, say) shows only in the
plugins table, with the hooks it implements.
"""

from __future__ import annotations

from typing import Any

from nnframe.components import KINDS
from nnframe.data import shared_fields
from nnframe.plugins import Plugins


def component_rows(plugins: Plugins) -> list[dict[str, Any]]:
    """One row per registered component: kind, name, parameters, summary, where it comes from, and whether
    another plugin registers the same name (each registration is listed then)."""
    rows = []
    for kind in KINDS:
        registry = plugins.registry(kind)
        clashing = {entry.component.name for entry in registry.shadowed}
        entries = sorted([*registry.entries.values(), *registry.shadowed], key=lambda entry: entry.component.name)
        for entry in entries:
            component, origin = entry.component, entry.plugin
            rows.append({
                "kind": kind,
                "name": component.name,
                "params": _params_of(kind, component.params),
                "summary": component.summary(),
                "plugin": origin.name,
                "distribution": origin.dist,
                "version": origin.version,
                "clash": component.name in clashing,
            })
    return rows


def _params_of(kind: str, params: type[Any]) -> list[str]:
    """A component's parameters as its config section takes them: a dataset's with ``val_fraction`` and
    ``standardize``, which every dataset takes; a schedule's ``type`` left out."""
    shared = list(shared_fields(params)) if kind == "dataset" else []
    return shared + [name for name in params.model_fields if name != "type"]


def plugin_rows(plugins: Plugins) -> list[dict[str, Any]]:
    """One row per loaded plugin, by name: its distribution, version and the hooks it implements."""
    rows = []
    for name, info in sorted(plugins.infos.items()):
        plugin = plugins.pm.get_plugin(name)
        hooks = sorted(caller.name for caller in plugins.pm.get_hookcallers(plugin) or [])
        rows.append({"plugin": name, "distribution": info.dist, "version": info.version, "hooks": hooks})
    return rows


def plugins_json(plugins: Plugins) -> dict[str, Any]:
    """``nnframe plugins --json``: every component row, every plugin row, and every broken plugin with its error."""
    components = component_rows(plugins)
    return {
        "components": components,
        "plugins": plugin_rows(plugins),
        "broken": [{"plugin": b.name, "distribution": b.dist, "version": b.version, "error": b.error}
                   for b in plugins.broken],
        "clashes": plugins.clashes,
    }


def plugins_table(plugins: Plugins) -> Any:
    """A rich renderable: the components table, the plugins table, then the broken plugins if any."""
    from rich.console import Group

    tables = [_components_table(component_rows(plugins)), _plugins_table(plugin_rows(plugins))]
    if plugins.broken:
        tables.append(_broken_table(plugins))
    return Group(*tables)


def _components_table(rows: list[dict[str, Any]]) -> Any:
    """One row per component, a section per kind; names fold rather than being cut off."""
    from rich.table import Table

    table = Table(title="nnframe components")
    for column in ("kind", "name", "parameters", "plugin", "distribution"):
        table.add_column(column, overflow="fold")
    table.add_column("summary")
    for position, row in enumerate(rows):
        if position and row["kind"] != rows[position - 1]["kind"]:
            table.add_section()
        name = f"{row['name']} (registered twice)" if row["clash"] else row["name"]
        _add_text_row(table, row["kind"], name, ", ".join(row["params"]), row["plugin"],
                      f"{row['distribution']} {row['version']}".strip(), row["summary"])
    return table


def _plugins_table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="nnframe plugins")
    for column in ("plugin", "distribution", "hooks"):
        table.add_column(column, overflow="fold", min_width=len(column))
    for row in rows:
        hooks = ", ".join(hook.removeprefix("nnframe_") for hook in row["hooks"])
        _add_text_row(table, row["plugin"], f"{row['distribution']} {row['version']}".strip(), hooks)
    return table


def _broken_table(plugins: Plugins) -> Any:
    from rich.table import Table

    table = Table(title="broken plugins", style="red")
    for column in ("plugin", "distribution", "error"):
        table.add_column(column, overflow="fold")
    for item in plugins.broken:
        _add_text_row(table, item.name, f"{item.dist} {item.version}".strip(), item.error)
    return table


def _add_text_row(table: Any, *cells: str) -> None:
    """Cells as plain text: a plugin's docstring or error with brackets (``KeyError: ['x']``) is not rich markup."""
    from rich.text import Text

    table.add_row(*map(Text, cells))

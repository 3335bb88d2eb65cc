"""What ``nnframe plugins`` shows: every component by kind with its origin, and broken plugins."""

from __future__ import annotations

from typing import Any

from nnframe.components import KINDS
from nnframe.plugins import Plugins


def component_rows(plugins: Plugins) -> list[dict[str, Any]]:
    """One row per registered component: kind, name, parameters, summary and where it comes from."""
    rows = []
    for kind in KINDS:
        registry = plugins.registry(kind)
        for component in registry:
            origin = registry.plugin_of(component.name)
            rows.append({
                "kind": kind,
                "name": component.name,
                "params": list(component.params.model_fields),
                "summary": component.summary(),
                "plugin": origin.name,
                "distribution": origin.dist,
                "version": origin.version,
            })
    return rows


def plugins_json(plugins: Plugins) -> dict[str, Any]:
    components = component_rows(plugins)
    return {
        "components": components,
        "broken": [{"plugin": b.name, "distribution": b.dist, "version": b.version, "error": b.error}
                   for b in plugins.broken],
    }


def plugins_table(plugins: Plugins) -> Any:
    """A rich renderable: the components table, then the broken plugins if any."""
    from rich.console import Group
    from rich.table import Table

    table = Table(title="nnframe components")
    for column in ("kind", "name", "parameters", "distribution", "summary"):
        table.add_column(column)
    for row in component_rows(plugins):
        table.add_row(row["kind"], row["name"], ", ".join(row["params"]),
                      f"{row['distribution']} {row['version']}".strip(), row["summary"])
    if not plugins.broken:
        return table
    broken = Table(title="broken plugins", style="red")
    for column in ("plugin", "distribution", "error"):
        broken.add_column(column)
    for item in plugins.broken:
        broken.add_row(item.name, f"{item.dist} {item.version}".strip(), item.error)
    return Group(table, broken)

"""Which installed plugin distribution a module comes from, read from the entry points that register plugins.

Errors name the distribution to tell about a bug: a plugin's exception, a
per-run object registered wrongly.
"""

from __future__ import annotations

from importlib import metadata

GROUP = "nnframe"
SELF_DIST = "nnframe"


def plugin_packages(group: str = GROUP) -> dict[str, tuple[str, str]]:
    """Top-level package -> ``(distribution, version)`` of every plugin registered under ``group``, nnframe's
    own left out."""
    packages: dict[str, tuple[str, str]] = {}
    for ep in metadata.entry_points(group=group):
        top = ep.module.split(".")[0]
        if ep.dist is not None and ep.dist.name != SELF_DIST and top != SELF_DIST:
            packages.setdefault(top, (ep.dist.name, ep.dist.version))
    return packages


def distribution_of(module: str, group: str = GROUP) -> str | None:
    """``"my-package 0.1"`` for a module of a plugin distribution, else None."""
    found = plugin_packages(group).get(module.split(".")[0])
    return f"{found[0]} {found[1]}" if found else None


def near_miss_groups(group: str = GROUP) -> list[str]:
    """``"my-package 0.1 declares ... 'nnframe.plugins' ..."`` for each distribution whose entry points sit in a
    group named like nnframe's but not it, which nnframe never reads: a plugin that silently is not there."""
    found = []
    for dist in metadata.distributions():
        if not dist.metadata["Name"]:  # a broken install: nothing to name
            continue
        groups = sorted({ep.group for ep in dist.entry_points if ep.group != group and _like(ep.group, group)})
        for near in groups:
            found.append(f"{dist.metadata['Name']} {dist.version} declares entry points in the group {near!r}, "
                         f"which nnframe does not read; plugins go under [project.entry-points.{group}]")
    return found


def _like(name: str, group: str) -> bool:
    folded = name.lower().replace("-", "_").replace(".", "_")
    return folded == group or folded.startswith(f"{group}_")

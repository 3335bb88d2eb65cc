"""Which installed plugin distribution a module comes from, read from the entry points that register plugins.

Errors name the distribution to tell about a bug: a plugin's exception, a
per-run object registered wrongly.
"""

from __future__ import annotations

import difflib
from importlib import metadata

GROUP = "nnframe"
SELF_DIST = "nnframe"
NEAR_GROUP_RATIO = 0.85
"""How alike a group's name must be to ``nnframe`` to be taken for a misspelling of it (``nnfrane``: 0.86)."""


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
    found: dict[tuple[str, str, str], str] = {}  # a distribution found twice on the path is told once
    for dist in metadata.distributions():
        if not dist.metadata["Name"]:  # a broken install: nothing to name
            continue
        groups = sorted({ep.group for ep in dist.entry_points if ep.group != group and _like(ep.group, group)})
        for near in groups:
            found[dist.metadata["Name"], dist.version, near] = (
                f"{dist.metadata['Name']} {dist.version} declares entry points in the group {near!r}, which nnframe "
                f"does not read; plugins go under [project.entry-points.{group}]")
    return list(found.values())


def _like(name: str, group: str) -> bool:
    """``nnframe.plugins``, ``nnframe_plugins``, ``nnframes``, ``nnfrane``: a group meant to be ``group``."""
    folded = name.lower().replace("-", "_").replace(".", "_")
    return (folded == group or folded.startswith(f"{group}_")
            or difflib.SequenceMatcher(None, folded, group).ratio() >= NEAR_GROUP_RATIO)

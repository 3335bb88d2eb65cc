"""What is wrong with a plugin's hook implementations, found when it is registered.

pluggy registers every function carrying the ``nnframe`` hookimpl mark and
ignores the rest, so two mistakes would pass in silence: a marked function
whose name is no hook (``nnframe_step_ned``), which nothing calls, and a
function named like a hook but left unmarked, which pluggy never sees. Both
are reported with the hook names they were probably meant to be.
"""

from __future__ import annotations

import inspect
from typing import Any

import pluggy

from nnframe import hookspecs
from nnframe.errors import close_match, did_you_mean

HOOK_PREFIX = "nnframe_"
IMPL_MARK = "nnframe_impl"
"""The attribute pluggy's ``HookimplMarker("nnframe")`` sets on a marked function."""


def hook_names() -> list[str]:
    """Every hook nnframe calls."""
    return [name for name in dir(hookspecs) if name.startswith(HOOK_PREFIX)]


def hook_problems(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Unknown hook names among ``plugin``'s registered implementations, and hook-named functions left unmarked."""
    known = hook_names()
    unknown = [caller.name for caller in pm.get_hookcallers(plugin) or [] if not caller.has_spec()]
    problems = [f"implements unknown hook {name!r}{did_you_mean(close_match(name, known))}" for name in unknown]
    problems += [f"defines {name} without @nnframe.hookimpl, so nnframe never calls it; mark it"
                 for name in unmarked_hooks(plugin)]
    return problems + methods_without_self(pm, plugin)


def methods_without_self(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Hook methods whose first parameter is one of the hook's arguments, not ``self``.

    pluggy binds the object to that parameter and calls the method with the
    rest, so ``def nnframe_run_start(run)`` gets the object as ``run``, and
    fails on the first use of it, or runs on in silence.
    """
    problems = []
    for caller in pm.get_hookcallers(plugin) or []:
        method = getattr(plugin, caller.name, None)
        if caller.spec is None or not inspect.ismethod(method) or method.__self__ is not plugin:
            continue
        try:
            first = next(iter(inspect.signature(method.__func__).parameters), None)
        except (TypeError, ValueError):
            continue
        if first in caller.spec.argnames:
            problems.append(f"implements {caller.name} with {first!r} first, where a method takes self, so it "
                            f"would get the object itself as {first!r}; write "
                            f"def {caller.name}(self, {', '.join(caller.spec.argnames)})")
    return problems


def unmarked_hooks(plugin: object) -> list[str]:
    """Functions of ``plugin`` named ``nnframe_*`` that carry no hookimpl mark."""
    names = []
    for name in dir(plugin):
        if name.startswith(HOOK_PREFIX):
            value: Any = getattr(plugin, name, None)
            if callable(value) and getattr(value, IMPL_MARK, None) is None:
                names.append(name)
    return names

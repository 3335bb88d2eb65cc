"""What is wrong with a plugin's hook implementations, found before it is registered.

pluggy registers every function carrying the ``nnframe`` hookimpl mark and
ignores the rest, so two mistakes would pass in silence: a marked function
whose name is no hook (``nnframe_step_ned``), which nothing calls, and a
function named like a hook but left unmarked, which pluggy never sees. Both
are reported with the hook names they were probably meant to be. An argument
the hook does not give (``metric`` for ``metrics``) pluggy refuses, in a
message of its own that names neither the right arguments nor a close match,
and only after the first such function; here every problem is listed at once.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from nnframe import hookspecs
from nnframe.errors import close_match, did_you_mean

HOOK_PREFIX = "nnframe_"
IMPL_MARK = "nnframe_impl"
"""The attribute pluggy's ``HookimplMarker("nnframe")`` sets on a marked function."""


def hook_names() -> list[str]:
    """Every hook nnframe calls."""
    return [name for name in dir(hookspecs) if name.startswith(HOOK_PREFIX)]


def hook_problems(plugin: object) -> list[str]:
    """Everything wrong with ``plugin``'s hook implementations: marked functions that name no hook, take an
    argument their hook does not give, or, as methods, lack ``self``; and hook-named functions left unmarked."""
    known = hook_names()
    marked = marked_functions(plugin)
    methods = [hook for function, hook in marked if _first_parameter(function) == "self"]
    if isinstance(plugin, type) and methods:
        return [f"is the class {plugin.__qualname__}, whose hooks ({', '.join(methods)}) are methods that nothing "
                f"would give self: register an instance, {plugin.__qualname__}()"]
    problems = []
    for function, hook in marked:
        if hook not in known:
            problems.append(f"implements unknown hook {hook!r}{did_you_mean(close_match(hook, known))}")
        else:
            problems += _argument_problems(plugin, function, hook, hook_arguments(hook))
    problems += [f"defines {name} without @nnframe.hookimpl, so nnframe never calls it; mark it"
                 for name in unmarked_hooks(plugin)]
    return problems


def marked_functions(plugin: object) -> list[tuple[Any, str]]:
    """``(function, hook name)`` for every function of ``plugin`` with the hookimpl mark, as pluggy finds them
    (routines only: a marked callable object is passed over; the hook name is the mark's ``specname`` where one
    is given)."""
    return [(value, mark.get("specname") or name) for name, value, mark in _attributes(plugin)
            if inspect.isroutine(value) and isinstance(mark, dict)]


def _attributes(plugin: object) -> Iterator[tuple[str, Any, Any]]:
    """``(name, value, hookimpl mark or None)`` for each attribute of ``plugin`` that can be read; a property, or a
    lazy module's attribute, that fails as it is read is passed over."""
    for name in dir(plugin):
        try:
            value: Any = getattr(plugin, name, None)
            mark = getattr(value, IMPL_MARK, None)
        except Exception:
            continue
        yield name, value, mark


def _first_parameter(function: Any) -> str | None:
    try:
        return next(iter(inspect.signature(function).parameters), None)
    except (TypeError, ValueError):
        return None


def hook_arguments(hook: str) -> list[str]:
    """The arguments nnframe calls ``hook`` with, in the order of its spec."""
    return list(inspect.signature(getattr(hookspecs, hook)).parameters)


def _argument_problems(plugin: object, function: Any, hook: str, given: list[str]) -> list[str]:
    """A method whose first parameter is one of the hook's arguments, not ``self`` (pluggy would bind the object
    to it: ``def nnframe_run_start(run)`` gets the object as ``run``), or an argument the hook does not give."""
    wanted = ", ".join(given)
    if inspect.ismethod(function) and function.__self__ is plugin:
        first = _first_parameter(function.__func__)
        if first in given:
            return [f"implements {hook} with {first!r} first, where a method takes self, so it would get the "
                    f"object itself as {first!r}; write def {hook}(self, {wanted})"]
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin or a callable object: nothing to read
        return []
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p.name for p in positional if p.default is p.empty]
    if required[:1] == ["self"] and "." in getattr(function, "__qualname__", ""):
        required = required[1:]  # a function of a class registered as the plugin: pluggy passes self over too
    problems = [f"implements {hook} with the argument {name!r}, which the hook does not give"
                f"{did_you_mean(close_match(name, given))}; it gives ({wanted})" for name in required
                if name not in given]
    taken = {p.name for p in positional}
    untaken = [name for name in given if name not in taken]
    defaulted = [p.name for p in positional if p.default is not p.empty
                 and (p.name in given or close_match(p.name, untaken))]  # metric=None for metrics
    return problems + [f"implements {hook} with a default for {name!r}, and pluggy never passes an argument that "
                       f"has a default (it keeps the default); remove the default" for name in defaulted]


def unmarked_hooks(plugin: object) -> list[str]:
    """Functions of ``plugin`` named ``nnframe_*`` that carry no hookimpl mark."""
    return [name for name, value, mark in _attributes(plugin)
            if name.startswith(HOOK_PREFIX) and callable(value) and mark is None]

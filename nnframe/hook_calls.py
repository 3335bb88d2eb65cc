"""Calling a hook whose every implementation must run, even after one of them fails.

pluggy stops at the first implementation that raises. For the hooks that
finish something (``nnframe_run_end`` closes every logger's files,
``nnframe_checkpoint`` has them write out what they hold back) that would let
one plugin's bug cost another plugin its data: a failing logger's
``run_end`` kept the TensorBoard logger from writing its last metrics.
"""

from __future__ import annotations

from typing import Any

import pluggy

RUN_AND_METRICS = ("run", "metrics")


def call_each(caller: pluggy.HookCaller, **kwargs: Any) -> None:
    """Every implementation of ``caller`` in pluggy's order, each on its own; the first error is raised after all
    have run, with its own traceback and a note for each later one. A hook that has a wrapper
    (``hookwrapper``/``wrapper``) is called through pluggy, whose wrappers expect to wrap one call of all."""
    implementations = _one_by_one(caller)
    if implementations is None:
        caller(**kwargs)
        return
    errors: list[tuple[str, BaseException]] = []
    for impl in implementations:
        try:
            impl.function(*[kwargs[name] for name in impl.argnames])
        except (Exception, SystemExit) as exc:  # a sys.exit() waits for the others too
            errors.append((impl.plugin_name, exc))
    if errors:
        errors.sort(key=lambda error: isinstance(error[1], SystemExit))  # a plugin's bug before another's exit
        first = errors[0][1]
        for plugin, later in errors[1:]:
            first.add_note(f"(plugin {plugin}'s {caller.name} failed too: {later!r})")
        raise first


def call_holding_exit(caller: pluggy.HookCaller, **kwargs: Any) -> SystemExit | None:
    """Every implementation of ``caller``, as pluggy calls them, where a ``sys.exit()`` from one waits for the
    others and is returned rather than raised (the trainer finishes the step first), one with a failing code
    before one that stops (code 0 or none); any other error is raised at once, as pluggy raises it. A hook with
    a wrapper is called through pluggy, which stops at the first exit."""
    return _holding_exit(caller, _calls_of(_one_by_one(caller)), kwargs)


class HoldingExit:
    """:func:`call_holding_exit` of one of the hooks the trainer calls with ``run`` and ``metrics``, on every
    step or every logged one: the order of its implementations is worked out again only when they change.
    Through :func:`call_holding_exit` a logged spiral step spent 1.2 us calling the TensorBoard logger's hook,
    whose own work takes 0.25."""

    def __init__(self, caller: pluggy.HookCaller) -> None:
        self.caller = caller
        self._known: list[pluggy.HookImpl] | None = None
        self._calls: list[tuple[Any, tuple[str, ...]]] | None = None

    def __call__(self, run: Any, metrics: Any) -> SystemExit | None:
        implementations = self.caller.get_hookimpls()
        if implementations != self._known:
            self._known, self._calls = implementations, _calls_of(_one_by_one(self.caller))
        calls = self._calls
        if calls is None:
            return _holding_exit(self.caller, None, {"run": run, "metrics": metrics})
        held = None
        for function, names in calls:
            try:
                if names == RUN_AND_METRICS:
                    function(run, metrics)
                else:
                    function(*[{"run": run, "metrics": metrics}[name] for name in names])
            except SystemExit as exc:
                held = _kept(held, exc)
        return held


def _holding_exit(caller: pluggy.HookCaller, calls: list[tuple[Any, tuple[str, ...]]] | None,
                  kwargs: dict[str, Any]) -> SystemExit | None:
    if calls is None:
        try:
            caller(**kwargs)
        except SystemExit as exc:
            return exc
        return None
    held = None
    for function, names in calls:
        try:
            function(*[kwargs[name] for name in names])
        except SystemExit as exc:
            held = _kept(held, exc)
    return held


def _kept(held: SystemExit | None, exc: SystemExit) -> SystemExit:
    """The exit to return of two: the first, unless it stops the run (code 0 or none) and the second fails it."""
    return exc if held is None or (held.code in (0, None) and exc.code not in (0, None)) else held


def _calls_of(implementations: list[pluggy.HookImpl] | None) -> list[tuple[Any, tuple[str, ...]]] | None:
    return None if implementations is None else [(impl.function, impl.argnames) for impl in implementations]


def _one_by_one(caller: pluggy.HookCaller) -> list[pluggy.HookImpl] | None:
    """``caller``'s implementations in the order pluggy calls them (the last registered, and tryfirst, first), or
    ``None`` where a wrapper is on the hook: pluggy's wrappers expect to wrap one call of all."""
    implementations = caller.get_hookimpls()
    if any(impl.hookwrapper or impl.wrapper for impl in implementations):
        return None
    return implementations[::-1]

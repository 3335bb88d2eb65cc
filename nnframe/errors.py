"""The error types nnframe raises.

Every error a user can cause derives from :class:`UserError`; the CLI prints its
message without a traceback and exits with code 2. Anything else is a bug
(exit code 1).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["CheckpointError", "ConfigError", "DataError", "GraphError", "NNFrameError", "NodeProtocolError",
           "NonFiniteError", "PluginError", "RunDirectoryGone", "Terminated", "UnknownComponentError", "UserError"]


class NNFrameError(Exception):
    """Base of every error nnframe raises on purpose.

    Picklable as it stands, whatever a subclass's constructor takes, so that
    a run in a worker process (``multiprocessing``, ``concurrent.futures``,
    Ray) hands its error back to the caller: the default would call the
    constructor again with the message as its arguments.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuilt, (type(self), self.args, self.__dict__)


def _rebuilt(cls: type[NNFrameError], args: tuple[Any, ...], state: dict[str, Any]) -> NNFrameError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


def mention(ending: BaseException, text: str) -> None:
    """Name a second failure in the error that ends a run: in the message, which the command prints, of
    nnframe's own errors; as a note, which the command prints too, under anything else."""
    if isinstance(ending, NNFrameError):
        ending.args = (f"{ending} ({text})",)
    else:
        ending.add_note(f"({text})")


class RunDirectoryGone(NNFrameError):
    """A run's directory was moved or deleted while the run trained. Exit code 1.

    Writing on at its old path would make a second, partial run there (the
    checkpoints and summary apart from the config and events), so the run
    stops saving and says so.
    """

    def __init__(self, path: object) -> None:
        super().__init__(f"the run directory {str(path)!r} is gone: it was moved or deleted while the run trained, "
                         "so the run stopped; its checkpoints went with it, so resume it where it is now with "
                         "--resume (one moved before its first checkpoint has none: train it again)")


class UserError(NNFrameError):
    """Bad input from the user: config, data, arguments or files. Exit code 2.

    ``sections`` names the config sections an error found while building is about, where it is about more
    than the one its message starts with (the labels against the model's last node: ``("data", "model")``), so
    that the overrides of any of them are named with it.
    """

    exit_code = 2
    sections: tuple[str, ...] = ()


class ConfigError(UserError):
    """A config value is wrong; names the file and the field path.

    ``unknown_type`` marks an error that names a component type no loaded
    plugin registers, for which a missing plugin is the likely cause.
    """

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None,
                 unknown_type: bool = False):
        self.file = file
        self.path = path
        self.unknown_type = unknown_type
        self.unknown_types: list[tuple[str, str, str]] = []
        """``(its problem's text in the message, field path, type name)`` of each unknown type it names."""
        where = [part for part in (file, f"field {path}" if path else None) if part]
        super().__init__(": ".join([*where, message]))


class DataError(UserError):
    """A dataset is malformed: NaN, mismatched lengths, bad labels, too small."""


class GraphError(UserError):
    """A model graph is malformed: a cycle, an unknown input, an unreachable node."""


class PluginError(UserError):
    """A plugin could not be loaded, two plugins claim one name, or a plugin misuses nnframe's API."""


class PluginStateError(PluginError):
    """A plugin left in ``run.state`` what a checkpoint cannot hold (the checkpoint was saved without it)."""


class NodeProtocolError(PluginError):
    """A node breaks the node protocol: unmatched params, grads and names, replaced arrays, misshapen gradients."""


MISSING_PLUGIN = "; a plugin may be missing (see `nnframe plugins`)"
"""How a message about an unknown component type ends, unless plugins failed to load (see
:func:`nnframe.config_loader.load_experiment`)."""


class UnknownComponentError(UserError):
    """A config names a component that no loaded plugin registers."""

    unknown_type = True

    def __init__(self, kind: str, name: str, available: Iterable[str]):
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        super().__init__(unknown_name_message(f"{kind} type", name, self.available)
                         + MISSING_PLUGIN)


class CheckpointError(UserError):
    """A checkpoint is missing, truncated, corrupted or from another model."""


class NonFiniteError(NNFrameError):
    """Training produced a NaN or infinity. Exit code 3."""

    exit_code = 3


class Terminated(BaseException):
    """SIGTERM arrived where training does not handle it itself (starting up): stop as on Ctrl-C. Exit code 143.

    A ``BaseException``, as ``KeyboardInterrupt`` is, so that no handler of
    ordinary errors swallows it.
    """


def raise_terminated(signum: int, frame: object) -> None:
    """A SIGTERM handler: :class:`Terminated` is raised where the program is when the signal arrives."""
    raise Terminated


def close_match(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``name``, if any is close enough to suggest; one differing only in case first."""
    candidates = list(candidates)
    same_letters = [candidate for candidate in candidates if candidate.casefold() == name.casefold()]
    if same_letters:
        return same_letters[0]
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(suggestion: str | None) -> str:
    """`` (did you mean 'affine'?)`` for a suggestion from :func:`close_match`, or nothing."""
    return f" (did you mean {suggestion!r}?)" if suggestion else ""


def unknown_name_message(what: str, name: str, available: Iterable[str]) -> str:
    """"unknown node type 'afine'; available: affine, matmul (did you mean 'affine'?)"."""
    names = sorted(available)
    message = f"unknown {what} {name!r}; available: {', '.join(names) if names else '(none)'}"
    return message + did_you_mean(close_match(name, names))


def listed(names: Sequence[str], shown: int = 3) -> str:
    """``a, b, c and 2 more``: the first ``shown`` names of a list a message would otherwise run on with."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters with an ellipsis, for quoting found values in messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def not_written(owner: object, method: str, base: str) -> NotImplementedError:
    """The error of a base class's method that every subclass writes (a plugin's node, loss, optimizer or
    schedule): raised in nnframe's code, it names the subclass and what to write, as no plugin frame can."""
    cls = type(owner)
    return NotImplementedError(f"{cls.__module__}.{cls.__qualname__} does not define {method}; a subclass of "
                               f"{base} must")

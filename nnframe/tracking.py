"""Run directories: where a run's config, events, checkpoints and summary live.

A run directory is ``<runs-dir>/<experiment name>/<timestamp>/`` holding
``config.yaml`` (the resolved config; a resume that changes it replaces it),
``overrides.yaml`` (the command-line overrides of the start and of every resume,
and the fields each resume changed), the TensorBoard event
files, ``checkpoints/``, ``summary.json`` and ``.lock``, which the process
training the run holds (:meth:`RunDirectory.lock`).

``summary.json`` holds ``status``, ``steps``, ``started`` (ISO time),
``wall_time_s``, ``versions`` and ``metrics``, a mapping from TensorBoard tag
(``train/loss``, ``train/accuracy``, ``val/loss``, ``val/accuracy``) to the
final value; :mod:`nnframe.run_listing` reads it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from nnframe import run_lock
from nnframe.errors import UserError
from nnframe.yaml_scalars import dump_yaml

TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
CONFIG_FILE = "config.yaml"
OVERRIDES_FILE = "overrides.yaml"
SUMMARY_FILE = "summary.json"
CHECKPOINTS_DIR = "checkpoints"
FINAL_METRICS = ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "train/rmse", "train/mae", "val/rmse",
                 "val/mae")
RUN_DIR_NAME = re.compile(r"^(\d{8}-\d{6})(?:-(\d+))?$")
_MAX_SAME_SECOND = 10_000


# --------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------


@contextmanager
def names_the_file(path: Path | str) -> Iterator[None]:
    """An ``OSError`` raised inside (a full disk on ``write``) names ``path`` where it named no file."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def _killed_as_it_started(path: Path) -> bool:
    """Whether ``path`` holds only what a run makes before its config is written: an empty ``checkpoints/``, a
    lock, and the config's temporary file."""
    try:
        return (all(name in (CHECKPOINTS_DIR, run_lock.LOCK_FILE) or TEMPORARY_NAME.fullmatch(name)
                    for name in os.listdir(path))
                and (path / CHECKPOINTS_DIR).is_dir() and not os.listdir(path / CHECKPOINTS_DIR))
    except OSError:
        return False


TEMPORARY_NAME = re.compile(r"\..+\.\d+\.[0-9a-f]{8}\.tmp")
"""The name of :func:`atomic_write_bytes`'s temporary file, which a writer killed before its rename leaves."""


def atomic_write_bytes(path: Path, data: bytes, stem: str | None = None) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one, never a part.

    The bytes go to a temporary file in the same directory, are flushed and
    fsynced, and the temporary file is renamed over ``path``. ``stem`` names
    the temporary file in place of ``path``'s name (one a reader of the
    folder must not take for a file of its own).
    """
    path = Path(path)
    tmp = path.with_name(f".{stem or path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # TEMPORARY_NAME
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with names_the_file(path), os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# Plain data for YAML and JSON
# --------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """``value`` with paths, numpy scalars and tuples turned into plain YAML/JSON types."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return str(value)


def finite_or_null(value: Any) -> Any:
    """``value`` with every non-finite float, in dicts and lists too, as None (JSON's null)."""
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite_or_null(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def config_yaml(config: Mapping[str, Any]) -> str:
    """The config as YAML, keys in their given order."""
    return dump_yaml(plain(config), sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------------
# The run directory
# --------------------------------------------------------------------------


def run_identity(path: Path) -> Path:
    """A run's directory as TensorBoard names it (``<experiment>/<timestamp>``): absolute, ``.`` and ``..``
    resolved, and a link to the run followed, while a linked runs or experiment folder keeps its own name."""
    own = Path(os.path.abspath(path))
    return Path(os.path.realpath(own)) if own.is_symlink() else own


class RunDirectory:
    """One run's directory: ``<runs-dir>/<name>/<timestamp>/``.

    Make a new one with :meth:`create`, reopen one for a resume with :meth:`open`.
    TensorBoard event files go into the directory itself (:attr:`events_dir`),
    so ``tensorboard --logdir <runs-dir>`` shows each run as ``<name>/<timestamp>``.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._where = Path(os.path.abspath(path))  # for the files: the same run whatever directory a plugin moves to

    @classmethod
    def create(cls, runs_dir: Path, name: str, now: datetime | None = None) -> RunDirectory:
        """Make a fresh run directory; two runs started in the same second get ``-1``, ``-2``... suffixes."""
        _check_run_name(name)
        parent = Path(runs_dir) / name
        stamp = (now or datetime.now()).strftime(TIMESTAMP_FORMAT)
        try:
            parent.mkdir(parents=True, exist_ok=True)
            path = _make_unique_dir(parent, stamp)
            (path / CHECKPOINTS_DIR).mkdir()
        except OSError as exc:
            raise UserError(
                f"cannot create a run directory under {str(runs_dir)!r}: {os_error_reason(exc)}; "
                "choose a writable directory with --runs-dir"
            ) from exc
        return cls(path)

    @classmethod
    def open(cls, path: Path, for_writing: bool = True) -> RunDirectory:
        """Reopen an existing run directory, to resume it (or, not ``for_writing``, to read it: nothing is made)."""
        path = Path(path)
        if path.parent.name == CHECKPOINTS_DIR and (path.parent.parent / CONFIG_FILE).is_file():
            raise UserError(f"{str(path)!r} is a checkpoint of the run {str(path.parent.parent)!r}: name the run "
                            "itself; a resume goes on from its newest checkpoint, and load_run and "
                            "train.init_from take the checkpoint apart (checkpoint=...)")
        if not path.is_dir():
            problem = "is not a directory" if path.exists() else "does not exist"
            raise UserError(f"run directory {str(path)!r} {problem}; expected one made by "
                            "`nnframe train`; `nnframe runs` lists them")
        if not (path / CONFIG_FILE).is_file():
            if _killed_as_it_started(path):
                raise UserError(f"{str(path)!r} has no {CONFIG_FILE}: its run was killed as it started, before it "
                                "wrote one, and trained nothing; start the experiment again without --resume (this "
                                "directory may be deleted)")
            raise UserError(f"{str(path)!r} is not a run directory: it has no {CONFIG_FILE}; expected one "
                            "made by `nnframe train`; `nnframe runs` lists them")
        checkpoints = path / CHECKPOINTS_DIR
        if checkpoints.exists() and not checkpoints.is_dir():
            raise UserError(f"{str(checkpoints)!r} is not a directory, so the run's checkpoints cannot be read; "
                            "move it aside to resume")
        if for_writing:
            checkpoints.mkdir(exist_ok=True)
        return cls(path)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def name(self) -> str:
        """The experiment name (the parent directory's name, ``runs/spiral/20261126-103000`` -> ``spiral``)."""
        return run_identity(self._path).parent.name

    def present(self) -> bool:
        """Whether the run's directory is still where the run began (it may be moved or deleted meanwhile)."""
        return self._where.is_dir()

    @property
    def checkpoints(self) -> Path:
        return self._where / CHECKPOINTS_DIR

    @property
    def events_dir(self) -> Path:
        return self._where

    @property
    def config_path(self) -> Path:
        return self._where / CONFIG_FILE

    @property
    def overrides_path(self) -> Path:
        return self._where / OVERRIDES_FILE

    @property
    def summary_path(self) -> Path:
        return self._where / SUMMARY_FILE

    def lock(self) -> AbstractContextManager[run_lock.Holding]:
        """Hold the run for this process (see :mod:`nnframe.run_lock`)."""
        return run_lock.hold(self._where, self.summary_path)

    def begin_writing(self, holding: run_lock.Holding) -> None:
        """As the holder of the lock (``holding``) begins to change the run: the lock says so (see
        :meth:`nnframe.run_lock.Holding.begin_writing`), and temporary files a killed writer left are removed."""
        holding.begin_writing()
        for path in self._where.iterdir():
            if TEMPORARY_NAME.fullmatch(path.name):
                path.unlink(missing_ok=True)

    def training_state(self) -> str | None:
        """``"running"``, ``"killed"`` or None: see :func:`nnframe.run_lock.training_state`."""
        return run_lock.training_state(self._where, self.summary_path)

    def released(self) -> bool:
        """See :func:`nnframe.run_lock.released`."""
        return run_lock.released(self._where)

    def moved_away(self) -> bool:
        """See :func:`nnframe.run_lock.moved_away`."""
        return run_lock.moved_away(self._where)

    def write_config(self, config: str | Mapping[str, Any]) -> bool:
        """Write ``config.yaml`` once, whole or not at all (a kill or a full disk leaves no half-written config
        for a resume to stumble on); returns False (and keeps the original) when it already exists. The run's
        lock keeps another process from writing it meanwhile."""
        if self.config_path.exists():
            return False
        atomic_write_text(self.config_path, config if isinstance(config, str) else config_yaml(config))
        return True

    def replace_config(self, config: str | Mapping[str, Any]) -> None:
        """Replace ``config.yaml`` atomically: a resume that changed the config continues under the new one."""
        atomic_write_text(self.config_path, config if isinstance(config, str) else config_yaml(config))

    def read_config(self) -> dict[str, Any]:
        try:
            loaded = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise UserError(f"cannot read {str(self.config_path)!r}: it is not UTF-8 text, as nnframe writes it; the "
                            "file was damaged or replaced: restore it") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise UserError(f"cannot read {str(self.config_path)!r}: it is not YAML as nnframe writes it ({problem}"
                            f"{where}); the file was damaged or edited: restore it") from None
        except OSError as exc:
            raise UserError(f"cannot read {str(self.config_path)!r}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise UserError(f"{str(self.config_path)!r}: expected a mapping, found {type(loaded).__name__}")
        return loaded

    def write_overrides(self, overrides: Sequence[str], now: datetime | None = None,
                        changed: Mapping[str, Sequence[Any]] | None = None) -> None:
        """Append this start's (or resume's) overrides to ``overrides.yaml`` as a new entry.

        ``changed`` maps each config field a resume changed to its ``[old, new]``
        values, so the history survives ``config.yaml`` being replaced.
        """
        entries = self.read_overrides()
        entry = {
            "started": (now or datetime.now().astimezone()).isoformat(timespec="seconds"),
            "resumed": bool(entries),
            "overrides": [str(item) for item in overrides],
        }
        if changed:
            entry["changed"] = {field: plain(list(values)) for field, values in changed.items()}
        entries.append(entry)
        atomic_write_text(self.overrides_path, yaml.safe_dump(entries, sort_keys=False, allow_unicode=True))

    def read_overrides(self) -> list[dict[str, Any]]:
        """The entries of ``overrides.yaml``, oldest first; empty when there is none."""
        if not self.overrides_path.exists():
            return []
        try:
            loaded = yaml.safe_load(self.overrides_path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise self._damaged_overrides(type(exc).__name__) from None
        if loaded is not None and not (isinstance(loaded, list) and all(isinstance(e, dict) for e in loaded)):
            raise self._damaged_overrides("not a list of entries")
        return list(loaded or [])

    def _damaged_overrides(self, why: str) -> UserError:
        return UserError(f"{self.overrides_path} is damaged ({why}); it records the run's starts and their "
                         "overrides: restore it, or remove it to start the record anew")

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """Replace ``summary.json`` atomically; a non-finite number (a diverged loss) is written as ``null``,
        since JSON has none and strict readers refuse Python's ``Infinity``."""
        text = json.dumps(finite_or_null(plain(summary)), indent=2, allow_nan=False)
        atomic_write_text(self.summary_path, text + "\n")

    def read_summary(self) -> dict[str, Any] | None:
        """The contents of ``summary.json``; None when the run has none yet."""
        try:
            text = self.summary_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {str(self.summary_path)!r}: {exc}") from exc
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{str(self.summary_path)!r} is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise UserError(f"{str(self.summary_path)!r}: expected an object, found {type(loaded).__name__}")
        return loaded

    def __repr__(self) -> str:
        return f"RunDirectory({str(self._path)!r})"


def _check_run_name(name: str) -> None:
    if not name or name in {".", ".."} or "/" in name or "\\" in name or "\0" in name:
        raise UserError(f"experiment name {name!r} cannot name a directory; "
                        "expected a plain name without slashes, like 'spiral'")


def _make_unique_dir(parent: Path, stamp: str) -> Path:
    for attempt in range(_MAX_SAME_SECOND):
        path = parent / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{_MAX_SAME_SECOND} runs already started at {stamp}")


def os_error_reason(exc: OSError) -> str:
    """``No such file or directory (data.npz)``: the reason as a user reads it, not ``[Errno 2] ...``."""
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


# --------------------------------------------------------------------------
# Versions for summaries
# --------------------------------------------------------------------------


def environment_versions(plugin_versions: Mapping[str, str]) -> dict[str, Any]:
    """Versions of Python, numpy, nnframe and each plugin distribution, for ``summary.json``."""
    import numpy

    from nnframe import __version__

    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "nnframe": __version__,
        "plugins": dict(sorted(plugin_versions.items())),
    }


def lies_in(run_dir: Path, runs_dir: Path) -> bool:
    """Whether ``run_dir`` is ``<runs_dir>/<name>/<timestamp>`` (links kept); what is no run (a mistyped path, a
    file) is left to the resume, which names that problem."""
    if not (Path(run_dir) / CONFIG_FILE).is_file():
        return True
    for seen in (os.path.abspath(run_dir), os.path.realpath(run_dir)):  # as given, or through links (latest)
        parent = Path(seen).parent.parent
        try:
            if os.path.samefile(parent, runs_dir):
                return True
        except OSError:
            if parent == Path(os.path.abspath(runs_dir)):
                return True
    return False

"""Who trains a run directory: the lock a training process holds on it, and how a listing reads it.

The lock is an advisory ``flock`` on ``.lock``, which the system drops when
the process ends, however it ends (a SIGKILL included), so no stale lock is
ever left behind. While held, the file names the process, the machine and
when the process started, and whether it has begun to change the run. A
process that wrote the run's summary empties it when it lets go, as does a
resume that found the run as its summary says, and one that did not (a
refused resume) puts back what it found. A listing reads the file instead
of probing the lock, which could make a starting ``train`` find the run
taken, and says ``running`` or ``killed`` only where it can tell: on the
machine that trains the run, since its last boot, with the process's start
time known (Linux ``/proc``), and where runs are locked at all (not
Windows). Anywhere else it says nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from nnframe.errors import UserError

LOCK_FILE = ".lock"
READING, WRITING = "reading", "writing"
"""The holder's phase, in the lock: it reads the run (a resume restoring it), or has begun to change it."""
MOVED_AWAY = "moved away while it trained\n"


@dataclass
class Holding:
    """What the holder tells the lock while it holds it: that it begins to change the run, and before it lets
    go, whether the run is settled."""

    file: TextIO | None = None
    settled: bool = False
    """The run turned out to be as its summary says (a resume with nothing to do): the lock is let go as after a
    summary, rather than put back as found, which may name a resume killed before it (listed ``killed``)."""

    def begin_writing(self) -> None:
        """Mark the lock as its holder starts to change the run: a death from here on leaves it ``killed``.

        Until then the lock says its holder only reads the run, so that a
        resume killed while it reads it (one with nothing to do, say) leaves
        it listed as before; marked when taken, a completed run read
        ``killed``. Written through the file that holds the lock: closing
        another descriptor of it would let go of the lock where ``flock`` is
        emulated by ``fcntl`` locks (NFS).
        """
        if self.file is not None:
            _replace(self.file, _holder(WRITING))


@contextmanager
def hold(run_path: Path, summary_path: Path) -> Iterator[Holding]:
    """Hold the run for this process; a second ``train`` or ``--resume`` of it is refused meanwhile.

    Where ``fcntl`` is missing (Windows) runs are not locked.
    """
    holding = Holding()
    try:
        import fcntl
    except ImportError:
        yield holding
        return
    os.close(os.open(run_path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666))  # made, if missing, undated anew
    with open(run_path / LOCK_FILE, "r+", encoding="utf-8", errors="replace") as file:  # r+: see _replace
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.seek(0)
            holder = (file.read().splitlines() or ["another process"])[0]
            raise UserError(f"run {str(run_path)!r} is being trained by {holder}; wait for it to end, "
                            "or stop it, before resuming this run") from None
        file.seek(0)
        summary_before = _mtime(summary_path)
        found, found_at = _as_left(file.read(), _mtime(run_path / LOCK_FILE))
        _replace(file, _holder(READING, found, found_at))  # a death while reading leaves what it found telling
        holding.file = file
        try:
            yield holding
        finally:
            if not run_path.is_dir():  # moved away while it trained: the open file goes with it and says so
                _replace(file, MOVED_AWAY)
            elif _mtime(summary_path) != summary_before or holding.settled:
                _replace(file, "")
            else:  # nothing written (a resume with nothing to do, or stopped before it began): as it was
                _replace(file, found)
                _set_mtime(run_path / LOCK_FILE, found_at)


def released(run_path: Path) -> bool:
    """Whether a process held the run and let it go (an empty lock file): one that did so without a summary
    ended without saving its state (a full disk)."""
    text, _ = _read(run_path)
    return text == ""


def moved_away(run_path: Path) -> bool:
    """Whether the process that held the run found its directory moved away when it let go: it stopped, and
    its summary, if any, is from before (see :class:`~nnframe.errors.RunDirectoryGone`)."""
    text, _ = _read(run_path)
    return text == MOVED_AWAY


def _read(run_path: Path) -> tuple[str | None, float | None]:
    """The lock's text and date as they tell how the run stands (see :func:`_as_left`); None where unreadable."""
    try:
        text = (run_path / LOCK_FILE).read_text(encoding="utf-8")
        locked_at = (run_path / LOCK_FILE).stat().st_mtime
    except (OSError, UnicodeDecodeError):
        return None, None
    return _as_left(text, locked_at)


def _as_left(text: str, locked_at: float | None) -> tuple[str, float | None]:
    """The lock's ``text`` and date, or, where they name a holder that died while it only read the run, those of
    the lock it found, which it kept (``before``): that holder changed nothing, so whatever the lock told
    before it (a kill, a failure, a run moved away) still holds."""
    fields = _fields(text.splitlines())
    if fields.get("phase") != READING or "before" not in fields or _holder_alive(fields):
        return text, locked_at
    try:
        before = json.loads(fields["before"])
        before_at = json.loads(fields.get("before_at", "null"))
    except (ValueError, RecursionError):  # a lock written by hand, or damaged: read as it is
        return text, locked_at
    if not isinstance(before, str) or not _a_date(before_at):
        return text, locked_at
    return before, before_at


def _a_date(value: object) -> bool:
    """Whether ``value`` is a file's date a lock may name: none, or seconds since 1970 before the year 5000."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and 0 <= value < 1e11)


def training_state(run_path: Path, summary_path: Path) -> str | None:
    """``"running"`` while a live process holds the run, ``"killed"`` when the process that held it died
    without letting go (a SIGKILL) after it began changing the run (:meth:`Holding.begin_writing`; a lock
    from before the phase was written counts as changing it), None where that cannot be told (see the module
    docstring) and where the summary is newer than the lock."""
    if importlib.util.find_spec("fcntl") is None:  # runs are not locked here
        return None
    text, locked_at = _read(run_path)
    if text is None:
        return None
    fields = _fields(text.splitlines())
    pid = _local_pid(fields)
    if pid is None:
        return None
    now = _process_start(pid)
    if now is not None and now == fields.get("started"):
        return "running"
    if not _killed_writer(fields, _mtime(summary_path), locked_at):
        return None
    if now is None:
        return "killed" if not _alive(pid) or _is_zombie(pid) else None
    return "killed"


def _fields(lines: list[str]) -> dict[str, str]:
    """The lock's ``name value`` lines, the first of each name counting."""
    fields: dict[str, str] = {}
    for line in lines:
        if " " in line:
            name, value = line.split(" ", 1)
            fields.setdefault(name, value)
    return fields


def _killed_writer(fields: dict[str, str], summary_at: float | None, locked_at: float | None) -> bool:
    """Whether a lock's ``fields`` name a holder that, were it dead, died changing the run: past its reading
    (a lock from before the phase was written counts), and before a summary newer than the lock."""
    if "process" not in fields or fields.get("phase") == READING:
        return False
    return summary_at is None or locked_at is None or summary_at < locked_at


def _holder(phase: str, before: str = "", before_at: float | None = None) -> str:
    """This process's lock; while it only reads the run, with the lock it found and that lock's date."""
    text = f"process {os.getpid()}\n{_identity(os.getpid())}phase {phase}\n"
    if phase == READING:
        text += f"before_at {json.dumps(before_at)}\nbefore {json.dumps(before)}\n"
    return text


def _holder_alive(fields: dict[str, str]) -> bool:
    """Whether the lock's holder is alive: on this machine, since this boot, with the start it names."""
    pid = _local_pid(fields)
    return pid is not None and _process_start(pid) == fields.get("started")


def _local_pid(fields: dict[str, str]) -> int | None:
    """The lock's holder, where the lock was written on this machine since its last boot: only there can a
    process be looked up by its number."""
    pid = fields.get("process", "")
    if not pid.isdigit() or fields.get("host") != _host() or fields.get("boot") != _boot_id():
        return None
    return int(pid)


def _identity(pid: int) -> str:
    return f"host {_host()}\nboot {_boot_id()}\nstarted {_process_start(pid) or '?'}\n"


def _replace(file: TextIO, text: str) -> None:
    """Make ``text`` the lock's content; a write that fails (a full disk) names the lock file.

    Written over the old content, then cut to its length: emptied first, a
    lock killed in between read as let go without a summary (``failed``).
    What a kill leaves of the old content after it, :func:`_fields` ignores.
    """
    try:
        file.seek(0)
        file.write(text)
        file.flush()
        file.truncate()
    except OSError as exc:
        if exc.filename is None:
            exc.filename = file.name
        raise


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _set_mtime(path: Path, mtime: float | None) -> None:
    """Give the lock its time back, which says whether the summary came after the process that held it."""
    if mtime is not None:
        try:
            os.utime(path, (mtime, mtime))
        except (OSError, ValueError, OverflowError):
            pass


def _host() -> str:
    return socket.gethostname()


def _boot_id() -> str:
    """This boot of the machine (Linux); ``?`` where unknown."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip() or "?"
    except (OSError, UnicodeDecodeError):
        return "?"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        pass
    return True


def _process_start(pid: int) -> str | None:
    """When live process ``pid`` started, in clock ticks since boot (Linux ``/proc``); None for a process that
    is gone or a zombie, or where ``/proc`` does not tell (another system, or hidden)."""
    fields = _proc_stat(pid)
    if len(fields) <= 19 or fields[0] == "Z":
        return None
    return fields[19]


def _is_zombie(pid: int) -> bool:
    """A process that died and whose parent has not collected it yet (a sweep's ``Popen`` before ``wait``)."""
    fields = _proc_stat(pid)
    return bool(fields) and fields[0] == "Z"


def _proc_stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name, from the state on; empty where unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return []
    return stat.rsplit(")", 1)[-1].split()

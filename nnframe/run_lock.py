"""Who trains a run directory: the lock a training process holds on it, and how a listing reads it.

The lock is an advisory ``flock`` on ``.lock``, which the system drops when
the process ends, however it ends (a SIGKILL included), so no stale lock is
ever left behind. While held, the file names the process and when it started
(so that a process id used again by another program is not taken for it);
a process that lets go empties it. A listing reads the file instead of
probing the lock, which could make a starting ``train`` find the run taken.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nnframe.errors import UserError

LOCK_FILE = ".lock"


@contextmanager
def hold(run_path: Path) -> Iterator[None]:
    """Hold the run for this process; a second ``train`` or ``--resume`` of it is refused meanwhile.

    Where ``fcntl`` is missing (Windows) runs are not locked.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(run_path / LOCK_FILE, "a+", encoding="utf-8") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.seek(0)
            holder = (file.read().splitlines() or ["another process"])[0]
            raise UserError(f"run {str(run_path)!r} is being trained by {holder}; wait for it to end, "
                            "or stop it, before resuming this run") from None
        file.seek(0)
        file.truncate()
        file.write(f"process {os.getpid()}\nstarted {_process_start(os.getpid())}\n")
        file.flush()
        try:
            yield
        finally:
            file.truncate(0)


def training_state(run_path: Path, summary_path: Path) -> str | None:
    """``"running"`` while a live process holds the run, ``"killed"`` when the process that held it died
    without letting go (a SIGKILL), else None (nobody holds it, or it left word in ``summary_path`` after
    taking the lock, as runs did before the lock emptied its file)."""
    lock_path = run_path / LOCK_FILE
    try:
        lines = lock_path.read_text(encoding="utf-8").splitlines()
        locked_at = lock_path.stat().st_mtime
    except (OSError, UnicodeDecodeError):
        return None
    pid = _field(lines, 0, "process")
    if pid is None or not pid.isdigit():
        return None
    try:
        if summary_path.stat().st_mtime >= locked_at:
            return None
    except OSError:
        pass
    started = _field(lines, 1, "started")
    if not _alive(int(pid)) or (started not in (None, "?") and started != _process_start(int(pid))):
        return "killed"
    return "running"


def _field(lines: list[str], index: int, name: str) -> str | None:
    if len(lines) <= index or not lines[index].startswith(f"{name} "):
        return None
    return lines[index].removeprefix(f"{name} ").strip()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        pass
    return True


def _process_start(pid: int) -> str:
    """When process ``pid`` started, in clock ticks since boot (Linux ``/proc``); ``?`` where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return "?"
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else "?"

"""The run lock: what it writes while held, what it leaves, and how a listing reads it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnframe import run_lock
from nnframe.errors import UserError
from nnframe.run_lock import LOCK_FILE, hold, training_state


def ended_process() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def lock_text(pid: int, *, host: str | None = None, boot: str | None = None, started: str | None = None) -> str:
    host = run_lock._host() if host is None else host
    boot = run_lock._boot_id() if boot is None else boot
    started = (run_lock._process_start(pid) or "?") if started is None else started
    return f"process {pid}\nhost {host}\nboot {boot}\nstarted {started}\n"


def state(tmp_path: Path, lock: str | None, summary_after_lock: bool | None = None) -> str | None:
    """``training_state`` of a run whose .lock holds ``lock``, with a summary written before or after it."""
    if lock is not None:
        (tmp_path / LOCK_FILE).write_text(lock)
    summary = tmp_path / "summary.json"
    if summary_after_lock is not None:
        summary.write_text("{}")
        stamp = os.stat(tmp_path / LOCK_FILE).st_mtime + (5 if summary_after_lock else -5)
        os.utime(summary, (stamp, stamp))
    return training_state(tmp_path, summary)


def test_a_held_lock_names_the_process_its_machine_and_start(tmp_path: Path) -> None:
    with hold(tmp_path, tmp_path / "summary.json"):
        lines = (tmp_path / LOCK_FILE).read_text().splitlines()
        assert lines[0] == f"process {os.getpid()}"
        assert lines[1:3] == [f"host {run_lock._host()}", f"boot {run_lock._boot_id()}"]
        assert training_state(tmp_path, tmp_path / "summary.json") == "running"
        with pytest.raises(UserError, match=rf"being trained by process {os.getpid()}; wait"):
            with hold(tmp_path, tmp_path / "summary.json"):
                pass


def test_letting_go_empties_the_lock_after_a_summary_and_restores_it_otherwise(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    with hold(tmp_path, summary):
        summary.write_text("{}")
    assert (tmp_path / LOCK_FILE).read_text() == ""
    killed = lock_text(ended_process())
    (tmp_path / LOCK_FILE).write_text(killed)
    with hold(tmp_path, summary):  # a resume refused before it trained
        pass
    assert (tmp_path / LOCK_FILE).read_text() == killed


@pytest.mark.parametrize("case, expected", [
    ("live", "running"),
    ("ended", "killed"),
    ("another program with the same id", "killed"),
    ("another machine", None),
    ("another boot", None),
    ("a lock from before it named the machine", None),
    ("a summary written after the lock", None),
    ("empty", None),
    ("no lock", None),
])
def test_the_state_is_told_only_where_it_can_be(tmp_path: Path, case: str, expected: str | None) -> None:
    mine, dead = os.getpid(), ended_process()
    lock, summary_after = {
        "live": (lock_text(mine), False),
        "ended": (lock_text(dead, started="12345"), False),
        "another program with the same id": (lock_text(mine, started="1"), None),
        "another machine": (lock_text(dead, host="elsewhere"), None),
        "another boot": (lock_text(dead, boot="an-earlier-boot"), None),
        "a lock from before it named the machine": (f"process {dead}\n", None),
        "a summary written after the lock": (lock_text(dead), True),
        "empty": ("", False),
        "no lock": (None, None),
    }[case]
    assert state(tmp_path, lock, summary_after) == expected


def test_a_killed_process_its_parent_has_not_collected_is_killed(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = lock_text(child.pid)
        child.kill()
        for _ in range(500):  # until the kernel has made it a zombie; wait() is not called, as a sweep might not
            if run_lock._process_start(child.pid) is None:
                break
            time.sleep(0.01)
        assert state(tmp_path, lock) == "killed"
    finally:
        child.wait()


def test_without_fcntl_nothing_is_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = run_lock.importlib.util.find_spec
    monkeypatch.setattr(run_lock.importlib.util, "find_spec", lambda name: None if name == "fcntl" else real(name))
    assert state(tmp_path, lock_text(ended_process())) is None


def test_a_hold_that_wrote_no_summary_leaves_the_lock_as_it_found_it_time_included(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    summary.write_text("{}", encoding="utf-8")
    lock = tmp_path / run_lock.LOCK_FILE
    lock.write_text(lock_text(ended_process(), started="12345"), encoding="utf-8")
    os.utime(summary, (1000, 1000))
    os.utime(lock, (2000, 2000))  # the killed process came after the summary
    before = lock.read_text(encoding="utf-8")
    with run_lock.hold(tmp_path, summary):
        pass  # a resume that had nothing to do, or was stopped while starting
    assert lock.read_text(encoding="utf-8") == before and lock.stat().st_mtime == 2000


def test_a_lock_the_disk_has_no_room_for_names_the_lock_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    class FullDisk:
        """The real lock file, whose writes fail as on a full disk."""

        def __init__(self, file) -> None:
            self.file, self.name = file, file.name

        def __getattr__(self, name: str):
            return getattr(self.file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_lock, "open", lambda *args, **kwargs: FullDisk(open(*args, **kwargs)), raising=False)
    with pytest.raises(OSError, match="No space left on device") as caught:
        with hold(tmp_path, tmp_path / "summary.json"):
            pass
    assert caught.value.filename == str(tmp_path / LOCK_FILE)


def test_a_lock_rewritten_over_a_longer_one_and_killed_before_the_cut_names_its_new_holder(tmp_path: Path) -> None:
    """A kill between writing and cutting leaves the new lines first and the old one's tail after them: read as
    the new holder. Emptied first, as before, it read as a run let go without a summary (listed ``failed``)."""
    lock = tmp_path / LOCK_FILE
    lock.write_text(lock_text(os.getpid(), started="1") + "started 2\nhost elsewhere\n" * 3)

    class KilledAtTheCut:
        def __init__(self, file) -> None:
            self.file = file

        def __getattr__(self, name):
            return getattr(self.file, name)

        def truncate(self, *args):
            raise KeyboardInterrupt  # where a SIGKILL would stop it

    with open(lock, "r+", encoding="utf-8") as file, pytest.raises(KeyboardInterrupt):
        run_lock._replace(KilledAtTheCut(file), lock_text(os.getpid()))
    assert not run_lock.released(tmp_path)
    assert training_state(tmp_path, tmp_path / "summary.json") == "running"


@pytest.mark.parametrize("before, summary, released, moved, state", [
    ("", True, True, False, None),                                # let go after its summary
    ("", False, True, False, None),                               # let go without one: failed
    (run_lock.MOVED_AWAY, True, False, True, None),               # its directory moved away while it trained
    ("killed writer", True, False, False, "killed"),
])
def test_a_holder_killed_while_it_reads_leaves_the_lock_telling_what_it_found(
        tmp_path: Path, before: str, summary: bool, released: bool, moved: bool, state: str | None) -> None:
    """It changed nothing: a failure, a move or a kill before it must not read as anything else after it."""
    summary_path = tmp_path / "summary.json"
    if summary:
        summary_path.write_text("{}")
        os.utime(summary_path, (1000, 1000))
    lock = tmp_path / LOCK_FILE
    lock.write_text(lock_text(ended_process(), started="12345") + "phase writing\n" if before == "killed writer"
                    else before)
    os.utime(lock, (2000, 2000))
    child = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
                              "from nnframe.run_lock import hold\n"
                              f"with hold(Path({str(tmp_path)!r}), Path({str(summary_path)!r})):\n"
                              "    print('held', flush=True)\n    time.sleep(60)\n"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        assert training_state(tmp_path, summary_path) == "running"
        child.kill()
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert (run_lock.released(tmp_path), run_lock.moved_away(tmp_path)) == (released, moved)
    assert training_state(tmp_path, summary_path) == state


@pytest.mark.parametrize("before_at, before", [
    ("NaN", '""'), ("Infinity", '""'), ("1e30", '""'), ("1" + "0" * 40, '""'), ("true", '""'),
    ("5", "[" * 100_000), ("[" * 100_000, '""'), ("5", "not json"), ("5", "7"),
])
def test_a_damaged_reading_lock_is_read_as_it_is_and_let_go_without_a_traceback(
        tmp_path: Path, before_at: str, before: str) -> None:
    """A dead reader's lock written by hand or damaged: NaN, a date past any clock, JSON nested past Python's
    recursion limit raised out of the listing, or out of a resume's letting go over the user's own error."""
    summary = tmp_path / "summary.json"
    lock = tmp_path / LOCK_FILE
    lock.write_text(lock_text(ended_process(), started="12345") + f"phase reading\nbefore_at {before_at}\n"
                    f"before {before}\n")
    assert training_state(tmp_path, summary) is None
    assert not run_lock.released(tmp_path) and not run_lock.moved_away(tmp_path)
    with hold(tmp_path, summary):
        pass
    assert lock.read_text().startswith("process ")

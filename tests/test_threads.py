"""nnframe.threads: parts run at once on a thread pool, the thread count, and OpenBLAS's idle-thread setting."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from fixtures.console import NNFRAME
from nnframe import threads
from nnframe.errors import UserError

SPIRAL = Path(__file__).resolve().parents[1] / "experiments" / "spiral.yaml"


def test_every_part_runs_once_and_the_first_on_the_calling_thread() -> None:
    ran: list[tuple[int, int]] = []
    barrier = threading.Barrier(3, timeout=30)

    def part(k: int) -> None:
        barrier.wait()  # passes only if all three parts run at the same time
        ran.append((k, threading.get_ident()))

    threads.run_parts([lambda k=k: part(k) for k in range(3)])
    assert sorted(k for k, _ in ran) == [0, 1, 2]
    idents = dict(ran)
    assert idents[0] == threading.get_ident()
    assert len(set(idents.values())) == 3


def test_a_failing_part_is_raised_after_every_part_has_finished() -> None:
    finished: list[int] = []

    def slow() -> None:
        time.sleep(0.05)
        finished.append(1)

    def failing() -> None:
        raise ValueError("part 2 failed")

    with pytest.raises(ValueError, match="part 2 failed"):
        threads.run_parts([slow, failing, slow])
    assert finished == [1, 1]

    def first_fails() -> None:
        raise KeyError("first")

    with pytest.raises(KeyError):
        threads.run_parts([first_fails, slow])
    assert finished == [1, 1, 1]


def test_one_part_or_none_runs_here_without_the_pool() -> None:
    seen: list[int] = []
    threads.run_parts([lambda: seen.append(threading.get_ident())])
    threads.run_parts([])
    assert seen == [threading.get_ident()]


def test_thread_count_is_the_usable_cores_unless_set(monkeypatch) -> None:
    for name in (threads.THREADS_ENV, *threads.BLAS_THREADS_ENVS):
        monkeypatch.delenv(name, raising=False)
    assert threads.thread_count() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(threads.THREADS_ENV, " 3 ")
    assert threads.thread_count() == 3


@pytest.mark.parametrize(("openblas", "omp", "count"), [
    (None, "1", 1), ("1", "4", 1), (None, "1,1", 1), ("0", "1", 1), (None, "many", None), (None, "1000", None),
])
def test_thread_count_follows_the_limit_set_for_blas_up_to_the_usable_cores(monkeypatch, openblas, omp,
                                                                            count) -> None:
    """Ray sets OMP_NUM_THREADS to a task's num_cpus; a worker of one CPU then splits no update."""
    for name in (threads.THREADS_ENV, *threads.BLAS_THREADS_ENVS):
        monkeypatch.delenv(name, raising=False)
    for name, value in (("OPENBLAS_NUM_THREADS", openblas), ("OMP_NUM_THREADS", omp)):
        if value is not None:
            monkeypatch.setenv(name, value)
    assert threads.thread_count() == (count or len(os.sched_getaffinity(0)))
    monkeypatch.setenv(threads.THREADS_ENV, "2")
    assert threads.thread_count() == 2


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "²"])
def test_a_bad_thread_count_is_a_user_error_naming_the_variable(monkeypatch, value: str) -> None:
    monkeypatch.setenv(threads.THREADS_ENV, value)
    with pytest.raises(UserError, match=rf"NNFRAME_NUM_THREADS must be a whole number .* found {value!r}"):
        threads.thread_count()


def test_the_command_reports_a_bad_thread_count_without_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, threads.THREADS_ENV: "two"}
    result = subprocess.run([NNFRAME, "train", str(SPIRAL), "--runs-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stderr
    assert "NNFRAME_NUM_THREADS must be a whole number of threads" in result.stderr
    assert "Traceback" not in result.stderr


def _python(code: str, **env_changes: str | None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in threads.BLAS_TIMEOUT_ALIASES}
    for key, value in env_changes.items():
        if value is not None:
            env[key] = value
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env=env)


PRINT_TIMEOUT = "import os; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"


def test_importing_nnframe_before_numpy_sets_the_openblas_timeout() -> None:
    result = _python(f"import nnframe\n{PRINT_TIMEOUT}")
    assert result.stdout.strip() == threads.BLAS_TIMEOUT, result.stderr


def test_the_users_openblas_timeout_is_kept() -> None:
    assert _python(f"import nnframe\n{PRINT_TIMEOUT}", OPENBLAS_THREAD_TIMEOUT="25").stdout.strip() == "25"
    assert _python(f"import nnframe\n{PRINT_TIMEOUT}", GOTO_THREAD_TIMEOUT="25").stdout.strip() == "None"


def test_after_numpy_the_environment_is_left_alone() -> None:
    """OpenBLAS has read its environment by then; setting it would only mislead subprocesses."""
    assert _python(f"import numpy\nimport nnframe\n{PRINT_TIMEOUT}").stdout.strip() == "None"


def test_a_forked_child_runs_parts_on_a_pool_of_its_own() -> None:
    code = """
        import os, threading
        from nnframe import threads
        threads.run_parts([lambda: None, lambda: None])  # the parent's pool now has a thread
        pid = os.fork()
        if pid == 0:
            seen = []
            threads.run_parts([lambda: seen.append(1), lambda: seen.append(2)])
            os._exit(0 if sorted(seen) == [1, 2] else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """
    result = _python(code)
    assert result.stdout.strip() == "0", result.stderr

"""Sharing the cores with OpenBLAS: element-wise work split into parts on a thread pool, idle BLAS threads that sleep.

A training step alternates matrix products, which OpenBLAS spreads over
every core, with element-wise work (the optimizer's update), which numpy
runs on one. The optimizer splits the update of a large parameter into parts
that :func:`run_parts` runs at once (numpy releases the GIL inside its loops).

That pays only if the other cores are free. After a product, OpenBLAS's idle
threads spin for 2**28 clock ticks (about 0.1 s) before they sleep, so the
second part would share its core with a spinning thread. ``import nnframe``
therefore sets ``OPENBLAS_THREAD_TIMEOUT=18`` (2**18 ticks, about 0.1 ms)
unless it is set already. OpenBLAS reads it when it loads, so it acts only
where nnframe is imported before numpy, as in the ``nnframe`` command.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

THREADS_ENV = "NNFRAME_NUM_THREADS"
BLAS_THREADS_ENVS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
"""Thread limits OpenBLAS obeys, in its order; a task scheduler (Ray, a job's launcher) sets them to its share."""
BLAS_TIMEOUT_ENV = "OPENBLAS_THREAD_TIMEOUT"
BLAS_TIMEOUT_ALIASES = (BLAS_TIMEOUT_ENV, "GOTO_THREAD_TIMEOUT")
BLAS_TIMEOUT = "18"
"""log2 of the clock ticks an idle OpenBLAS thread spins before it sleeps.

mlp-large's step with the update in one part and in two, alternated in one
process, twice: at 18, 14.9 and 15.7 ms against 13.9 and 14.7 ms; at
OpenBLAS's default of 28, 15.3 and 15.7 ms against 15.5 and 16.0 ms (the
second part shares its core with a spinning thread). Against PyTorch's step,
each value in its own process (``python -m benchmarks.blas_timeout`` and
earlier runs like it), the median ratios were 1.075 at 14, 1.056 at 16,
1.048 at 18, 1.066 at 20 and 1.094 at 22, from 4 to 6 processes each, whose
spreads overlap."""

_pool: ThreadPoolExecutor | None = None
_pool_workers = 0
_pool_lock = threading.Lock()


def quiet_idle_blas_threads() -> bool:
    """Set ``OPENBLAS_THREAD_TIMEOUT`` before numpy loads OpenBLAS, unless the user set it; say whether it was set."""
    if "numpy" in sys.modules or any(name in os.environ for name in BLAS_TIMEOUT_ALIASES):
        return False
    os.environ[BLAS_TIMEOUT_ENV] = BLAS_TIMEOUT
    return True


def thread_count() -> int:
    """Threads for element-wise work: ``NNFRAME_NUM_THREADS``, else the limit set for OpenBLAS's threads
    (:data:`BLAS_THREADS_ENVS`) up to the cores this process may run on, else those cores."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return min(_usable_cores(), _blas_thread_limit() or _usable_cores())
    count = int(raw) if raw.isascii() and raw.isdigit() else 0
    if count < 1:
        from nnframe.errors import UserError

        raise UserError(f"{THREADS_ENV} must be a whole number of threads, at least 1; found {raw!r}")
    return count


def run_parts(parts: Sequence[Callable[[], None]]) -> None:
    """Run every part at once, the first on this thread and the rest on the pool; return when all are done.

    An exception from any part is raised here, after every part has finished.
    A part must not call ``run_parts`` itself: it could wait for a pool
    thread that is waiting for it.
    """
    if len(parts) <= 1:
        for part in parts:
            part()
        return
    pool = _pool_with(len(parts) - 1)
    futures = [pool.submit(part) for part in parts[1:]]
    try:
        parts[0]()
    finally:
        errors = [future.exception() for future in futures]
    for error in errors:
        if error is not None:
            raise error


def _blas_thread_limit() -> int | None:
    """The first of :data:`BLAS_THREADS_ENVS` set to a whole number above 0; OpenMP's ``4,2`` (per nesting
    level) counts as 4, and a value OpenBLAS would not read is passed over, as it does."""
    for name in BLAS_THREADS_ENVS:
        first = os.environ.get(name, "").split(",")[0].strip()
        if first.isascii() and first.isdigit() and int(first) > 0:
            return int(first)
    return None


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def _pool_with(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_workers
    from concurrent.futures import ThreadPoolExecutor

    with _pool_lock:
        if _pool is None or _pool_workers < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nnframe-part")
            _pool_workers = workers
        return _pool


def _forget_pool() -> None:
    """A forked child has none of the parent's threads; it starts its own pool when it needs one."""
    global _pool, _pool_workers, _pool_lock
    _pool = None
    _pool_workers = 0
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)

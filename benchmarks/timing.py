"""Interleaved repetitions, a check that nothing else ran meanwhile, and summaries.

Contenders are measured in turn, one block each per round, so that a slow
spell of the machine (another process, a frequency change) hits every
contender alike instead of one whole series; the medians are then compared
within one run. The rounds' orders follow a Williams design (see
:func:`round_order`): over ``n`` rounds (``2 n`` for an odd number of
contenders) each contender runs right after every other the same number of
times. With a fixed order, swapping two nnframe spiral sessions moved their
ratio by 0 to 2.5 % from one run to the next; with each round only starting
one contender later, most pairs kept their order, and a contender followed
the same neighbour in 12 of 15 rounds.

A round during which other processes kept the machine busy is measured again:
``/proc/stat`` gives the CPU time of the whole machine (steal included),
``os.times`` this process's own (its threads and finished children); the
difference over the round's wall time and the core count is the share of the
machine others took. Above ``QUIET_LIMIT`` the round's samples are dropped and
the round is repeated, at most ``repeats`` times in all.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Measure = Callable[[], float]
QUIET_LIMIT = 0.10


@dataclass
class RoundLog:
    """What :func:`interleaved` saw: the others' share of the machine in each kept round, rounds redone."""

    others_share: list[float] = field(default_factory=list)
    redone: int = 0
    disturbed_kept: int = 0

    def as_dict(self) -> dict:
        return {"others_share_max": max(self.others_share, default=0.0), "rounds_redone": self.redone,
                "disturbed_rounds_kept": self.disturbed_kept, "quiet_limit": QUIET_LIMIT}


def machine_snapshot() -> tuple[float, float, float]:
    """``(wall, machine busy seconds, own CPU seconds)``; machine busy is 0 where ``/proc/stat`` is missing."""
    own = os.times()
    busy = 0.0
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        pass
    return time.perf_counter(), busy, own.user + own.system + own.children_user + own.children_system


def others_share(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """The share of the machine's CPU time that other processes used between two snapshots."""
    wall = after[0] - before[0]
    if wall <= 0 or after[1] == 0:
        return 0.0
    other = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, other) / (wall * (os.cpu_count() or 1))


def interleaved(contenders: dict[str, Measure], repeats: int, warmup: int = 1, pause: float = 0.0,
                log: RoundLog | None = None) -> dict[str, list[float]]:
    """``repeats`` samples of each contender, taken round-robin after ``warmup`` discarded rounds.

    A measure returns its own sample (seconds per step, per fit, ...), so it
    may set things up before it starts its clock. ``pause`` seconds of sleep
    before each sample let the worker threads of the previous contender's
    libraries (OpenBLAS, OpenMP), which spin for a while after their last
    task, go idle instead of competing for the cores with the next one.
    A disturbed round is redone (see the module docstring); ``log`` records it.
    """
    log = log if log is not None else RoundLog()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for k in range(warmup, 0, -1):  # the last rows of the cycle, in order, so that the kept rounds begin it
        _round(_ordered(contenders, -k), pause)
    rounds = itertools.count()
    retries, kept = repeats, 0
    while kept < repeats:
        before = machine_snapshot()
        taken = _round(_ordered(contenders, next(rounds)), pause)
        share = others_share(before, machine_snapshot())
        if share > QUIET_LIMIT and retries > 0:
            retries -= 1
            log.redone += 1
            for measure in contenders.values():
                getattr(measure, "forget_last", lambda: None)()
            continue
        log.disturbed_kept += share > QUIET_LIMIT
        log.others_share.append(share)
        kept += 1
        for name, sample in taken.items():
            samples[name].append(sample)
    return samples


def _ordered(contenders: dict[str, Measure], k: int) -> dict[str, Measure]:
    names = list(contenders)
    return {names[i]: contenders[names[i]] for i in round_order(len(names), k)}


def round_order(n: int, k: int) -> list[int]:
    """The order of round ``k`` for ``n`` contenders, a row of a Williams design.

    The first row is ``0, 1, n-1, 2, n-2, ...``; row ``r`` adds ``r`` to each
    (mod ``n``); for odd ``n`` the rows are followed by the same rows
    reversed. Over a whole cycle every ordered pair of contenders is adjacent
    equally often, so no contender's block always follows the same other's.
    """
    if n < 2:
        return list(range(n))
    first = [0] + [(j + 1) // 2 if j % 2 else n - j // 2 for j in range(1, n)]
    row = k % (n if n % 2 == 0 else 2 * n)
    order = [(i + row) % n for i in first]
    return order[::-1] if row >= n else order


def _round(contenders: dict[str, Measure], pause: float) -> dict[str, float]:
    taken = {}
    for name, measure in contenders.items():
        if pause:
            time.sleep(pause)
        taken[name] = measure()
    return taken


class Block:
    """A measure: the mean wall seconds per call of ``step`` over a block of ``steps`` calls.

    ``settle`` calls run first, untimed: after the pause before a sample the
    first steps run slow while the machine wakes up (see ``Size`` in
    :mod:`benchmarks.workloads`), and training runs its steps back to back.
    It also keeps, per block, the share of the wall time that the calling
    thread spent on a CPU (``cpu_share``): about 1 for single-threaded Python
    and numpy work on an idle machine, lower when another process took the
    core (or the step waited on other threads), so a disturbed sample shows.
    """

    def __init__(self, step: Callable[[], object], steps: int, settle: int = 0) -> None:
        self.step = step
        self.steps = steps
        self.settle = settle
        self.cpu_share: list[float] = []

    def forget_last(self) -> None:
        """Drop the CPU share of the last block (its round was measured again)."""
        if self.cpu_share:
            self.cpu_share.pop()

    def __call__(self) -> float:
        step = self.step
        for _ in range(self.settle):
            step()
        cpu = time.thread_time()
        started = time.perf_counter()
        for _ in range(self.steps):
            step()
        wall = time.perf_counter() - started
        self.cpu_share.append((time.thread_time() - cpu) / wall if wall > 0 else 1.0)
        return wall / self.steps

    def __repr__(self) -> str:
        return f"Block({self.step!r}, steps={self.steps}, settle={self.settle})"


def per_step(step: Callable[[], object], steps: int, settle: int = 0) -> Block:
    """A :class:`Block` measure of ``step``."""
    return Block(step, steps, settle)


def summarize(samples: list[float], scale: float = 1.0) -> dict[str, float | int | list[float]]:
    """Median, min, max and quartiles of ``samples`` times ``scale`` (e.g. 1e6 for microseconds)."""
    values = sorted(v * scale for v in samples)
    quartiles = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {
        "median": statistics.median(values),
        "min": values[0],
        "max": values[-1],
        "q1": quartiles[0],
        "q3": quartiles[2],
        "n": len(values),
        "samples": [round(v, 6) for v in (s * scale for s in samples)],
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator

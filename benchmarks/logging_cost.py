"""What logging costs on spiral, step by step: ``python -m benchmarks.logging_cost [--rounds N]``.

The runner's ratio of block medians moves by several points between runs,
more than the 5 % bound it is checked against. This times every single
``train_step()`` of five spiral sessions instead (logging off; logging every
10 steps as configured; without TensorBoard; without gradient norms; with
neither), interleaved in blocks of 1000 steps, and prints for each the mean
time at each of the ten positions of a logging period (position 9 is the
logged step, which in spiral also ends an epoch) and the extra microseconds
per ten steps against logging off: once as means, which include the
TensorBoard bursts, once as medians, which leave them out.
"""

from __future__ import annotations

import nnframe  # noqa: F401  (first: its OpenBLAS setting must precede numpy, as in the nnframe command)

import argparse
import time
from collections.abc import Callable

import numpy as np

from benchmarks.nnframe_session import Session
from benchmarks.timing import interleaved
from benchmarks.workloads import CONFIGS, LOGGING, LONG_RUN

BLOCK = 1000
PERIOD = 10
WARMUP = 1
VARIANTS = {
    "logging off": LOGGING["nnframe_log_off"],
    "as configured": [],
    "no TensorBoard": ["log.tensorboard=false"],
    "no grad norms": ["log.grad_norms=false"],
    "neither": ["log.tensorboard=false", "log.grad_norms=false"],
}


class StepTimes:
    """A measure for :func:`~benchmarks.timing.interleaved`: times each step of a block, keeps them all."""

    def __init__(self, session: Session) -> None:
        self.step = session.step
        self.blocks: list[np.ndarray] = []

    def __call__(self) -> float:
        times = np.empty(BLOCK)
        clock, step = time.perf_counter, self.step
        for i in range(BLOCK):
            started = clock()
            step()
            times[i] = clock() - started
        self.blocks.append(times)
        return float(times.mean())

    def forget_last(self) -> None:
        self.blocks.pop()

    def by_position(self, statistic: Callable[..., np.ndarray] = np.mean) -> np.ndarray:
        """Microseconds at each position of the logging period over every kept block (mean or median)."""
        steps = np.array(self.blocks) * 1e6
        return statistic(steps.reshape(-1, PERIOD), axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    sessions = {name: Session(CONFIGS / "spiral.yaml", [*LONG_RUN, *overrides]).start()
                for name, overrides in VARIANTS.items()}
    try:
        measures = {name: StepTimes(session) for name, session in sessions.items()}
        interleaved(measures, args.rounds, warmup=WARMUP, pause=0.02)
        for measure in measures.values():
            del measure.blocks[:WARMUP]
    finally:
        for session in sessions.values():
            session.close()
    for statistic in (np.mean, np.median):
        print_table(measures, statistic, args.rounds)


def print_table(measures: dict[str, StepTimes], statistic: Callable[..., np.ndarray], rounds: int) -> None:
    """One row per variant: each position's time, and the extra per period against logging off.

    The means include the TensorBoard bursts (one step in a thousand) and
    any disturbance; the medians leave both out.
    """
    base = measures["logging off"].by_position(statistic).sum()
    print(f"\n{statistic.__name__} us per step at each position of a {PERIOD}-step logging period "
          f"({rounds} blocks of {BLOCK})")
    print(f"{'':16}" + "".join(f"{k:>7}" for k in range(PERIOD)) + "   extra per period")
    for name, measure in measures.items():
        values = measure.by_position(statistic)
        row = "".join(f"{value:7.1f}" for value in values)
        print(f"{name:16}{row}   {values.sum() - base:+6.1f} us ({values.sum() / base - 1:+.1%})")


if __name__ == "__main__":
    main()

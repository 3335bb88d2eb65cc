"""Profile nnframe's Trainer step: ``python -m benchmarks.profile_step spiral|mlp_large [--steps N] [--log ...]``.

Builds the benchmark config exactly as the runner does (temporary run
directory, TensorBoard on, the progress display a pipe gets), warms up,
then runs ``trainer.fit_step()`` (one turn of ``fit``'s loop) ``--steps``
times under cProfile and prints the functions by own time and by cumulative
time. Per-call figures are in microseconds per training step.
"""

from __future__ import annotations

import nnframe  # noqa: F401  (first: its OpenBLAS setting must precede numpy, as in the nnframe command)

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from benchmarks import mlp_large
from benchmarks.nnframe_session import Session
from benchmarks.workloads import CONFIGS, LOGGING, LONG_RUN

VARIANTS = {"every10": "nnframe", "off": "nnframe_log_off", "every_step": "nnframe_log_every_step"}


def session(workload: str, log: str, tmp: Path) -> Session:
    extra = []
    if workload == "mlp_large":
        extra = [f"data.path={mlp_large.write_data(tmp / 'mlp_large.npz', 2048)}"]
    return Session(CONFIGS / f"{workload}.yaml", [*LONG_RUN, *LOGGING[VARIANTS[log]], *extra]).start()


def per_step_table(stats: pstats.Stats, steps: int, sort: str, limit: int) -> str:
    rows = []
    for (file, line, name), (_, calls, own, total, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((own if sort == "tottime" else total, own, total, calls, f"{Path(file).name}:{line}({name})"))
    rows.sort(reverse=True)
    lines = [f"{'own us/step':>12} {'cum us/step':>12} {'calls/step':>10}  function"]
    for _, own, total, calls, where in rows[:limit]:
        lines.append(f"{own / steps * 1e6:12.2f} {total / steps * 1e6:12.2f} {calls / steps:10.2f}  {where}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=["spiral", "mlp_large"])
    parser.add_argument("--steps", type=int, default=0, help="default: 3000 for spiral, 30 for mlp_large")
    parser.add_argument("--log", choices=sorted(VARIANTS), default="every10")
    parser.add_argument("--limit", type=int, default=25)
    args = parser.parse_args()
    steps = args.steps or (3000 if args.workload == "spiral" else 30)
    with tempfile.TemporaryDirectory() as tmp, session(args.workload, args.log, Path(tmp)) as run:
        step = run.step
        for _ in range(max(10, steps // 10)):
            step()
        started = time.perf_counter()
        for _ in range(steps):
            step()
        plain = (time.perf_counter() - started) / steps
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(steps):
            step()
        profiler.disable()
    stats = pstats.Stats(profiler)
    print(f"{args.workload}, log {args.log}: {plain * 1e6:.1f} us/step without the profiler, {steps} steps\n")
    print("by own time:\n" + per_step_table(stats, steps, "tottime", args.limit))
    print("\nby cumulative time:\n" + per_step_table(stats, steps, "cumtime", args.limit))


if __name__ == "__main__":
    main()

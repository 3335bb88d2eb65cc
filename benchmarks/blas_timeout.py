"""Which ``OPENBLAS_THREAD_TIMEOUT`` suits nnframe on this machine: ``python -m benchmarks.blas_timeout``.

OpenBLAS reads the variable once, when numpy loads it, so every value runs in
a process of its own (``--child``). There, mlp_large's nnframe step as
configured is timed against a yardstick the variable does not touch:
PyTorch's step, when PyTorch is installed, else nnframe's step with its
update in one part. The blocks are interleaved as in the runner, each after
settling steps. The parent runs the values in turn, ``--processes`` times
each, and prints the median ratio of every process (lower is better for
nnframe). nnframe's default, :data:`nnframe.threads.BLAS_TIMEOUT`, was chosen
this way.
"""

from __future__ import annotations

import nnframe  # noqa: F401  (first: its OpenBLAS setting must precede numpy, as in the nnframe command)

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from nnframe.threads import BLAS_TIMEOUT_ENV

VALUES = (14, 16, 18, 20, 22)


def measure(size_name: str, rounds: int) -> dict[str, Any]:
    """In this process: nnframe's mlp_large step over the yardstick's, block by block."""
    from benchmarks import mlp_large, workloads
    from benchmarks.nnframe_session import Session, load_logging
    from benchmarks.timing import interleaved, per_step

    size = workloads.SIZES[size_name]
    load_logging()
    with tempfile.TemporaryDirectory(prefix="nnframe-bench-data-") as tmp:
        data = mlp_large.write_data(Path(tmp) / "mlp_large.npz", size.mlp_examples)
        config, extra = workloads.CONFIGS / "mlp_large.yaml", [f"data.path={data}"]
        sessions = [Session(config, [*workloads.LONG_RUN, *extra]).start()]
        try:
            name, yardstick = _yardstick(config, extra, data, sessions)
            contenders = {"nnframe": per_step(sessions[0].step, size.mlp_block, size.mlp_settle),
                          name: per_step(yardstick, size.mlp_block, size.mlp_settle)}
            samples = interleaved(contenders, rounds, size.warmup, size.pause)
        finally:
            for session in sessions:
                session.close()
    per_round = [a / b for a, b in zip(samples["nnframe"], samples[name])]
    return {"timeout": os.environ.get(BLAS_TIMEOUT_ENV), "yardstick": name,
            "nnframe_ms": 1e3 * statistics.median(samples["nnframe"]),
            "yardstick_ms": 1e3 * statistics.median(samples[name]),
            "ratio": statistics.median(samples["nnframe"]) / statistics.median(samples[name]),
            "per_round_ratio": statistics.median(per_round)}


def _yardstick(config: Path, extra: list[str], data: Path, sessions: list) -> tuple[str, Any]:
    """PyTorch's step when it is installed, else nnframe's in one part (its session joins ``sessions``)."""
    from benchmarks import machine, mlp_large, workloads

    try:
        import torch
    except ImportError:
        sessions.append(workloads.one_thread_session(config, extra))
        return "nnframe in one part", sessions[-1].step
    torch.set_num_threads(machine.numpy_blas_threads())
    return "PyTorch", mlp_large.torch_trainer(data).train_step


def sweep(values: list[int], processes: int, size: str, rounds: int) -> list[dict[str, Any]]:
    """Every value in a fresh process, ``processes`` times, the values in turn."""
    results = []
    for _ in range(processes):
        for value in values:
            env = {**os.environ, BLAS_TIMEOUT_ENV: str(value)}
            argv = [sys.executable, "-m", "benchmarks.blas_timeout", "--child", "--size", size, "--rounds", str(rounds)]
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False,
                                  cwd=Path(__file__).resolve().parents[1])
            if done.returncode != 0:
                raise SystemExit(f"timeout {value}: exit {done.returncode}\n{done.stderr[-2000:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(_line(results[-1]), flush=True)
    return results


def _line(result: dict[str, Any]) -> str:
    return (f"OPENBLAS_THREAD_TIMEOUT={result['timeout']:>3}  nnframe {result['nnframe_ms']:.2f} ms, "
            f"{result['yardstick']} {result['yardstick_ms']:.2f} ms, ratio {result['ratio']:.3f} "
            f"(round by round {result['per_round_ratio']:.3f})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.blas_timeout", description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, nargs="+", default=list(VALUES),
                        help="log2 of the clock ticks OpenBLAS's idle threads spin (OpenBLAS clamps to 4-30)")
    parser.add_argument("--processes", type=int, default=2, help="processes per value")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved blocks per process")
    parser.add_argument("--size", choices=["tiny", "full"], default="full")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.size, args.rounds)))
    else:
        sweep(args.values, args.processes, args.size, args.rounds)


if __name__ == "__main__":
    main()

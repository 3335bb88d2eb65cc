"""Run the nnframe benchmarks: ``python -m benchmarks.run [--size tiny|full] [--out results.json]``.

Every workload runs through nnframe's real Trainer (built from
``benchmarks/configs/*.yaml``), the hand-written numpy reference, PyTorch
(when installed) and, for digits, scikit-learn; repetitions are interleaved
and the medians, their ratios, the GEMM peak of this run, peak memory,
whole-process times and the correctness cross-check go to a table on stdout
and to JSON. See benchmarks/README.md.
"""

from __future__ import annotations

import nnframe  # noqa: F401  (first: its OpenBLAS setting must precede numpy, as in the nnframe command)

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import crosscheck, gemm, machine, mlp_large, processes, report, workloads

WORKLOADS = ("spiral", "mlp_large", "digits", "processes", "cross_check")
CORETYPE_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(workloads.SIZES), default="full",
                        help="full: the measurement (a few minutes); tiny: seconds, proves the command works")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latest.json"),
                        help="where to write the JSON (benchmarks/results/ is not committed)")
    parser.add_argument("--threads", type=int, default=0,
                        help="BLAS and PyTorch threads (default: what numpy's BLAS uses, usually every core)")
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, default=list(WORKLOADS), help="run only these")
    parser.add_argument("--without-torch", action="store_true", help="leave PyTorch out even when installed")
    return parser.parse_args(argv)


def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Limit BLAS/OpenMP threads and nnframe's here (threadpoolctl, environment) and in the subprocesses when asked."""
    if not threads:
        yield
        return
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "NNFRAME_NUM_THREADS"):
        os.environ[name] = str(threads)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield


def warn_about_coretype() -> None:
    set_here = [name for name in CORETYPE_VARIABLES if os.environ.get(name)]
    if set_here:
        print(f"note: {', '.join(f'{n}={os.environ[n]}' for n in set_here)} is set; it can make a current numpy "
              "run a slower kernel. To benchmark, run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
              "python -m benchmarks.run", file=sys.stderr)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure(args: argparse.Namespace, threads: int) -> dict[str, Any]:
    size = workloads.SIZES[args.size]
    with_torch = available("torch") and not args.without_torch
    with_sklearn = available("sklearn")
    from benchmarks.nnframe_session import load_logging

    load_logging()
    if with_torch:
        import torch

        torch.set_num_threads(threads)
    results: dict[str, Any] = {"command": " ".join(["python -m benchmarks.run", *sys.argv[1:]]),
                               "size": asdict(size), "load_average_before": list(os.getloadavg()),
                               "implementations": {"torch": with_torch, "sklearn": with_sklearn}, "workloads": {}}
    started = time.perf_counter()
    if "mlp_large" in args.only:
        log(f"GEMM peak, and a training step's products in numpy{' and PyTorch' if with_torch else ''}")
        results["gemm"] = gemm.measure(mlp_large.BATCH, mlp_large.SIZES, np.float32, size.gemm_repeats)
        results["gemm"]["training_products"] = gemm.compare_libraries(
            mlp_large.BATCH, mlp_large.SIZES, np.float32, size.gemm_repeats, size.pause, with_torch)
    if "spiral" in args.only:
        log("spiral")
        results["workloads"]["spiral"] = workloads.spiral(size, with_torch)
    if "mlp_large" in args.only:
        log("mlp_large")
        results["workloads"]["mlp_large"] = workloads.mlp(size, with_torch, threads, results["gemm"])
    if "digits" in args.only:
        log("digits")
        results["workloads"]["digits"] = workloads.digits(size, with_torch, with_sklearn)
    if "processes" in args.only:
        log("whole processes")
        results["workloads"]["processes"] = processes.measure(size.process_repeats, size.process_epochs, threads,
                                                              with_torch, size.warmup)
    if "cross_check" in args.only:
        log("cross-check")
        results["cross_check"] = crosscheck.compare_all(workloads.CONFIGS, size.cross_check_steps)
    results["seconds"] = time.perf_counter() - started
    results["machine"] = machine.describe(threads)
    results["targets"] = report.check_targets(results)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    warn_about_coretype()
    threads = args.threads or machine.numpy_blas_threads()
    with thread_limit(args.threads or None):
        results = measure(args, threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    info = results["machine"]
    print(f"{info['date']}  {info['cpu']}, {info['cores']} cores, {threads} threads, numpy {info['numpy']} "
          f"(BLAS {(info.get('numpy_blas') or {}).get('architecture')}), torch {info['torch']}, "
          f"size {args.size}, {results['seconds']:.0f} s")
    print(report.tables(results))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

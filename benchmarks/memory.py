"""Peak memory of mlp-large training, one implementation per process: ``python -m benchmarks.memory IMPL ...``.

Each implementation runs in its own fresh process, so nothing another one
allocated or imported is counted. Two measures:

* ``tracemalloc`` (nnframe and the numpy reference; numpy reports its array
  buffers to it): tracing starts after the imports, so it counts the data,
  parameters, gradients, optimizer state and every temporary of the steps.
  ``build_peak_mb`` is the peak while building; ``first_step_peak_mb`` the
  peak of the first step (which makes the optimizer's state, and in nnframe
  checks the nodes' first backward); ``resident_mb`` what stays after it;
  ``step_peak_mb`` the highest total during the later steps (resident plus
  the largest temporaries); ``train_peak_mb`` the higher of the two step
  peaks, the peak of training, which the memory target compares;
  ``growth_mb`` how much the resident part grew from the middle of the steps
  to the end (0 when nothing accumulates).
* the process's resident set (every implementation, PyTorch included, whose
  tensors tracemalloc cannot see): ``rss_after_imports_mb`` and ``max_rss_mb``,
  the high-water mark ``VmHWM`` of ``/proc/self/status``; their difference,
  ``rss_added_mb``, is what building and training added to the process.
  (``ru_maxrss`` is not used: on Linux a child started from a large parent
  inherits the parent's figure across ``exec``.)

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import tracemalloc
from pathlib import Path
from typing import Any

MB = 1024 * 1024


def max_rss_mb() -> float:
    """The process's peak resident set in MiB: ``VmHWM``, else ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(impl: str, config: Path, data: Path) -> Any:
    """A started trainer for ``impl``: nnframe's :class:`~benchmarks.nnframe_session.Session` steps with
    ``step()``, the others with ``train_step()``."""
    if impl == "nnframe":
        from benchmarks.nnframe_session import Session

        return Session(config, [f"data.path={data}"]).start()
    from benchmarks import mlp_large

    if impl == "numpy":
        return mlp_large.handwritten_trainer(data)
    return mlp_large.torch_trainer(data)


def import_for(impl: str, threads: int) -> None:
    if impl == "nnframe":
        import nnframe.launch  # noqa: F401
        import nnframe.train  # noqa: F401
        from benchmarks.nnframe_session import load_logging

        load_logging()
    elif impl == "torch":
        import torch

        if threads:
            torch.set_num_threads(threads)
    import numpy  # noqa: F401


def measure(impl: str, config: Path, data: Path, steps: int, threads: int) -> dict[str, Any]:
    import_for(impl, threads)
    after_imports = max_rss_mb()
    traced = impl != "torch"
    if traced:
        tracemalloc.start()
    trainer = build(impl, config, data)
    result: dict[str, Any] = {"impl": impl, "steps": steps, "rss_after_imports_mb": after_imports}
    if traced:
        result["build_peak_mb"] = tracemalloc.get_traced_memory()[1] / MB
        tracemalloc.reset_peak()
    step = trainer.step if impl == "nnframe" else trainer.train_step
    step()
    if traced:
        current, peak = tracemalloc.get_traced_memory()
        result["first_step_peak_mb"], result["resident_mb"] = peak / MB, current / MB
        tracemalloc.reset_peak()
    middle = None
    for k in range(2, steps + 1):
        step()
        if traced and k == steps // 2 + 1:
            middle = tracemalloc.get_traced_memory()[0]
    if traced:
        current, peak = tracemalloc.get_traced_memory()
        result["step_peak_mb"] = peak / MB
        result["train_peak_mb"] = max(result["first_step_peak_mb"], result["step_peak_mb"])
        result["growth_mb"] = (current - middle) / MB if middle is not None else 0.0
        tracemalloc.stop()
    result["max_rss_mb"] = max_rss_mb()
    result["rss_added_mb"] = result["max_rss_mb"] - after_imports
    if hasattr(trainer, "close"):
        trainer.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", choices=["nnframe", "numpy", "torch"])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(measure(args.impl, args.config, args.data, args.steps, args.threads)))


if __name__ == "__main__":
    main()

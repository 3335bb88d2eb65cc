"""What the numbers were measured on: CPU, cores, versions, BLAS and its threads, the OpenBLAS and thread variables."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime
from importlib import metadata
from typing import Any

from nnframe.threads import thread_count

ENVIRONMENT_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                         "OPENBLAS_THREAD_TIMEOUT", "NNFRAME_NUM_THREADS")


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def blas() -> list[dict[str, Any]]:
    """threadpoolctl's view of the loaded BLAS and OpenMP libraries (kernel, version, threads, file)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "prefix", "version", "architecture", "num_threads", "threading_layer")
    return [{**{key: info.get(key) for key in keep}, "library": os.path.basename(info.get("filepath", ""))}
            for info in threadpool_info()]


def numpy_blas() -> dict[str, Any] | None:
    """numpy's own BLAS (the library in numpy.libs), as threadpoolctl reports it."""
    import numpy  # noqa: F401

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    for info in threadpool_info():
        if info.get("user_api") == "blas" and "numpy" in info.get("filepath", ""):
            return {key: info.get(key) for key in ("internal_api", "version", "architecture", "num_threads")}
    return None


def numpy_blas_threads() -> int:
    """The thread count of numpy's BLAS, else the CPU count."""
    info = numpy_blas()
    return int(info["num_threads"]) if info else os.cpu_count() or 1


def describe(threads: int) -> dict[str, Any]:
    import numpy

    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "nnframe": version("nnframe"),
        "torch": version("torch"),
        "scikit-learn": version("scikit-learn"),
        "tensorboardX": version("tensorboardX"),
        "threads": threads,
        "nnframe_threads": thread_count(),
        "numpy_blas": numpy_blas(),
        "blas": blas(),
        "environment": {name: os.environ.get(name) for name in ENVIRONMENT_VARIABLES},
    }

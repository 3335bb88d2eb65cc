"""Whole-process timings: a command's wall time from start to exit, imports included.

Each command runs as a subprocess with its output captured; the commands are
interleaved like every other measurement. A command that fails is reported
with its exit code and the end of its stderr instead of a time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.timing import RoundLog, interleaved, summarize

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Command:
    """One command to time; ``argv`` runs in the repository root."""

    name: str
    argv: list[str]
    what: str
    failure: str | None = field(default=None, repr=False)

    def run(self) -> float:
        started = time.perf_counter()
        done = subprocess.run(self.argv, cwd=ROOT, capture_output=True, text=True, env=os.environ.copy())
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            self.failure = f"exit {done.returncode}: {done.stderr.strip()[-600:]}"
            return float("nan")
        return seconds


def nnframe_executable() -> list[str]:
    """The installed ``nnframe`` console script beside this Python (a pyenv shim would add its own start-up)."""
    beside = Path(sys.executable).parent / "nnframe"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("nnframe")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from nnframe.cli import main; sys.argv[0] = 'nnframe'; main()"]


def commands(runs_dir: Path, epochs: int | None, threads: int, with_torch: bool) -> list[Command]:
    """The commands compared: nnframe train and --help, the hand-written and PyTorch scripts, bare numpy."""
    nnframe = nnframe_executable()
    epoch_override = [f"train.epochs={epochs}"] if epochs else []
    epoch_args = ["--epochs", str(epochs)] if epochs else []
    listed = [
        Command("nnframe_train_spiral", [*nnframe, "train", "experiments/spiral.yaml", "--runs-dir", str(runs_dir),
                                         *epoch_override], "nnframe train experiments/spiral.yaml"),
        Command("nnframe_help", [*nnframe, "--help"], "nnframe --help"),
        Command("numpy_spiral_script", [sys.executable, "-m", "benchmarks.handwritten.train_spiral", *epoch_args],
                "python -m benchmarks.handwritten.train_spiral"),
        Command("python_import_numpy", [sys.executable, "-c", "import numpy"], "python -c 'import numpy'"),
    ]
    if with_torch:
        listed.append(Command("torch_spiral_script",
                              [sys.executable, "-m", "benchmarks.pytorch.train_spiral", *epoch_args,
                               "--threads", str(threads)], "python -m benchmarks.pytorch.train_spiral"))
    return listed


def measure(repeats: int, epochs: int | None, threads: int, with_torch: bool, warmup: int = 1) -> dict:
    """Median wall seconds of each command, interleaved, after ``warmup`` discarded rounds."""
    with tempfile.TemporaryDirectory(prefix="nnframe-bench-runs-") as runs_dir:
        listed = commands(Path(runs_dir), epochs, threads, with_torch)
        rounds = RoundLog()
        samples = interleaved({c.name: c.run for c in listed}, repeats, warmup, log=rounds)
    results = {}
    for c in listed:
        entry: dict = {"command": c.what}
        if c.failure:
            entry["error"] = c.failure
        else:
            entry.update(summarize(samples[c.name]))
        results[c.name] = entry
    return {"unit": "s", "epochs": epochs or _spiral_epochs(), "results": results, "rounds": rounds.as_dict()}


def _spiral_epochs() -> int:
    """The epochs ``experiments/spiral.yaml`` trains, which the commands run without an override."""
    import yaml

    return int(yaml.safe_load((ROOT / "experiments" / "spiral.yaml").read_text(encoding="utf-8"))["train"]["epochs"])

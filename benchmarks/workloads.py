"""The three workloads, each run through every implementation with interleaved repetitions.

* ``spiral``: per-step time of the book's 2-10-3 sigmoid net (float64, SGD 1.0,
  batch 30): nnframe's Trainer as configured (log every 10 steps with gradient
  norms, TensorBoard writing to a temporary run directory), with logging off,
  and with gradient norms logged on every step; the hand-written reference;
  PyTorch.
* ``digits``: a whole training (67 epochs, Adam, batch 32) and its test
  accuracy: nnframe's ``Trainer.fit``, the reference, PyTorch, scikit-learn's
  MLPClassifier; repetition ``k`` gives all of them seed ``k`` and the same
  split (nnframe's digits dataset for that seed).
* ``mlp_large``: per-step time of 784-1000-1000-10 ReLU (float32, Adam, batch
  256), as a share of the measured GEMM peak, and peak memory per
  implementation in separate processes; nnframe also with its optimizer
  update in one part (``NNFRAME_NUM_THREADS=1``), to show what the threads
  bring.

nnframe sessions that are timed step by step get ``train.epochs`` raised far
past what the repetitions use, so every timed step lies inside the configured
run (the learning-rate schedule, the step count).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import gemm, mlp_large
from benchmarks.handwritten.net import MultiLayerNet, TwoLayerNet
from benchmarks.handwritten.optimizer import SGD, Adam
from benchmarks.handwritten.trainer import Trainer as ReferenceTrainer
from benchmarks.nnframe_session import Session
from benchmarks.timing import Block, RoundLog, interleaved, per_step, ratio, summarize
from nnframe.threads import THREADS_ENV

CONFIGS = Path(__file__).resolve().parent / "configs"
ROOT = CONFIGS.parents[1]
LONG_RUN = ["train.epochs=1000000"]
PRODUCTS = "products"
"""The contender that times a step's matrix products among mlp_large's implementations."""
LOGGING = {
    "nnframe": [],
    "nnframe_log_off": ["log.every=1000000000", "log.grad_norms=false", "log.tensorboard=false"],
    "nnframe_log_every_step": ["log.every=1", "log.grad_norms=true"],
}


@dataclass(frozen=True)
class Size:
    """How many repetitions and how long each is; ``tiny`` only proves the command works.

    ``pause`` is the sleep before each sample (a sixth of it for spiral's short
    blocks): long enough for OpenBLAS's and OpenMP's spinning worker threads
    and tensorboardX's writer threads of the previous contender to go idle.
    Without it PyTorch's mlp_large step measured 29 ms after a numpy
    contender instead of 13 ms.

    A block is a whole number of logging periods, so that each block of the
    as-configured nnframe session pays its share of the logging: spiral's
    1000 steps hold 100 logged steps and so exactly one burst of TensorBoard
    writes (the logger writes every 100 logged steps); mlp_large's 10 steps
    hold one logged step (its writing, about 10 us per logged step, is under
    0.1 % of that step and mostly falls outside the timed steps). With
    300-step spiral blocks the median fell on a block without a burst and
    left the writing out.

    After the pause the first mlp_large steps run slow while the machine
    wakes up: medians over 12 pauses, nnframe's first steps took 19.1, 22.3
    and 16.0 ms before settling at 13.9, PyTorch's first 16.8 ms before
    12.9. Training runs its steps back to back, so ``mlp_settle`` steps run
    untimed before each block. Spiral's 1000-step blocks dilute the effect
    to nothing.
    """

    name: str
    warmup: int
    pause: float
    spiral_repeats: int
    spiral_block: int
    mlp_repeats: int
    mlp_block: int
    mlp_settle: int
    mlp_examples: int
    memory_steps: int
    digits_repeats: int
    digits_epochs: int
    process_repeats: int
    process_epochs: int | None
    cross_check_steps: int
    gemm_repeats: int


SIZES = {
    "tiny": Size("tiny", warmup=0, pause=0.0, spiral_repeats=2, spiral_block=10, mlp_repeats=2, mlp_block=1,
                 mlp_settle=0, mlp_examples=512, memory_steps=3, digits_repeats=1, digits_epochs=1,
                 process_repeats=1, process_epochs=2, cross_check_steps=100, gemm_repeats=2),
    "full": Size("full", warmup=1, pause=0.3, spiral_repeats=15, spiral_block=1000, mlp_repeats=15, mlp_block=10,
                 mlp_settle=5, mlp_examples=2048, memory_steps=200, digits_repeats=5, digits_epochs=67,
                 process_repeats=5, process_epochs=None, cross_check_steps=3000, gemm_repeats=15),
}


def _results(samples: dict[str, list[float]], scale: float, blocks: dict[str, Block] | None = None) -> dict[str, dict]:
    results = {name: summarize(values, scale) for name, values in samples.items()}
    for name, block in (blocks or {}).items():
        shares = block.cpu_share[-len(samples[name]):]
        results[name]["cpu_share"] = float(np.median(shares)) if shares else None
    return results


def _median(results: dict[str, dict], name: str) -> float | None:
    entry = results.get(name)
    return None if entry is None or "median" not in entry else entry["median"]


STEP_RATIOS = {
    "nnframe/numpy": ("nnframe", "numpy"),
    "torch/nnframe": ("torch", "nnframe"),
    "nnframe/torch": ("nnframe", "torch"),
    "log_every_step/log_off": ("nnframe_log_every_step", "nnframe_log_off"),
    "log_every_10/log_off": ("nnframe", "nnframe_log_off"),
    "nnframe/one_thread": ("nnframe", "nnframe_one_thread"),
}


def _step_ratios(results: dict[str, dict]) -> dict[str, float | None]:
    """Each ratio of two medians (what the targets read)."""
    return {key: ratio(_median(results, a), _median(results, b)) for key, (a, b) in STEP_RATIOS.items()}


def _per_round_ratios(results: dict[str, dict]) -> dict[str, dict]:
    """Each ratio taken within every round (sample k of every contender comes from round k),
    summarised: its spread shows how far one run's ratio of medians can be trusted."""
    spreads = {}
    for key, (a, b) in STEP_RATIOS.items():
        if "samples" in results.get(a, {}) and "samples" in results.get(b, {}):
            pairs = zip(results[a]["samples"], results[b]["samples"], strict=True)
            ratios = [x / y for x, y in pairs if y > 0]
            if ratios:
                spreads[key] = summarize(ratios)
    return spreads


def _sessions(config: Path, extra: list[str]) -> dict[str, Session]:
    return {name: Session(config, [*LONG_RUN, *overrides, *extra]).start() for name, overrides in LOGGING.items()}


def one_thread_session(config: Path, extra: list[str]) -> Session:
    """nnframe as configured, but built with ``NNFRAME_NUM_THREADS=1``: its optimizer updates in one part."""
    before = os.environ.get(THREADS_ENV)
    os.environ[THREADS_ENV] = "1"
    try:
        return Session(config, [*LONG_RUN, *extra]).start()
    finally:
        if before is None:
            del os.environ[THREADS_ENV]
        else:
            os.environ[THREADS_ENV] = before


def _torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- spiral


def spiral(size: Size, with_torch: bool) -> dict[str, Any]:
    """Microseconds per optimizer step of every implementation."""
    config = CONFIGS / "spiral.yaml"
    sessions = _sessions(config, [])
    data = sessions["nnframe"].experiment.dataset
    rng = np.random.default_rng(1984)
    reference = ReferenceTrainer(TwoLayerNet(2, 10, 3, rng=rng), SGD(lr=1.0), data.x, data.y, 30, rng)
    contenders = {name: per_step(s.step, size.spiral_block) for name, s in sessions.items()}
    contenders["numpy"] = per_step(reference.train_step, size.spiral_block)
    if with_torch:
        from benchmarks.pytorch.models import trainer

        torch_run = trainer([2, 10, 3], "sigmoid", "float64", "sgd", 1.0, data.x, data.y, 30, seed=1984)
        contenders["torch"] = per_step(torch_run.train_step, size.spiral_block)
    rounds = RoundLog()
    try:
        samples = interleaved(contenders, size.spiral_repeats, size.warmup, size.pause / 6, rounds)
        events = sessions["nnframe"].event_files()
    finally:
        for session in sessions.values():
            session.close()
    results = _results(samples, 1e6, contenders)
    return {"unit": "us/step", "block_steps": size.spiral_block, "results": results,
            "ratios": _step_ratios(results), "per_round_ratios": _per_round_ratios(results),
            "rounds": rounds.as_dict(), "nnframe_event_files": len(events)}


# ----------------------------------------------------------------------------- mlp-large


def mlp(size: Size, with_torch: bool, threads: int, gemm_result: dict) -> dict[str, Any]:
    """Milliseconds per step, the share of GEMM peak, and peak memory of each implementation."""
    config = CONFIGS / "mlp_large.yaml"
    with tempfile.TemporaryDirectory(prefix="nnframe-bench-data-") as tmp:
        data = mlp_large.write_data(Path(tmp) / "mlp_large.npz", size.mlp_examples)
        rounds = RoundLog()
        samples, blocks, peak = _mlp_steps(config, data, size, with_torch, size.pause, rounds)
        memory = {impl: _memory(impl, config, data, size.memory_steps, threads)
                  for impl in ("nnframe", "numpy", *(["torch"] if with_torch else []))}
    results = _results(samples, 1e3, blocks)
    flops = gemm.step_flops(mlp_large.BATCH, mlp_large.SIZES)
    run = gemm.run_flops(mlp_large.BATCH, mlp_large.SIZES)
    for entry in results.values():
        entry["gflops"] = flops / (entry["median"] / 1e3) / 1e9
        entry["percent_of_peak"] = 100 * entry["gflops"] / peak["peak_gflops"]
        entry["percent_of_peak_products_run"] = entry["percent_of_peak"] * run / flops
        entry["percent_of_gemm_section_peak"] = 100 * entry["gflops"] / gemm_result["peak_gflops"]
        entry["vs_all_products"] = entry["median"] / gemm_result["all_products_ms"]
    ratios = _step_ratios(results)
    for measure in ("train_peak", "step_peak", "max_rss", "rss_added"):
        ratios[f"memory nnframe/numpy ({measure.replace('_', ' ')})"] = ratio(memory["nnframe"].get(f"{measure}_mb"),
                                                                            memory["numpy"].get(f"{measure}_mb"))
    per_round = _per_round_ratios(results)
    per_round["nnframe % of peak"] = summarize([100 * flops / step / 1e9 / rate for step, rate in
                                                zip(samples["nnframe"], peak["peak_gflops_by_round"], strict=True)])
    return {"unit": "ms/step", "block_steps": size.mlp_block, "examples": size.mlp_examples,
            "step_gflop": flops / 1e9, "run_gflop": run / 1e9, "results": results, "ratios": ratios, "peak": peak,
            "beyond_products_ms": _beyond_products(results, gemm_result.get("training_products", {})),
            "beyond_products_in_rounds_ms": _beyond_products_in_rounds(samples, peak["products_run_s_by_round"]),
            "per_round_ratios": per_round, "rounds": rounds.as_dict(), "memory": memory}


def _beyond_products(results: dict[str, dict], training_products: dict) -> dict[str, float]:
    """What a step costs besides its matrix products: nnframe's step less numpy's products, PyTorch's less its own."""
    libraries = training_products.get("libraries", {})
    return {impl: results[impl]["median"] - libraries[library]["median"]
            for impl, library in (("nnframe", "numpy"), ("torch", "torch"))
            if "median" in results.get(impl, {}) and library in libraries}


def _beyond_products_in_rounds(samples: dict[str, list[float]], products_run: list[float]) -> dict[str, float]:
    """nnframe's step less numpy's products of a step timed in the same round, the median over the rounds: unlike
    :func:`_beyond_products`, whose products ran in a section of their own before the steps."""
    steps = samples.get("nnframe", [])
    if len(steps) != len(products_run) or not steps:
        return {}
    return {"nnframe": 1e3 * statistics.median(step - products for step, products in zip(steps, products_run))}


def _mlp_steps(config: Path, data: Path, size: Size, with_torch: bool, pause: float,
               rounds: RoundLog) -> tuple[dict[str, list[float]], dict, dict]:
    """Each implementation's seconds per step, its measures, and the GEMM peak taken in the same rounds.

    The nine products of a step run as one more contender, so the peak that
    the share of the peak divides by is measured beside the steps, round by
    round, and drifts with them: measured in a section of its own before
    them, it once met a fast spell and the steps a slow one (every step of
    the run 6-8 % slower, the share 68 % where the run before gave 78 %).
    """
    sessions = _sessions(config, [f"data.path={data}"])
    sessions["nnframe_one_thread"] = one_thread_session(config, [f"data.path={data}"])
    block, settle = size.mlp_block, size.mlp_settle
    contenders: dict[str, Any] = {name: per_step(s.step, block, settle)
                                  for name, s in sessions.items()}
    contenders["numpy"] = per_step(mlp_large.handwritten_trainer(data).train_step, block, settle)
    if with_torch:
        contenders["torch"] = per_step(mlp_large.torch_trainer(data).train_step, block, settle)
    products = gemm.step_products(mlp_large.BATCH, mlp_large.SIZES, np.float32)
    contenders[PRODUCTS] = gemm.ProductSequence([p.name for p in products], list(products), block, settle)
    try:
        samples = interleaved(contenders, size.mlp_repeats, size.warmup, pause, rounds)
    finally:
        for session in sessions.values():
            session.close()
    peak = gemm.peak_in_rounds(products, contenders.pop(PRODUCTS), len(samples.pop(PRODUCTS)))
    return samples, contenders, peak


def _memory(impl: str, config: Path, data: Path, steps: int, threads: int) -> dict[str, Any]:
    """Run ``benchmarks.memory`` for ``impl`` in a fresh process."""
    argv = [sys.executable, "-m", "benchmarks.memory", impl, "--config", str(config), "--data", str(data),
            "--steps", str(steps), "--threads", str(threads)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        return {"impl": impl, "error": f"exit {done.returncode}: {done.stderr.strip()[-600:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- digits


def digits(size: Size, with_torch: bool, with_sklearn: bool) -> dict[str, Any]:
    """Seconds of a whole training and the test accuracy of each implementation.

    Repetition ``k`` trains every implementation from seed ``k``: nnframe's
    digits split for that seed (the same train and test rows for all), the
    initial weights and the shuffling. Accuracy is the mean over the seeds,
    because one held-out example is 0.28% and a single seed's luck would
    decide the comparison.
    """
    config = CONFIGS / "digits.yaml"
    overrides = [f"train.epochs={size.digits_epochs}"]
    splits = _DigitsSplits(config, overrides)
    accuracy: dict[str, dict[int, float]] = {}
    contenders = {"nnframe": _nnframe_fit(config, overrides, accuracy),
                  "numpy": _numpy_fit(splits, size.digits_epochs, accuracy)}
    if with_torch:
        contenders["torch"] = _torch_fit(splits, size.digits_epochs, accuracy)
    if with_sklearn:
        contenders["sklearn"] = _sklearn_fit(splits, size.digits_epochs, accuracy)
    rounds = RoundLog()
    splits(0)  # its build imports what a digits experiment needs, which would otherwise fall in the first sample
    samples = interleaved(contenders, size.digits_repeats, warmup=0, pause=size.pause, log=rounds)
    results = _results(samples, 1e3)
    for name, entry in results.items():
        by_seed = accuracy[name]
        entry["accuracy"] = float(np.mean(list(by_seed.values())))
        entry["accuracy_by_seed"] = {str(seed): value for seed, value in sorted(by_seed.items())}
    m = lambda name: _median(results, name)  # noqa: E731
    data = splits(0)
    return {
        "unit": "ms/training", "epochs": size.digits_epochs, "train_examples": data.n_train,
        "test_examples": data.n_val, "seeds": len(accuracy["nnframe"]), "results": results,
        "rounds": rounds.as_dict(),
        "ratios": {"nnframe/numpy": ratio(m("nnframe"), m("numpy")),
                   "nnframe/sklearn": ratio(m("nnframe"), m("sklearn")),
                   "torch/nnframe": ratio(m("torch"), m("nnframe"))},
    }


class _DigitsSplits:
    """nnframe's digits dataset for a seed (train and test parts, standardized), built once per seed."""

    def __init__(self, config: Path, overrides: list[str]) -> None:
        self.config, self.overrides = config, overrides
        self._built: dict[int, Any] = {}

    def __call__(self, seed: int):
        if seed not in self._built:
            probe = Session(self.config, [*self.overrides, f"seed={seed}"], run_dir=False)
            self._built[seed] = probe.experiment.dataset
            probe.close()
        return self._built[seed]


def _seeded(name: str, accuracy: dict[str, dict[int, float]], fit_for_seed) -> SeededFits:
    return SeededFits(accuracy.setdefault(name, {}), fit_for_seed)


class SeededFits:
    """A measure whose ``k``-th kept call times ``fit_for_seed(k)``, which returns ``(seconds, test accuracy)``.

    A round that :func:`~benchmarks.timing.interleaved` measures again runs its
    seed again, so the accuracies stay those of seeds ``0 .. repeats - 1``
    however busy the machine was.
    """

    def __init__(self, record: dict[int, float], fit_for_seed) -> None:
        self.record, self.fit_for_seed, self.next_seed = record, fit_for_seed, 0

    def __call__(self) -> float:
        seed = self.next_seed
        seconds, self.record[seed] = self.fit_for_seed(seed)
        self.next_seed += 1
        return seconds

    def forget_last(self) -> None:
        self.next_seed -= 1
        del self.record[self.next_seed]


def _timed(fit) -> tuple[float, float]:
    started = time.perf_counter()
    accuracy = fit()
    return time.perf_counter() - started, accuracy


def _nnframe_fit(config: Path, overrides: list[str], accuracy: dict[str, dict[int, float]]):
    """Timed from the config file on, as ``nnframe train`` runs: reading and checking it, loading and splitting
    the data, building the model and the trainer, then ``fit``; removing the run directory is not timed."""
    def fit_for_seed(seed: int) -> tuple[float, float]:
        started = time.perf_counter()
        session = Session(config, [*overrides, f"seed={seed}"])
        try:
            test_accuracy = session.fit()["metrics"]["val/accuracy"]
            return time.perf_counter() - started, test_accuracy
        finally:
            session.close()
    return _seeded("nnframe", accuracy, fit_for_seed)


def _numpy_fit(splits: _DigitsSplits, epochs: int, accuracy: dict[str, dict[int, float]]):
    """The reference with the config's initial scales (Glorot: sqrt(2 / (fan_in + fan_out)))."""
    def fit_for_seed(seed: int) -> tuple[float, float]:
        data = splits(seed)

        def fit() -> float:  # the net's construction included, as nnframe's and scikit-learn's fits include theirs
            width = data.x.shape[1]
            rng = np.random.default_rng(seed)
            stds = [math.sqrt(2 / (width + 100)), math.sqrt(2 / (100 + 10))]
            model = MultiLayerNet([width, 100, 10], "relu", stds, rng, np.float32)
            ReferenceTrainer(model, Adam(lr=0.001), data.x, data.y, 32, rng).fit(epochs)
            return model.accuracy(data.x_val, data.y_val)
        return _timed(fit)
    return _seeded("numpy", accuracy, fit_for_seed)


def _torch_fit(splits: _DigitsSplits, epochs: int, accuracy: dict[str, dict[int, float]]):
    from benchmarks.pytorch.models import trainer

    def fit_for_seed(seed: int) -> tuple[float, float]:
        data = splits(seed)

        def fit() -> float:
            run = trainer([data.x.shape[1], 100, 10], "relu", "float32", "adam", 0.001, data.x, data.y, 32, seed=seed)
            run.fit(epochs)
            return run.accuracy(data.x_val, data.y_val)
        return _timed(fit)
    return _seeded("torch", accuracy, fit_for_seed)


def _sklearn_fit(splits: _DigitsSplits, epochs: int, accuracy: dict[str, dict[int, float]]):
    from benchmarks.sklearn_digits import fit_mlp

    def fit_for_seed(seed: int) -> tuple[float, float]:
        data = splits(seed)
        result = fit_mlp(data.x, data.y, data.x_val, data.y_val, epochs, seed=seed)
        return result["seconds"], result["accuracy"]
    return _seeded("sklearn", accuracy, fit_for_seed)

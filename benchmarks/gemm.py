"""The GEMM floor of an MLP step: its matrix products alone, timed with numpy in the run's dtype.

One training step of an MLP with layer widths ``sizes`` and batch ``B`` does
three products per layer: forward ``x W`` (B x D by D x H), the weight gradient
``xᵀ dy`` (D x B by B x H) and the input gradient ``dy Wᵀ`` (B x H by H x D),
each ``2 B D H`` flops. The step's flop count is therefore ``6 B Σ D H`` (the
input gradient of the first layer included, as every framework counts it even
where it skips it). The *peak* is the best rate numpy reaches on any of these
shapes in this run; the *floor* is the time of all the products together.

:func:`compare_libraries` times the products a training step actually runs
(the first layer's input gradient skipped, as nnframe and PyTorch do) with
numpy and with PyTorch on the same operands, so a run shows how much of the
step-time gap between the two frameworks is their BLAS (OpenBLAS against MKL).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from benchmarks.timing import RoundLog, interleaved, per_step, summarize


@dataclass
class Product:
    """One matrix product of the step, with preallocated operands and output."""

    name: str
    a: np.ndarray
    b: np.ndarray
    out: np.ndarray
    skipped_in_training: bool = False

    @property
    def flops(self) -> int:
        return 2 * self.a.shape[0] * self.a.shape[1] * self.b.shape[1]

    def __call__(self) -> None:
        np.matmul(self.a, self.b, out=self.out)

    def __repr__(self) -> str:
        return f"Product({self.name}: {self.a.shape} @ {self.b.shape})"


def step_flops(batch: int, sizes: Sequence[int]) -> int:
    """``6 B Σ D H``: forward, weight gradient and input gradient of every layer, the nine products of the
    issue's figures (its 64 % and 75 % of the GEMM peak count them), of which a step runs eight."""
    return 6 * batch * sum(d * h for d, h in zip(sizes[:-1], sizes[1:]))


def run_flops(batch: int, sizes: Sequence[int]) -> int:
    """:func:`step_flops` less the first layer's input gradient, which nnframe and PyTorch never compute: the
    products a step runs."""
    return step_flops(batch, sizes) - 2 * batch * sizes[0] * sizes[1]


def step_products(batch: int, sizes: Sequence[int], dtype: type, seed: int = 0) -> list[Product]:
    rng = np.random.default_rng(seed)
    products = []
    for i, (D, H) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        x = rng.standard_normal((batch, D)).astype(dtype)
        W = rng.standard_normal((D, H)).astype(dtype)
        dy = rng.standard_normal((batch, H)).astype(dtype)
        products += [
            Product(f"layer{i} x W ({batch}x{D} @ {D}x{H})", x, W, np.empty((batch, H), dtype)),
            Product(f"layer{i} xT dy ({D}x{batch} @ {batch}x{H})", x.T, dy, np.empty((D, H), dtype)),
            Product(f"layer{i} dy WT ({batch}x{H} @ {H}x{D})", dy, W.T, np.empty((batch, D), dtype),
                    skipped_in_training=i == 1),
        ]
    return products


def measure(batch: int, sizes: Sequence[int], dtype: type, repeats: int, calls: int = 3) -> dict:
    """Median time and GFLOP/s of each product, their sum (the step's GEMM floor) and the peak rate."""
    products = step_products(batch, sizes, dtype)
    rounds = RoundLog()
    samples = interleaved({p.name: per_step(p, calls) for p in products}, repeats, log=rounds)
    rows = []
    for p in products:
        seconds = summarize(samples[p.name])["median"]
        rows.append({"name": p.name, "flops": p.flops, "ms": seconds * 1e3, "gflops": p.flops / seconds / 1e9})
    floor_s = sum(row["ms"] for row in rows) / 1e3
    flops = step_flops(batch, sizes)
    return {
        "dtype": np.dtype(dtype).name,
        "batch": batch,
        "sizes": list(sizes),
        "products": rows,
        "step_gflop": flops / 1e9,
        "all_products_ms": floor_s * 1e3,
        "all_products_gflops": flops / floor_s / 1e9,
        "peak_gflops": max(row["gflops"] for row in rows),
        "rounds": rounds.as_dict(),
    }


class ProductSequence:
    """A measure: the products of one training step in turn, ``steps`` times after ``settle`` untimed times.

    Each product is timed on its own as well; ``by_product`` keeps, per
    sample (the warm-up's included), its mean seconds per step.
    """

    def __init__(self, names: list[str], calls: list[Callable[[], object]], steps: int, settle: int) -> None:
        self.names, self.calls = names, calls
        self.steps, self.settle = steps, settle
        self.by_product: dict[str, list[float]] = {name: [] for name in names}

    def forget_last(self) -> None:
        """Drop the per-product times of the last sample (its round was measured again)."""
        for times in self.by_product.values():
            times.pop()

    def __call__(self) -> float:
        for _ in range(self.settle):
            for call in self.calls:
                call()
        spent = [0.0] * len(self.calls)
        clock = time.perf_counter
        for _ in range(self.steps):
            for k, call in enumerate(self.calls):
                started = clock()
                call()
                spent[k] += clock() - started
        for name, seconds in zip(self.names, spent):
            self.by_product[name].append(seconds / self.steps)
        return sum(spent) / self.steps


def peak_in_rounds(products: Sequence[Product], sequence: ProductSequence, kept: int) -> dict:
    """The peak rate of a :class:`ProductSequence` timed among a workload's contenders, over its ``kept`` last
    samples: the best median rate of a product, and each round's best rate, in GFLOP/s; and each round's time
    of the products a training step runs (the nine less the first layer's input gradient), in seconds."""
    times = {p.name: sequence.by_product[p.name][-kept:] for p in products}
    peak = max(p.flops / statistics.median(times[p.name]) for p in products)
    by_round = [max(p.flops / times[p.name][k] for p in products) / 1e9 for k in range(kept)]
    run = [p for p in products if not p.skipped_in_training]
    products_run = [sum(times[p.name][k] for p in run) for k in range(kept)]
    return {"peak_gflops": peak / 1e9, "peak_gflops_by_round": by_round, "products_run_s_by_round": products_run}


def torch_call(product: Product) -> Callable[[], object]:
    """``torch.mm`` on the product's own arrays (shared memory, the same strides), into its output."""
    import torch

    a, b, out = (torch.from_numpy(array) for array in (product.a, product.b, product.out))
    return partial(torch.mm, a, b, out=out)


def compare_libraries(batch: int, sizes: Sequence[int], dtype: type, repeats: int, pause: float,
                      with_torch: bool, steps: int = 5, settle: int = 1) -> dict:
    """The products a training step runs, with numpy and (when ``with_torch``) PyTorch, interleaved.

    Both libraries get the same operands in the same layouts, the ones
    nnframe's Affine uses, so the difference is the BLAS alone.
    """
    products = [p for p in step_products(batch, sizes, dtype) if not p.skipped_in_training]
    names = [p.name for p in products]
    contenders = {"numpy": ProductSequence(names, list(products), steps, settle)}
    if with_torch:
        contenders["torch"] = ProductSequence(names, [torch_call(p) for p in products], steps, settle)
    rounds = RoundLog()
    samples = interleaved(contenders, repeats, pause=pause, log=rounds)
    libraries = {}
    for library, measure in contenders.items():
        kept = len(samples[library])  # the warm-up round is timed too, first
        libraries[library] = {**summarize(samples[library], 1e3),
                              "by_product_ms": {name: summarize(times[-kept:], 1e3)["median"]
                                                for name, times in measure.by_product.items()}}
    result = {"products": names, "libraries": libraries, "rounds": rounds.as_dict()}
    if with_torch:
        result["numpy/torch"] = libraries["numpy"]["median"] / libraries["torch"]["median"]
    return result

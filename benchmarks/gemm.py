"""The GEMM floor of an MLP step: its matrix products alone, timed with numpy in the run's dtype.

One training step of an MLP with layer widths ``sizes`` and batch ``B`` does
three products per layer: forward ``x W`` (B x D by D x H), the weight gradient
``xᵀ dy`` (D x B by B x H) and the input gradient ``dy Wᵀ`` (B x H by H x D),
each ``2 B D H`` flops. The step's flop count is therefore ``6 B Σ D H`` (the
input gradient of the first layer included, as every framework counts it even
where it skips it). The *peak* is the best rate numpy reaches on any of these
shapes in this run; the *floor* is the time of all the products together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.timing import RoundLog, interleaved, per_step, summarize


@dataclass
class Product:
    """One matrix product of the step, with preallocated operands and output."""

    name: str
    a: np.ndarray
    b: np.ndarray
    out: np.ndarray

    @property
    def flops(self) -> int:
        return 2 * self.a.shape[0] * self.a.shape[1] * self.b.shape[1]

    def __call__(self) -> None:
        np.matmul(self.a, self.b, out=self.out)

    def __repr__(self) -> str:
        return f"Product({self.name}: {self.a.shape} @ {self.b.shape})"


def step_flops(batch: int, sizes: Sequence[int]) -> int:
    """``6 B Σ D H``: forward, weight gradient and input gradient of every layer."""
    return 6 * batch * sum(d * h for d, h in zip(sizes[:-1], sizes[1:]))


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
            Product(f"layer{i} dy WT ({batch}x{H} @ {H}x{D})", dy, W.T, np.empty((batch, D), dtype)),
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

"""The matrix products of MatMul and Affine, written as the book writes them: ``np.dot``.

For 2-D operands ``np.dot`` and ``@`` call the same BLAS routine, but
``np.dot`` has less dispatch around it: on spiral's shapes (30x2 @ 2x10,
30x10 @ 10x3, float64) 0.55 µs a product against 0.8 µs, a fifth of
spiral's step over its five products. On mlp-large's shapes the two are the same.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def as_rows(array: np.ndarray, width: int) -> np.ndarray:
    """``array`` with its leading axes folded into one: ``(..., width) -> (M, width)``."""
    return array.reshape(-1, width)


def product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for a 2-D ``b``; ``a`` of more dimensions is batched as ``@`` batches it."""
    return np.dot(a, b) if a.ndim == 2 else a @ b


def product_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``a @ b`` of two 2-D arrays written into ``out``.

    ``np.dot`` takes only an ``out`` of the product's own dtype; where the
    inputs differ from it (float64 data fed to float32 parameters),
    ``np.matmul`` computes in theirs and casts.
    """
    try:
        return np.dot(a, b, out=out)
    except ValueError:
        return np.matmul(a, b, out=out)


def column_sums(rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``rows.sum(axis=0)`` written into ``out``, as the product ``1ᵀ rows``.

    BLAS's matrix-vector product beats numpy's reduction down the columns:
    mlp-large's bias gradient (256x1000, float32) 12 µs against 21 µs,
    spiral's (30x10, float64) 0.5 µs against 1.0 µs. The sums may differ in
    the last bits, as sums in another order do.
    """
    try:
        return np.dot(_ones(len(rows), rows.dtype), rows, out=out)
    except ValueError:
        return np.add.reduce(rows, axis=0, out=out)


@lru_cache(maxsize=32)
def _ones(count: int, dtype: np.dtype) -> np.ndarray:
    ones = np.ones(count, dtype)
    ones.flags.writeable = False
    return ones

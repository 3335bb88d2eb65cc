"""Small constant arrays the nodes compute with on every step, made once per shape and shared read-only.

They turn numpy's reductions and 2-D indexing along a short last axis, whose
iterator set-up costs more than the arithmetic on a small batch, into BLAS
products and flat ``take``: see :func:`nnframe.nodes.softmax.shifted_exp`
and :func:`nnframe.nodes.affine.column_sums`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=32)
def ones(shape: int | tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``np.ones(shape, dtype)``, read-only: multiplied by it, BLAS sums rows or columns."""
    return _read_only(np.ones(shape, dtype))


@lru_cache(maxsize=32)
def row_starts(rows: int, width: int) -> np.ndarray:
    """``[0, width, 2 width, ...]``, read-only: the flat index of each row's first element in a C-ordered
    ``(rows, width)`` array; add a column index per row to reach one element of each row."""
    return _read_only(np.arange(0, rows * width, width, dtype=np.intp))


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array

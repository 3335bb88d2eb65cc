"""Small constant arrays the nodes compute with on every step, made once per shape and shared read-only.

They turn numpy's reductions and 2-D indexing along a short last axis, whose
iterator set-up costs more than the arithmetic on a small batch, into BLAS
products and flat ``take``: see :func:`nnframe.nodes.softmax.shifted_exp`
and :func:`nnframe.nodes.affine.column_sums`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

KEPT_SIZE_LIMIT = 1 << 16
"""Elements above which an array is made anew on each call rather than kept: a batch's are kept, but not those of a
check that runs once over a whole dataset."""
KEPT_ARRAYS = 64
"""Arrays kept at most; later shapes are made anew on each call."""

_kept: dict[tuple[str, Any, Any], np.ndarray] = {}


def ones(shape: int | tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``np.ones(shape, dtype)``, read-only: multiplied by it, BLAS sums rows or columns."""
    array = _kept.get(("ones", shape, dtype))
    if array is None:
        array = _keep(("ones", shape, dtype), np.ones(shape, dtype))
    return array


def row_starts(rows: int, width: int) -> np.ndarray:
    """``[0, width, 2 width, ...]``, read-only: the flat index of each row's first element in a C-ordered
    ``(rows, width)`` array; add a column index per row to reach one element of each row."""
    array = _kept.get(("row_starts", rows, width))
    if array is None:
        array = _keep(("row_starts", rows, width), np.arange(0, rows * width, width, dtype=np.intp))
    return array


def _keep(key: tuple[str, Any, Any], array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    if array.size <= KEPT_SIZE_LIMIT and len(_kept) < KEPT_ARRAYS:
        _kept[key] = array
    return array

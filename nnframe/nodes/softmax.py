"""Softmax (eq. 1.1 of the seed), stable against overflow, and its node."""

from __future__ import annotations

import numpy as np

from nnframe.node import Node, backward_before_forward, check_dout
from nnframe.nodes.fixed_arrays import ones, row_starts


SHORT_ROW = 8
"""Rows up to this width get their sums repeated along the row (see :func:`_shifted_exp_rows`)."""
REPEATED_SUM_ROWS = 1024
"""Batches of at most this many rows (and at least two) get the repeated sums: numpy gives one row's product to
BLAS's matrix-vector product, whose columns may round apart by one unit, and OpenBLAS may split a long one between
threads, whose rounding then depends on how many there are (20,000 float32 rows 8 wide read differently with one
thread and two)."""


def shifted_exp(x: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(s, e, z)``: ``s = x - max(x)``, ``e = exp(s)``, ``z = Σ e`` along ``axis``, in a shape that broadcasts
    against ``e``: kept as an axis of length 1, or, along the short rows of a 2-D ``x``, repeated along each row.

    Shifting by the maximum leaves softmax unchanged and keeps every ``exp``
    at most 1, so logits of ±1000 cannot overflow. Terms that underflow to 0
    are the correct limit, and numpy ignores underflow unless told otherwise,
    so no ``np.errstate`` is paid for on this hot path.
    """
    if x.ndim == 2 and axis in (-1, 1) and x.shape[1] and x.dtype.kind == "f":
        return _shifted_exp_rows(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return shifted, e, e.sum(axis=axis, keepdims=True)


def _shifted_exp_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`shifted_exp` along the rows of a 2-D ``x``, with the same values and the same NaN and inf.

    numpy reduces along a short last axis one row at a time: on spiral's
    30x3 scores ``max`` took 1.6 us and ``sum`` 1.1. ``argmax`` has a fast
    path along the last axis, so each row's maximum is taken at its
    ``argmax`` (the first NaN where there is one, as ``max`` gives NaN), and
    the sums are a BLAS product with ones: 0.6 and 0.5 us. For a batch's
    rows up to :data:`SHORT_ROW` wide (see :data:`REPEATED_SUM_ROWS`), the
    ones are a square, so that each row's sum comes repeated along the row,
    at the cost of one column: dividing ``e`` by it then needs no broadcast,
    whose set-up per row cost more than the division (0.35 against 0.85 us
    on spiral's scores).
    """
    rows, width = x.shape
    peaks = x.take(row_starts(rows, width) + x.argmax(axis=1))
    shifted = x - peaks.reshape(rows, 1)
    e = np.exp(shifted)
    repeated = width <= SHORT_ROW and 1 < rows <= REPEATED_SUM_ROWS
    return shifted, e, np.dot(e, ones((width, width if repeated else 1), e.dtype))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``y_k = exp(x_k) / Σ_i exp(x_i)`` along ``axis``, computed as ``exp(x - max x) / Σ ...``."""
    _, e, total = shifted_exp(x, axis)
    e /= total
    return e


def log_softmax(x: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """``(log y, y)`` with ``log y = s - log Σ exp(s)``, ``s = x - max x`` (log-sum-exp).

    ``log y`` stays finite where ``y`` underflows to 0, which is why the loss
    uses it rather than ``log(softmax(x))``.
    """
    shifted, e, total = shifted_exp(x, axis)
    e /= total
    shifted -= np.log(total)
    return shifted, e


class Softmax(Node):
    """Softmax along ``axis`` (default the last): ``y = exp(x) / Σ exp(x)``.

    Shapes: any ``x`` -> ``y`` of the same shape, each slice along ``axis``
    summing to 1. Backward: ``dx = y * (dy - Σ_axis y * dy)``.
    """

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = axis
        self.out: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = softmax(x, self.axis)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.out is None:
            raise backward_before_forward(self)
        dout = check_dout(self, dout, self.out.shape)
        dx = self.out * dout
        dx -= self.out * dx.sum(axis=self.axis, keepdims=True)
        return dx

    def __repr__(self) -> str:
        return f"Softmax(axis={self.axis})"

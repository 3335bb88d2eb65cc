"""The MatMul node ``y = xW`` (fig. 1.5 of the seed)."""

from __future__ import annotations

from typing import Any

import numpy as np

from nnframe.arrays import zeros_like
from nnframe.node import Node, backward_before_forward, check_dout, weight


def product_error(node: str, x: np.ndarray, W: np.ndarray, error: ValueError) -> ValueError:
    """For ``x @ W`` failing on widths that disagree (a model given data of another width), an error in the book's
    terms rather than numpy's gufunc signature; otherwise numpy's own."""
    if np.ndim(x) and np.shape(x)[-1] != W.shape[0]:
        return ValueError(f"{node}: x has {np.shape(x)[-1]} features (shape {np.shape(x)}), but W {W.shape} takes "
                          f"{W.shape[0]}")
    return error


DOT_PRODUCT_LIMIT = 1 << 18
"""Multiply-adds up to which :func:`product` calls ``np.dot``. Below it ``np.dot`` was the faster in every shape
tried (spiral's and digits'), by its quicker dispatch (spiral's 30x2 by 2x10 0.53 us against 0.79). From about
10**6 on the dispatch is lost in the product, ``np.dot`` was as often the slower, and it has cliffs that matmul
has not: 256x10 by 10x1000 (mlp-large's last input gradient) took 31 us against 22 in float32, its weight
gradients ran 1-2.5 % slower, and on the Intel Xeon whole mlp-large steps lost 1.6-2.4 % (benchmarks/README.md,
*The bias gradient as 1ᵀ dy*)."""


def product(x: Any, W: np.ndarray) -> np.ndarray:
    """``x @ W``, through ``np.dot`` for a small product of plain matrices of one dtype, as a small model's
    training step has (:data:`DOT_PRODUCT_LIMIT`). The values are matmul's to the bit for contiguous operands, as a
    batch is; a strided matrix-vector product (an output width of 1) may round differently, where matmul runs a
    loop of its own that sums in another order. The rest keep ``@``: ``np.dot`` of higher-dimensional arrays is
    no BLAS product, it multiplies a masked array's hidden values, and it turns dtypes matmul refuses (strings,
    times) into other errors or objects. Comparing the dtypes' identity costs 0.02 us where their kinds cost
    0.1."""
    if (type(x) is np.ndarray and type(W) is np.ndarray and x.ndim == W.ndim == 2 and x.dtype is W.dtype
            and x.size * W.shape[1] <= DOT_PRODUCT_LIMIT):
        return np.dot(x, W)
    return x @ W


def product_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.matmul(a, b, out=out)``, through ``np.dot`` where :func:`product` would (0.49 us against 0.82 on
    spiral's ``dW``); ``np.dot`` takes only a C-ordered ``out`` of the product's own dtype, and refuses another (a
    float32 gradient of float64 rows) before writing anything, which then goes to matmul, which casts. The test
    is :func:`product`'s, written out again: as a function of its own it cost 0.07 us a product."""
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.ndim == b.ndim == 2 and a.dtype is b.dtype
            and a.size * b.shape[1] <= DOT_PRODUCT_LIMIT):
        try:
            return np.dot(a, b, out=out)
        except ValueError:
            pass
    return np.matmul(a, b, out=out)


def as_rows(array: np.ndarray, width: int) -> np.ndarray:
    """``array`` with its leading axes folded into one: ``(..., width) -> (M, width)``."""
    return array.reshape(-1, width)


class MatMul(Node):
    """Matrix product with a weight: ``y = x W``.

    Shapes: ``x: (N, D)`` (or any ``(..., D)``), ``W: (D, H)`` -> ``y: (N, H)``
    (``(..., H)``). Backward: ``dx = dy Wᵀ`` and ``dW = xᵀ dy``, with batched
    ``x`` folded to 2-D rows so ``dW`` sums over every leading axis. With
    ``need_dx`` off, ``dx`` is not computed and ``backward`` returns ``None``.
    """

    param_names = ("W",)
    output_is_fresh = True
    dx_is_fresh = True

    def __init__(self, W: np.ndarray) -> None:
        super().__init__()
        W = weight(W, "W", "MatMul")
        if W.ndim not in (1, 2):
            raise ValueError(f"MatMul: W must be a matrix (or a vector, for a dot product), found shape {W.shape}")
        self.params = [W]
        self.grads = [zeros_like(W)]
        self.x: np.ndarray | None = None
        self.out_shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        (W,) = self.params
        try:
            out = product(x, W)
        except ValueError as exc:
            raise product_error("MatMul", x, W, exc) from None
        self.x, self.out_shape = x, out.shape
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        (W,) = self.params
        x = self.x
        if x is None:
            raise backward_before_forward(self)
        dout = check_dout(self, dout, self.out_shape)  # batched rows would be refolded without a word
        rows = dout
        if W.ndim == 1:
            return self._backward_of_a_dot(W, x, dout)
        if x.ndim != 2:
            D, H = W.shape
            x, rows = as_rows(x, D), as_rows(dout, H)
        product_into(x.T, rows, self.grads[0])
        if not self.need_dx:
            return None
        return product(dout, W.T)

    def _backward_of_a_dot(self, w: np.ndarray, x: np.ndarray, dout: Any) -> np.ndarray | None:
        """A vector ``w``: ``y = x w`` is one dot product per row of ``x``, so ``dw = xᵀ dy`` and ``dx = dy wᵀ``
        with ``dy`` one number per row."""
        rows = np.reshape(x, (-1, w.shape[0]))
        np.matmul(np.reshape(dout, -1), rows, out=self.grads[0])
        if not self.need_dx:
            return None
        return np.multiply.outer(dout, w).reshape(np.shape(x))

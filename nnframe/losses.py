"""Loss nodes: the last node of a model, turning scores and targets into one number.

Every loss returns the *mean over the batch* (eq. 1.3 of the seed), so its
scale does not depend on the batch size, and ``backward`` divides by the same
``N``. Targets are validated here because a mismatch between the model's output
and the labels is the most common configuration mistake.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np

from nnframe.errors import DataError, not_written
from nnframe.node import backward_before_forward
from nnframe.nodes.activations import sigmoid
from nnframe.nodes.fixed_arrays import ones, row_starts
from nnframe.nodes.softmax import log_softmax, shifted_exp, softmax


class Loss:
    """Base of every loss: ``forward(x, t) -> float`` (batch mean), ``backward(dout=1.0) -> dx``.

    ``dx`` has ``x``'s shape and dtype. Losses have no parameters, but carry
    empty ``params`` and ``grads`` lists so they fit the node protocol.

    ``validate_targets`` checks the range of class-index targets on every
    call; building an experiment turns it off once every target of the
    dataset has been through the loss against the model's output shape,
    since the check costs as much as a tenth of a small model's step. With it
    off, a class index out of range is not caught: it may read another row's
    score.
    """

    def __init__(self) -> None:
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.validate_targets = True

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        raise not_written(self, "forward(x, t)", "nnframe.Loss")

    def backward(self, dout: float = 1.0) -> np.ndarray:
        raise not_written(self, "backward(dout)", "nnframe.Loss")

    def predictions(self, x: np.ndarray) -> np.ndarray | None:
        """The model's predictions, in the targets' units, from its scores ``x``: what a run that measures no
        accuracy compares with the targets for its error measures (``rmse``, ``mae``). The scores themselves by
        default, as a regression loss reads them; a loss whose scores are no predictions returns ``None``."""
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def scalar_dout(loss: object, dout: Any) -> float:
    """``dout`` as the one number it must be: the gradient of a loss, which is one number. An array would be
    broadcast over the batch's gradient without a word."""
    if type(dout) is float:
        return dout
    number = isinstance(dout, Real) or (isinstance(dout, np.ndarray) and dout.dtype.kind in "iuf")
    if not number or isinstance(dout, (bool, np.bool_)) or np.ndim(dout) != 0:
        found = f"shape {np.shape(dout)}" if isinstance(dout, (np.ndarray, list, tuple)) else repr(dout)
        raise ValueError(f"{type(loss).__name__}.backward: dout is the gradient of the loss, one number (1.0 by "
                         f"default); found {type(dout).__name__} {found}")
    return float(dout)


def _empty_batch(x: np.ndarray, loss: str) -> DataError:
    return DataError(f"{loss}: the batch is empty (scores of shape {x.shape}); a mean over no samples is undefined")


def _batch_mean(values: np.ndarray) -> float:
    return float(np.mean(values, dtype=np.float64))


DOT_SUM_LIMIT = 4096
"""Float64 loss terms summed as a BLAS product at most: OpenBLAS splits a longer dot product between threads,
and its sum would then depend on how many there are."""


def _mean_of_terms(terms: np.ndarray) -> float:
    """The mean of a 1-D array of one loss term per sample, summed in float64: float64 terms of a batch as a BLAS
    product with ones, where numpy's reduction sets up an iterator first (0.46 us against 0.77 for spiral's 30
    terms); the two round differently in the last bit."""
    if terms.dtype.type is np.float64 and len(terms) <= DOT_SUM_LIMIT:
        return float(np.dot(ones(len(terms), terms.dtype), terms)) / len(terms)
    return float(np.add.reduce(terms, dtype=np.float64)) / len(terms)


def _class_indices(t: np.ndarray, classes: int, loss: str) -> np.ndarray:
    if t.dtype.kind not in "iu":
        if t.dtype.kind not in "fb":
            raise DataError(f"{loss}: class-index targets must be whole numbers, found dtype {t.dtype}")
        fractional = t != np.round(t)
        if fractional.any():
            raise DataError(f"{loss}: class-index targets must be whole numbers, found "
                            f"{t[fractional].flat[0].item()!r} (one-hot targets take the scores' shape)")
        t = t.astype(np.intp)
    if t.size and not 0 <= t.min() <= t.max() < classes:
        raise DataError(f"{loss}: class indices must be in [0, {classes - 1}] for {classes} output classes, "
                        f"found labels from {t.min()} to {t.max()}; does the last layer's width match "
                        f"the number of classes?")
    return t


class SoftmaxWithLoss(Loss):
    """Softmax followed by cross-entropy (eqs. 1.1-1.3): ``L = -(1/N) Σ_n Σ_k t_nk log y_nk``.

    Shapes: scores ``x: (N, C)`` (or ``(..., C)``, every leading position
    counting as one sample); targets either class indices ``t: (N,)`` of
    integers in ``[0, C)`` or one-hot (or any probability) rows ``t: (N, C)``,
    none of whose values may be negative.
    ``log y`` comes from log-sum-exp, so logits of ±1000 give a finite loss.
    Backward: ``dx = dout * (y - t) / N`` with ``t`` one-hot. Rows of ``t``
    that do not sum to 1 (two labels at once, a row of zeros) take the
    general ``dx = dout * (y Σ_k t_k - t) / N``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.y: np.ndarray | None = None
        self.t: np.ndarray | None = None
        self._target_at = np.arange(0)

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        if x.ndim < 2:
            raise DataError(f"SoftmaxWithLoss: scores must be (N, C), found shape {x.shape}")
        if not x.size:
            raise _empty_batch(x, "SoftmaxWithLoss")
        t = np.asarray(t)
        if t.shape == x.shape:
            if self.validate_targets:
                _weights(t, x.shape)
            log_y, self.y = log_softmax(x)
            self.t = t
            return _batch_mean(-(t * log_y).sum(axis=-1))
        if t.shape != x.shape[:-1]:
            raise DataError(f"SoftmaxWithLoss: targets must be class indices of shape {x.shape[:-1]} or "
                            f"one-hot of shape {x.shape}, found shape {t.shape}")
        return self._forward_indices(x, t)

    def _forward_indices(self, x: np.ndarray, t: np.ndarray) -> float:
        """``L = mean_n (log Σ_k exp s_nk - s_n,t_n)`` with ``s = x - max x``: only the picked logits are needed.

        Each sample's term is at least 0 (``s_n,t_n <= 0 <= log Σ_k exp s_nk``),
        so the terms are summed, not the two sums subtracted.
        """
        classes = x.shape[-1]
        if self.validate_targets or t.dtype.kind not in "iu":
            t = _class_indices(t, classes, "SoftmaxWithLoss")
        self.t = t
        self._target_at = target_at = row_starts(t.size, classes) + t.reshape(-1).astype(np.intp, copy=False)
        shifted, e, total = shifted_exp(x)
        e /= total
        self.y = e
        losses = np.log(total[..., 0]).ravel()  # each sample's sum, once
        losses -= shifted.take(target_at)
        return _mean_of_terms(losses)

    def backward(self, dout: float = 1.0) -> np.ndarray:
        if self.y is None:
            raise backward_before_forward(self)
        dout = scalar_dout(self, dout)
        dx = self.y.copy()
        if self.t.shape == dx.shape:
            dx *= self.t.sum(axis=-1, keepdims=True)
            dx -= self.t
        else:
            dx.ravel()[self._target_at] -= 1.0  # a copy is C-ordered, so ravel is a view
        dx *= dout / (dx.size // dx.shape[-1])
        return dx

    def predictions(self, x: np.ndarray) -> np.ndarray:
        """The probability rows, ``softmax(x)``, which soft targets are compared with."""
        return softmax(x)


class SigmoidWithLoss(Loss):
    """Sigmoid followed by binary cross-entropy: ``L = (1/N) Σ softplus(x) - t x``.

    ``softplus(x) - t x = -[t log σ(x) + (1 - t) log(1 - σ(x))]``, computed with
    ``logaddexp(0, x)`` so large scores of either sign stay finite. Shapes:
    scores ``x: (N, ...)``; targets ``t`` in ``{0, 1}`` of ``x``'s shape, or
    ``(N,)`` when ``x`` is ``(N, 1)``. ``N`` is the batch axis; the loss sums
    over the other axes. Backward: ``dx = dout * (σ(x) - t) / N``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.y: np.ndarray | None = None
        self.t: np.ndarray | None = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        if not x.size:
            raise _empty_batch(x, "SigmoidWithLoss")
        t = _same_shape_target(x, np.asarray(t), "SigmoidWithLoss")
        if self.validate_targets:
            _probabilities(t)
        self.t = t
        self.y = sigmoid(x)
        with np.errstate(under="ignore"):
            per_element = np.logaddexp(0, x)
        per_element -= self.t * x
        return _batch_mean(per_element.reshape(len(x), -1).sum(axis=1))

    def backward(self, dout: float = 1.0) -> np.ndarray:
        if self.y is None:
            raise backward_before_forward(self)
        dout = scalar_dout(self, dout)
        dx = self.y.copy()
        dx -= self.t
        dx *= dout / len(dx)
        return dx

    def predictions(self, x: np.ndarray) -> np.ndarray:
        """The probabilities, ``sigmoid(x)``, which soft targets are compared with."""
        return sigmoid(x)


class MeanSquaredError(Loss):
    """Half squared error, averaged over the batch: ``L = (1/2N) Σ_n Σ_k (x_nk - t_nk)²``.

    The ``1/2`` makes the gradient plain ``(x - t)``; dividing by the batch size
    ``N`` (not by every element) matches the other losses, so a wider output
    adds to the loss. Shapes: ``x: (N, ...)``, ``t`` of ``x``'s shape (or
    ``(N,)`` when ``x`` is ``(N, 1)``). Backward: ``dx = dout * (x - t) / N``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.diff: np.ndarray | None = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        if not x.size:
            raise _empty_batch(x, "MeanSquaredError")
        t = _same_shape_target(x, np.asarray(t), "MeanSquaredError")
        self.diff = np.subtract(x, t, dtype=x.dtype if x.dtype.kind == "f" else np.float64)  # whole-number scores too
        squares = np.square(self.diff).reshape(len(x), -1).sum(axis=1)
        return 0.5 * _batch_mean(squares)

    def backward(self, dout: float = 1.0) -> np.ndarray:
        if self.diff is None:
            raise backward_before_forward(self)
        return self.diff * (scalar_dout(self, dout) / len(self.diff))


def _probabilities(t: np.ndarray) -> None:
    """Binary cross-entropy's targets are probabilities: outside [0, 1] its loss goes negative without a word."""
    if t.dtype.kind == "b" or not t.size:
        return
    if t.dtype.kind not in "iuf":
        raise DataError(f"SigmoidWithLoss: targets must be numbers in [0, 1], found dtype {t.dtype}")
    low, high = t.min(), t.max()
    if not 0 <= low <= high <= 1:  # NaN fails too
        bad = low if not 0 <= low <= 1 else high
        raise DataError(f"SigmoidWithLoss: targets must be in [0, 1] (0 or 1, or a probability), found {bad.item()!r}; "
                        "labels of -1 and 1 need mapping to 0 and 1")


def _weights(t: np.ndarray, scores_shape: tuple[int, ...]) -> None:
    """Softmax cross-entropy's target rows are weights of the classes (one-hot, probabilities, several labels):
    a negative one makes the loss go negative without a word."""
    if t.dtype.kind == "b" or not t.size:
        return
    if t.dtype.kind not in "iuf":
        raise DataError(f"SoftmaxWithLoss: targets of shape {t.shape} must be numbers, found dtype {t.dtype}")
    low = t.min()
    if not low >= 0:  # NaN fails too
        raise DataError(f"SoftmaxWithLoss: targets of shape {t.shape} are rows of class weights (one-hot, or "
                        f"probabilities), at least 0, found {low.item()!r}; class indices are given as integers of "
                        f"shape {scores_shape[:-1]}")


def _same_shape_target(x: np.ndarray, t: np.ndarray, loss: str) -> np.ndarray:
    if t.shape == x.shape:
        return t
    if x.ndim == 2 and x.shape[1] == 1 and t.shape == (x.shape[0],):
        return t.reshape(x.shape)
    raise DataError(f"{loss}: targets must have the scores' shape {x.shape}"
                    f"{' or ' + str((x.shape[0],)) if x.ndim == 2 and x.shape[1] == 1 else ''}, "
                    f"found shape {t.shape}")

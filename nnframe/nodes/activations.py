"""Elementwise activations: Sigmoid, ReLU, Tanh."""

from __future__ import annotations

import numpy as np

from nnframe.node import Node, backward_before_forward, check_dout


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` in ``x``'s dtype, in one buffer, computed as ``(1 + tanh(x / 2)) / 2``.

    The two are equal in exact arithmetic, and ``tanh`` cannot overflow, so
    no ``np.errstate`` is needed around it (that alone cost a third of the
    function). In floating point, ``1 + tanh`` cancels for very negative
    ``x``: the value keeps its absolute accuracy (errors below 1e-16 in
    float64, 2e-8 in float32) but not its relative one far in the tail
    (1e-8 at x = -20 and exactly 0 from about -37 in float64; from about -17
    in float32). A form exact there, ``exp(-logaddexp(0, -x))``, took twice
    as long on spiral's batch and seven times as long on a 256x1000 one.
    The constants are floats: numpy converts an int operand on a slower path
    (``out += 1`` 0.59 us on spiral's 30x10, ``out += 1.0`` 0.49).
    """
    out = np.multiply(x, 0.5)
    if type(out) is not np.ndarray:  # a number, or a 0-d array, in: numpy gives a scalar, which has no out=
        out = np.asarray(out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


class Sigmoid(Node):
    """Logistic sigmoid: ``y = 1 / (1 + exp(-x))``.

    Shapes: any ``x`` -> ``y`` of the same shape. Backward:
    ``dx = dy * y * (1 - y)``, from the cached output.
    """

    def __init__(self) -> None:
        super().__init__()
        self.out: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.out is None:
            raise backward_before_forward(self)
        dout = check_dout(self, dout, self.out.shape)
        dx = 1.0 - self.out
        dx *= self.out
        dx *= dout
        return dx

    def __repr__(self) -> str:
        return "Sigmoid()"


class ReLU(Node):
    """Rectified linear unit: ``y = max(x, 0)``.

    Shapes: any ``x`` -> ``y`` of the same shape. Backward: ``dx = dy * [x > 0]``.
    The boolean mask buffer is reused across calls while the shape stays the same.
    A float ``y`` is ``x.clip(0, inf)``: numpy's ``maximum`` against the scalar
    0 runs a loop without SIMD, and ``clip`` with both bounds does not (on a
    256x1000 float32 activation fresh from a matrix product, 23 us against 79;
    whole mlp-large steps took 0.980 of their time, an in-process A/B of 40
    rounds). ``clip`` keeps the sign of an input of -0.0, whose gradient is 0.
    Where the model allows it (see :class:`~nnframe.node.Node`), ``y`` is
    written over ``x`` and ``dx`` over ``dy``: whole mlp-large steps, with
    ReLU between Affine nodes, took 0.973-1.000 of the time of new arrays
    (six in-process A/B runs, median about 0.986).
    """

    can_overwrite = True

    def __init__(self) -> None:
        super().__init__()
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.mask is None or self.mask.shape != x.shape:
            self.mask = np.empty(x.shape, dtype=bool)
        np.greater(x, 0, out=self.mask)
        out = _written_over(x, self.overwrite_input)
        if x.dtype.kind == "f":
            return x.clip(0, np.inf, out=out)
        return np.maximum(x, 0, out=out)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.mask is None:
            raise backward_before_forward(self)
        dout = check_dout(self, dout, self.mask.shape)
        return np.multiply(dout, self.mask, out=_written_over(dout, self.overwrite_dout))

    def __repr__(self) -> str:
        return "ReLU()"


def _written_over(array: np.ndarray, allowed: bool) -> np.ndarray | None:
    """``array`` as a ufunc's ``out=`` where the model allows it; never a numpy scalar (``x @ W`` of two vectors)."""
    return array if allowed and isinstance(array, np.ndarray) else None


class Tanh(Node):
    """Hyperbolic tangent: ``y = tanh(x)``.

    Shapes: any ``x`` -> ``y`` of the same shape. Backward: ``dx = dy * (1 - y²)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.out: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.out is None:
            raise backward_before_forward(self)
        dout = check_dout(self, dout, self.out.shape)
        dx = np.square(self.out)
        dx = np.subtract(1.0, dx, out=_written_over(dx, True))  # a 0-d output squares to a scalar
        dx *= dout
        return dx

    def __repr__(self) -> str:
        return "Tanh()"

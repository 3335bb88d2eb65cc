"""Elementwise nodes of two inputs, ``Add`` and ``Mul``, with numpy broadcasting."""

from __future__ import annotations

import numpy as np

from nnframe.node import Node, backward_before_forward, check_dout


def reduce_to_shape(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting stretched, giving an array of ``shape``.

    A broadcast input is read once per copy, so — like the seed's Repeat node —
    its gradient is the sum over the copies.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    stretched = tuple(lead + i for i, size in enumerate(shape) if size == 1 and grad.shape[lead + i] != 1)
    summed = grad.sum(axis=tuple(range(lead)) + stretched, keepdims=True)
    return summed.reshape(shape)


def _unbroadcastable(node: Node, x: np.ndarray, y: np.ndarray, error: ValueError) -> ValueError:
    """The error for inputs whose shapes do not broadcast, in the node's terms; numpy's own for anything else."""
    try:
        np.broadcast_shapes(np.shape(x), np.shape(y))
    except ValueError:
        return ValueError(f"{type(node).__name__}: x of shape {np.shape(x)} and y of shape {np.shape(y)} do not "
                          "broadcast together: each axis, counted from the last, must be equal or 1 in one of them")
    return error


class Add(Node):
    """Sum of two inputs: ``z = x + y``, with broadcasting.

    Shapes: ``x``, ``y`` broadcastable -> ``z`` of the broadcast shape.
    Backward: ``(dz, dz)``, each summed back to its input's shape. When both
    inputs have ``z``'s shape, ``y`` gets a copy of ``dz`` so the two returned
    gradients never alias each other.
    """

    def __init__(self) -> None:
        super().__init__()
        self.shapes: tuple[tuple[int, ...], tuple[int, ...]] | None = None
        self.out_shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        try:
            z = x + y
        except ValueError as exc:
            raise _unbroadcastable(self, x, y, exc) from None
        self.shapes, self.out_shape = (x.shape, y.shape), z.shape
        return z

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.shapes is None:
            raise backward_before_forward(self)
        dout = check_dout(self, dout, self.out_shape)
        x_shape, y_shape = self.shapes
        dx = reduce_to_shape(dout, x_shape)
        dy = reduce_to_shape(dout, y_shape)
        if dy is dx:
            dy = dout.copy()
        return dx, dy


class Mul(Node):
    """Elementwise product of two inputs: ``z = x * y``, with broadcasting.

    Shapes: ``x``, ``y`` broadcastable -> ``z``. Backward: ``dx = dz * y`` and
    ``dy = dz * x`` (the inputs swapped), each summed back to its input's shape.
    """

    def __init__(self) -> None:
        super().__init__()
        self.x: np.ndarray | None = None
        self.y: np.ndarray | None = None
        self.out_shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        try:
            z = x * y
        except ValueError as exc:
            raise _unbroadcastable(self, x, y, exc) from None
        self.x, self.y, self.out_shape = x, y, z.shape
        return z

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.x is None:
            raise backward_before_forward(self)
        dout = check_dout(self, dout, self.out_shape)
        dx = reduce_to_shape(dout * self.y, self.x.shape)
        dy = reduce_to_shape(dout * self.x, self.y.shape)
        return dx, dy

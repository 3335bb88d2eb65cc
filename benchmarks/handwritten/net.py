"""Networks as in the book's ``ch01/two_layer_net.py``: layers in a list, a loss layer, flat params/grads."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmarks.handwritten.layers import Affine, Relu, Sigmoid, SoftmaxWithLoss

ACTIVATIONS = {"sigmoid": Sigmoid, "relu": Relu}


class MultiLayerNet:
    """Affine - activation - ... - Affine, then SoftmaxWithLoss.

    ``sizes`` are the layer widths, input first (``[2, 10, 3]``);
    ``weight_std[i]`` is the standard deviation of ``W`` in layer ``i``
    (the book uses 0.01); biases start at zero.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "sigmoid", weight_std: Sequence[float] | None = None,
                 rng: np.random.Generator | None = None, dtype: type = np.float64) -> None:
        rng = rng or np.random.default_rng()
        weight_std = weight_std or [0.01] * (len(sizes) - 1)
        self.layers = []
        for i in range(len(sizes) - 1):
            W = (weight_std[i] * rng.standard_normal((sizes[i], sizes[i + 1]))).astype(dtype)
            b = np.zeros(sizes[i + 1], dtype=dtype)
            self.layers.append(Affine(W, b))
            if i < len(sizes) - 2:
                self.layers.append(ACTIVATIONS[activation]())
        self.loss_layer = SoftmaxWithLoss()
        self.params, self.grads = [], []
        for layer in self.layers:
            self.params += layer.params
            self.grads += layer.grads

    def predict(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        score = self.predict(x)
        loss = self.loss_layer.forward(score, t)
        return loss

    def backward(self, dout: float = 1) -> np.ndarray:
        dout = self.loss_layer.backward(dout)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def accuracy(self, x: np.ndarray, t: np.ndarray) -> float:
        return float(np.mean(self.predict(x).argmax(axis=1) == t))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.layers))})"


class TwoLayerNet(MultiLayerNet):
    """The book's chapter 1 net: Affine - Sigmoid - Affine - SoftmaxWithLoss, weights ``0.01 * randn``."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, activation: str = "sigmoid",
                 weight_std: Sequence[float] = (0.01, 0.01), rng: np.random.Generator | None = None,
                 dtype: type = np.float64) -> None:
        super().__init__([input_size, hidden_size, output_size], activation, weight_std, rng, dtype)

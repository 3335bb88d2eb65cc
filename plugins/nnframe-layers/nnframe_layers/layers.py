"""The node classes, written in the book's style: ``params``, ``grads``, ``forward``, ``backward``.

Each node keeps the dtype of its input (float32 in, float32 out) and writes
parameter gradients in place, as the :class:`nnframe.Node` protocol requires.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from nnframe import Node

GELU_C = math.sqrt(2.0 / math.pi)
GELU_A = 0.044715
GELU_SATURATED = 10.0
"""Beyond this ``|x|``, ``tanh(u)`` is exactly +-1 in float32 and float64 (``u`` > 43), so the cube can stop there."""


def sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` written as ``(1 + tanh(z / 2)) / 2``: no overflow, dtype kept."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def write_scale_shift_grads(grads: list[np.ndarray], dout: np.ndarray, xhat: np.ndarray) -> None:
    """A normalisation's ``dgamma = sum(dout * xhat)`` and ``dbeta = sum(dout)`` over every axis but the last,
    written into ``grads``."""
    width = grads[0].shape[0]
    grads[0][...] = (dout * xhat).reshape(-1, width).sum(axis=0)
    grads[1][...] = dout.reshape(-1, width).sum(axis=0)


def normalised_dx(g: np.ndarray, xhat: np.ndarray, inv_std: np.ndarray,
                  mean: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``dx = (g - mean(g) - xhat * mean(g * xhat)) / std`` for ``g = dout * gamma``, ``mean`` taken over the
    axes the statistics were: a row's features for a layer norm, the batch for a batch norm."""
    return (g - mean(g) - xhat * mean(g * xhat)) * inv_std


class LayerNorm(Node):
    """Layer normalisation over the last axis: ``y = gamma * (x - mu) / sqrt(var + eps) + beta``.

    ``mu`` and ``var`` are the mean and (biased) variance of each row over its
    last axis, so every sample is normalised on its own, whatever the batch.

    Shapes: ``x: (..., D) -> (..., D)``; ``gamma, beta: (D,)``.
    Backward, with ``xhat = (x - mu) / std`` and ``g = dout * gamma``::

        dgamma = sum(dout * xhat)  dbeta = sum(dout)   (over every axis but the last)
        dx = (g - mean(g) - xhat * mean(g * xhat)) / std   (means over the last axis)
    """

    param_names = ("gamma", "beta")

    def __init__(self, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> None:
        super().__init__()
        if gamma.ndim != 1 or gamma.shape != beta.shape:
            raise ValueError(f"LayerNorm needs gamma and beta of one shape (D,); "
                             f"found gamma{gamma.shape} and beta{beta.shape}")
        if not eps > 0:
            raise ValueError(f"LayerNorm eps must be > 0; found {eps!r}")
        self.params = [gamma, beta]
        self.grads = [np.zeros_like(gamma), np.zeros_like(beta)]
        self.eps = float(eps)
        self.xhat: np.ndarray | None = None
        self.inv_std: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        gamma, beta = self.params
        if x.shape[-1] != gamma.shape[0]:
            raise ValueError(f"LayerNorm over {gamma.shape[0]} features got an input of shape {x.shape}")
        mu = x.mean(axis=-1, keepdims=True)
        xc = x - mu
        var = (xc * xc).mean(axis=-1, keepdims=True)
        self.inv_std = 1.0 / np.sqrt(var + self.eps)
        self.xhat = xc * self.inv_std
        return gamma * self.xhat + beta

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        write_scale_shift_grads(self.grads, dout, self.xhat)
        if not self.need_dx:
            return None
        return normalised_dx(dout * self.params[0], self.xhat, self.inv_std,
                             lambda a: a.mean(axis=-1, keepdims=True))

    def __repr__(self) -> str:
        return f"LayerNorm(gamma{self.params[0].shape}, beta{self.params[1].shape}, eps={self.eps!r})"


class BatchNorm(Node):
    """Batch normalisation (Ioffe & Szegedy, 2015): ``y = gamma * (x - mu) / sqrt(var + eps) + beta``.

    In training ``mu`` and ``var`` are the mean and (biased) variance of each
    feature over the batch (every axis but the last), and the running
    statistics move towards them: ``running = momentum * running + (1 -
    momentum) * batch``, with the batch's unbiased variance (a batch of one
    row leaves them, and itself comes out as ``beta``). In evaluation the
    running statistics stand in for the batch's, so a sample's output does not
    depend on the others. They are the node's ``state_names``: checkpoints
    save them, and a resume or ``nnframe.load_run`` puts them back.

    Shapes: ``x: (..., D) -> (..., D)``; ``gamma, beta, running_mean,
    running_var: (D,)``. Backward in training, with ``xhat = (x - mu) / std``,
    ``g = dout * gamma`` and means over the batch::

        dgamma = sum(dout * xhat)  dbeta = sum(dout)
        dx = (g - mean(g) - xhat * mean(g * xhat)) / std

    and in evaluation ``dx = g / std``, the statistics being constants.
    """

    param_names = ("gamma", "beta")
    state_names = ("running_mean", "running_var")

    def __init__(self, gamma: np.ndarray, beta: np.ndarray, momentum: float = 0.9, eps: float = 1e-5) -> None:
        super().__init__()
        if gamma.ndim != 1 or gamma.shape != beta.shape:
            raise ValueError(f"BatchNorm needs gamma and beta of one shape (D,); "
                             f"found gamma{gamma.shape} and beta{beta.shape}")
        if not 0 <= momentum < 1 or not eps > 0:
            raise ValueError(f"BatchNorm needs 0 <= momentum < 1 and eps > 0; found {momentum!r} and {eps!r}")
        self.params = [gamma, beta]
        self.grads = [np.zeros_like(gamma), np.zeros_like(beta)]
        self.running_mean = np.zeros_like(gamma)
        self.running_var = np.ones_like(gamma)
        self.momentum, self.eps = float(momentum), float(eps)
        self.xhat: np.ndarray | None = None
        self.inv_std: np.ndarray | None = None
        self.batch_statistics = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        gamma, beta = self.params
        if x.shape[-1] != gamma.shape[0]:
            raise ValueError(f"BatchNorm over {gamma.shape[0]} features got an input of shape {x.shape}")
        rows = x.reshape(-1, gamma.shape[0])
        self.batch_statistics = self.training
        if self.training:
            mu = rows.mean(axis=0)
            xc = x - mu
            var = (xc * xc).reshape(rows.shape).mean(axis=0)
            self._update_running(mu, var, len(rows))
        else:
            xc = x - self.running_mean
            var = self.running_var
        self.inv_std = 1.0 / np.sqrt(var + self.eps)
        self.xhat = xc * self.inv_std
        return gamma * self.xhat + beta

    def _update_running(self, mu: np.ndarray, var: np.ndarray, count: int) -> None:
        """Move the running statistics towards the batch's; a batch of one row, whose variance says nothing
        (the last short batch of an epoch), leaves them as they are."""
        if count < 2:
            return
        keep = self.momentum
        unbiased = var * (count / (count - 1))
        self.running_mean *= keep
        self.running_mean += (1.0 - keep) * mu
        self.running_var *= keep
        self.running_var += (1.0 - keep) * unbiased

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        write_scale_shift_grads(self.grads, dout, self.xhat)
        if not self.need_dx:
            return None
        gamma = self.params[0]
        g = dout * gamma
        if not self.batch_statistics:
            return g * self.inv_std
        return normalised_dx(g, self.xhat, self.inv_std, lambda a: a.reshape(-1, gamma.shape[0]).mean(axis=0))

    def __repr__(self) -> str:
        return (f"BatchNorm(gamma{self.params[0].shape}, beta{self.params[1].shape}, momentum={self.momentum!r}, "
                f"eps={self.eps!r})")


class GELU(Node):
    """Gaussian error linear unit, tanh approximation (Hendrycks & Gimpel, 2016).

    ``y = x / 2 * (1 + tanh(u))`` with ``u = c * (x + a x^3)``, ``c = sqrt(2/pi)``,
    ``a = 0.044715``. Elementwise: ``x: (...) -> (...)``.
    Backward: ``dx = dout * ((1 + t) / 2 + x / 2 * (1 - t^2) * c * (1 + 3 a x^2))``, ``t = tanh(u)``.
    ``u`` is computed from ``x`` clipped to ``+-GELU_SATURATED``, which changes no
    value, so that ``x^3`` cannot overflow to ``inf`` and turn a zero term into NaN.
    """

    def __init__(self) -> None:
        super().__init__()
        self.x: np.ndarray | None = None
        self.t: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        bounded = np.clip(x, -GELU_SATURATED, GELU_SATURATED)
        self.x = bounded
        self.t = np.tanh(GELU_C * (bounded + GELU_A * bounded * bounded * bounded))
        return 0.5 * x * (1.0 + self.t)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if not self.need_dx:
            return None
        x, t = self.x, self.t
        du_dx = GELU_C * (1.0 + 3.0 * GELU_A * x * x)
        return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du_dx)

    def __repr__(self) -> str:
        return "GELU()"


class Swish(Node):
    """Swish (SiLU when ``beta = 1``): ``y = x * sigmoid(beta * x)``, ``beta`` fixed, not trained.

    Elementwise: ``x: (...) -> (...)``.
    Backward, with ``s = sigmoid(beta * x)``: ``dx = dout * (s + beta * y * (1 - s))``.
    """

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = float(beta)
        self.s: np.ndarray | None = None
        self.y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.s = sigmoid(self.beta * x)
        self.y = x * self.s
        return self.y

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        if not self.need_dx:
            return None
        s = self.s
        return dout * (s + self.beta * self.y * (1.0 - s))

    def __repr__(self) -> str:
        return f"Swish(beta={self.beta!r})"

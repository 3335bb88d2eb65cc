"""The built-in losses, registered through the same hook a third-party plugin uses."""

from __future__ import annotations

from nnframe.components import Component, Params, loss
from nnframe.hookspecs import hookimpl
from nnframe.losses import Loss, MeanSquaredError, SigmoidWithLoss, SoftmaxWithLoss


class NoParams(Params):
    """A loss with nothing to configure."""


def build_softmax_cross_entropy(params: NoParams) -> Loss:
    """Softmax + cross-entropy, batch mean; targets are class indices (N,) or one-hot (N, C)."""
    return SoftmaxWithLoss()


def build_sigmoid_cross_entropy(params: NoParams) -> Loss:
    """Sigmoid + binary cross-entropy, batch mean; targets in {0, 1} shaped like the scores (in [0, 1] from a
    regression dataset: multi-label or soft targets, with no accuracy measured)."""
    return SigmoidWithLoss()


def build_mse(params: NoParams) -> Loss:
    """Half squared error summed per sample, batch mean: sum((y - t)^2) / 2N."""
    return MeanSquaredError()


@hookimpl
def nnframe_register_losses() -> list[Component]:
    return [
        loss("softmax_cross_entropy", NoParams, build_softmax_cross_entropy),
        loss("sigmoid_cross_entropy", NoParams, build_sigmoid_cross_entropy, takes_values=True),
        loss("mse", NoParams, build_mse, classification=False),
    ]

"""What a user configures for each optimizer: the pydantic parameter models of the update rules.

Each rule in :mod:`nnframe.optimizers` names its model as ``params_model``;
the registry builds the ``optimizer`` config section (and ``nnframe schema``)
from them.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from nnframe.components import Params


class OptimizerParams(Params):
    """Fields every optimizer has; each optimizer's subclass sets ``lr``'s default."""

    lr: float = Field(gt=0, description="Base learning rate (a schedule may change it every step).")
    weight_decay: float = Field(0.0, ge=0, description="Coupled L2 penalty: the rule sees g + weight_decay * p.")

    @field_validator("lr")
    @classmethod
    def _lr_above_zero(cls, lr: float) -> float:
        """Also where a plugin's subclass redeclares ``lr: float = 0.01``, which drops the field's ``gt=0``."""
        if isinstance(lr, (int, float)) and not lr > 0:  # a plugin may widen the type (None, "auto", a list)
            raise ValueError(f"the learning rate must be greater than 0, found {lr}")
        return lr

    @field_validator("weight_decay")
    @classmethod
    def _weight_decay_not_negative(cls, weight_decay: float) -> float:
        if isinstance(weight_decay, (int, float)) and not weight_decay >= 0:
            raise ValueError(f"weight_decay must be at least 0, found {weight_decay}")
        return weight_decay


class SGDParams(OptimizerParams):
    """Parameters of :class:`SGD`."""

    lr: float = Field(0.01, gt=0, description="Learning rate: p -= lr * g.")


class MomentumParams(OptimizerParams):
    """Parameters of :class:`Momentum`."""

    lr: float = Field(0.01, gt=0, description="Learning rate.")
    momentum: float = Field(0.9, ge=0, lt=1, description="Velocity decay: v = momentum * v - lr * g.")


class NesterovParams(OptimizerParams):
    """Parameters of :class:`Nesterov`."""

    lr: float = Field(0.01, gt=0, description="Learning rate.")
    momentum: float = Field(0.9, ge=0, lt=1, description="Velocity decay of the look-ahead momentum.")


BOOK_EPS = 1e-7
"""The book's epsilon, added to the root of the squared-gradient average."""


class AdaGradParams(OptimizerParams):
    """Parameters of :class:`AdaGrad`."""

    lr: float = Field(0.01, gt=0, description="Learning rate, divided by the root of the summed squared gradients.")
    eps: float = Field(BOOK_EPS, gt=0, description="Added to the root of the summed squared gradients.")


class RMSpropParams(OptimizerParams):
    """Parameters of :class:`RMSprop`."""

    lr: float = Field(0.01, gt=0, description="Learning rate.")
    decay_rate: float = Field(0.99, ge=0, lt=1, description="Decay of the squared-gradient average.")
    eps: float = Field(BOOK_EPS, gt=0, description="Added to the root of the squared-gradient average.")


class AdamParams(OptimizerParams):
    """Parameters of :class:`Adam`."""

    lr: float = Field(0.001, gt=0, description="Learning rate before bias correction.")
    beta1: float = Field(0.9, ge=0, lt=1, description="Decay of the gradient average m.")
    beta2: float = Field(0.999, ge=0, lt=1, description="Decay of the squared-gradient average v.")
    eps: float = Field(BOOK_EPS, gt=0, description="Added to sqrt(v) before the bias correction, as in the book "
                                                   "(PyTorch's Adam adds its 1e-8 after it).")


class AdamWParams(AdamParams):
    """Parameters of :class:`AdamW`: Adam's, with a decoupled ``weight_decay`` on by default."""

    weight_decay: float = Field(0.01, ge=0, description="Decoupled decay: each step first scales the parameters "
                                                        "by 1 - lr * weight_decay; the rule sees the plain gradient.")
    eps: float = Field(1e-8, gt=0, description="Added to sqrt(v) after the bias correction, as in PyTorch's AdamW.")

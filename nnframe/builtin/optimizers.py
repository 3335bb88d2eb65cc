"""The built-in optimizers, registered through the same hook a third-party plugin uses."""

from __future__ import annotations

from nnframe import optimizers as opt
from nnframe.components import Component, optimizer
from nnframe.hookspecs import hookimpl

BUILTIN = {
    "sgd": opt.SGD,
    "momentum": opt.Momentum,
    "nesterov": opt.Nesterov,
    "adagrad": opt.AdaGrad,
    "rmsprop": opt.RMSprop,
    "adam": opt.Adam,
    "adamw": opt.AdamW,
}


@hookimpl
def nnframe_register_optimizers() -> list[Component]:
    """sgd, momentum, nesterov, adagrad, rmsprop, adam and adamw."""
    return [optimizer(name, cls.params_model, cls.from_params, _summary(cls)) for name, cls in BUILTIN.items()]


def _summary(cls: type[opt.Optimizer]) -> str:
    """The class docstring, whose first paragraph :meth:`Component.summary` shows, without reST's literal marks."""
    return (cls.__doc__ or "").replace("``", "")

"""The plugin module nnframe loads through the ``nnframe`` entry point.

It is written exactly like nnframe's built-in node plugin: a hook
implementation returning components, each a name, a :class:`nnframe.Params`
model and a ``build(params, ctx)`` function.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from nnframe import NodeContext, Params, hookimpl
from nnframe.components import Component, node
from nnframe_layers.layers import GELU, BatchNorm, LayerNorm, Swish


class LayerNormParams(Params):
    """``layer_norm``: ``eps`` is added to the variance before the square root."""

    eps: float = Field(1e-5, gt=0)


class BatchNormParams(Params):
    """``batch_norm``: the running statistics keep ``momentum`` of themselves each training step; ``eps`` is
    added to the variance before the square root."""

    momentum: float = Field(0.9, ge=0, lt=1)
    eps: float = Field(1e-5, gt=0)


class GELUParams(Params):
    """``gelu`` takes no parameters."""


class SwishParams(Params):
    """``swish``: ``beta`` is the fixed slope inside the sigmoid (1.0 gives SiLU)."""

    beta: float = 1.0


def scale_and_shift(ctx: NodeContext) -> tuple[np.ndarray, np.ndarray]:
    """A normalisation's ``gamma`` (ones) and ``beta`` (zeros), one per input feature, in the model's dtype."""
    return np.ones((ctx.in_features,), dtype=ctx.dtype), np.zeros((ctx.in_features,), dtype=ctx.dtype)


def build_layer_norm(params: LayerNormParams, ctx: NodeContext) -> LayerNorm:
    """Layer normalisation over the last axis, with learned scale and shift."""
    return LayerNorm(*scale_and_shift(ctx), eps=params.eps)


def build_batch_norm(params: BatchNormParams, ctx: NodeContext) -> BatchNorm:
    """Batch normalisation over every axis but the last, with learned scale and shift and running statistics."""
    return BatchNorm(*scale_and_shift(ctx), momentum=params.momentum, eps=params.eps)


def build_gelu(params: GELUParams, ctx: NodeContext) -> GELU:
    """GELU activation, tanh approximation."""
    return GELU()


def build_swish(params: SwishParams, ctx: NodeContext) -> Swish:
    """Swish activation x * sigmoid(beta * x), beta fixed."""
    return Swish(beta=params.beta)


@hookimpl
def nnframe_register_nodes() -> list[Component]:
    return [
        node("layer_norm", LayerNormParams, build_layer_norm),
        node("batch_norm", BatchNormParams, build_batch_norm),
        node("gelu", GELUParams, build_gelu),
        node("swish", SwishParams, build_swish),
    ]

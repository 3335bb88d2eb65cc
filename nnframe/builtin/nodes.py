"""The built-in graph nodes, registered through the same hook a third-party plugin uses."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from nnframe.arrays import zeros
from nnframe.components import Component, NodeContext, Params, node
from nnframe.errors import ConfigError, GraphError
from nnframe.hookspecs import hookimpl
from nnframe.initializers import initialize
from nnframe.limits import MAX_COUNT
from nnframe.node import Node
from nnframe.nodes import Add, Affine, Dropout, Flatten, MatMul, Mul, ReLU, Repeat, Sigmoid, Softmax, Sum, Tanh


class NoParams(Params):
    """A node configured by its inputs alone."""


class MatMulParams(Params):
    """``y = xW`` with no bias."""

    out: int = Field(gt=0, le=MAX_COUNT, description="Output width H: W has shape (input width, H).")
    init: Literal["normal", "xavier", "he", "glorot"] = Field(
        "normal", description="Weight initialiser: 'normal' (scale * randn, as in the book), "
                              "'xavier' (randn * sqrt(1/fan_in)), 'he' (randn * sqrt(2/fan_in)) "
                              "or 'glorot' (randn * sqrt(2/(fan_in + fan_out))).")
    scale: float = Field(0.01, gt=0, description="Standard deviation of the 'normal' initialiser.")


class AffineParams(MatMulParams):
    """``y = xW + b``."""

    bias: bool = Field(True, description="Add a bias b of shape (H,), initialised to zeros; "
                                         "false builds a MatMul node.")


class RepeatParams(Params):
    """Copy the input ``n`` times along ``axis``."""

    n: int = Field(ge=1, le=MAX_COUNT, description="Number of copies.")
    axis: int = Field(0, description="Axis to repeat along (0 is the batch axis).")


class SumParams(Params):
    """Sum along ``axis``, keeping it with size 1."""

    axis: int = Field(0, description="Axis to sum along (0 is the batch axis).")


class SoftmaxParams(Params):
    """Softmax along ``axis``."""

    axis: int = Field(-1, description="Axis whose entries are normalised to sum to 1 (the last by default).")


class DropoutParams(Params):
    """Inverted dropout."""

    ratio: float = Field(0.5, ge=0, lt=1, description="Probability of zeroing a unit while training; "
                                                      "kept units are scaled by 1/(1 - ratio).")


def _weight(params: MatMulParams, ctx: NodeContext) -> np.ndarray:
    return initialize((ctx.in_features, params.out), params.init, params.scale, ctx.rng, ctx.dtype)


def _check_inputs(ctx: NodeContext, kind: str, count: int) -> None:
    if len(ctx.input_shapes) != count:
        raise GraphError(f"node {ctx.name!r} ({kind}) takes {count} input{'s' if count > 1 else ''}, "
                         f"found {len(ctx.input_shapes)}; list them under 'inputs' in the graph form")


def _check_axis(ctx: NodeContext, kind: str, axis: int) -> None:
    ndim = len(ctx.input_shapes[0])
    if not -ndim <= axis < ndim:
        raise ConfigError(f"node {ctx.name!r} ({kind}): axis {axis} is out of range for an input of "
                          f"shape {tuple(ctx.input_shapes[0])} (batch axis first); use -{ndim}..{ndim - 1}")


def build_matmul(params: MatMulParams, ctx: NodeContext) -> Node:
    """Matrix product y = xW (no bias)."""
    _check_inputs(ctx, "matmul", 1)
    return MatMul(_weight(params, ctx))


def build_affine(params: AffineParams, ctx: NodeContext) -> Node:
    """Fully connected layer y = xW + b."""
    _check_inputs(ctx, "affine", 1)
    W = _weight(params, ctx)
    return Affine(W, zeros((params.out,), ctx.dtype)) if params.bias else MatMul(W)


def build_add(params: NoParams, ctx: NodeContext) -> Node:
    """Sum of two inputs, z = x + y (broadcasting)."""
    _check_inputs(ctx, "add", 2)
    return Add()


def build_mul(params: NoParams, ctx: NodeContext) -> Node:
    """Elementwise product of two inputs, z = x * y (broadcasting)."""
    _check_inputs(ctx, "mul", 2)
    return Mul()


def build_repeat(params: RepeatParams, ctx: NodeContext) -> Node:
    """Copy the input n times along an axis; backward sums the copies."""
    _check_inputs(ctx, "repeat", 1)
    _check_axis(ctx, "repeat", params.axis)
    return Repeat(params.n, params.axis)


def build_sum(params: SumParams, ctx: NodeContext) -> Node:
    """Sum along an axis; backward repeats the gradient (the inverse of repeat)."""
    _check_inputs(ctx, "sum", 1)
    _check_axis(ctx, "sum", params.axis)
    return Sum(params.axis)


def build_sigmoid(params: NoParams, ctx: NodeContext) -> Node:
    """Logistic sigmoid, y = 1 / (1 + exp(-x))."""
    _check_inputs(ctx, "sigmoid", 1)
    return Sigmoid()


def build_relu(params: NoParams, ctx: NodeContext) -> Node:
    """Rectified linear unit, y = max(x, 0)."""
    _check_inputs(ctx, "relu", 1)
    return ReLU()


def build_tanh(params: NoParams, ctx: NodeContext) -> Node:
    """Hyperbolic tangent, y = tanh(x)."""
    _check_inputs(ctx, "tanh", 1)
    return Tanh()


def build_softmax(params: SoftmaxParams, ctx: NodeContext) -> Node:
    """Softmax along an axis (numerically stable)."""
    _check_inputs(ctx, "softmax", 1)
    _check_axis(ctx, "softmax", params.axis)
    return Softmax(params.axis)


def build_dropout(params: DropoutParams, ctx: NodeContext) -> Node:
    """Inverted dropout; the identity when not training."""
    _check_inputs(ctx, "dropout", 1)
    return Dropout(params.ratio, rng=np.random.default_rng(ctx.rng.integers(2**63)))


def build_flatten(params: NoParams, ctx: NodeContext) -> Node:
    """Each example as one vector, (N, d1, d2, ...) -> (N, d1 * d2 * ...), for an affine node to read."""
    _check_inputs(ctx, "flatten", 1)
    return Flatten()


@hookimpl
def nnframe_register_nodes() -> list[Component]:
    return [
        node("matmul", MatMulParams, build_matmul),
        node("affine", AffineParams, build_affine),
        node("add", NoParams, build_add),
        node("mul", NoParams, build_mul),
        node("repeat", RepeatParams, build_repeat),
        node("sum", SumParams, build_sum),
        node("sigmoid", NoParams, build_sigmoid),
        node("relu", NoParams, build_relu),
        node("tanh", NoParams, build_tanh),
        node("softmax", SoftmaxParams, build_softmax),
        node("dropout", DropoutParams, build_dropout),
        node("flatten", NoParams, build_flatten),
    ]

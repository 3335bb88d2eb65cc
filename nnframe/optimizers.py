"""Update rules, as in the book's ``common/optimizer.py``, keyed by parameter name.

Each rule is a subclass of :class:`~nnframe.optimizer_base.Optimizer` that
writes its step with ``out=`` arithmetic through a scratch array: over a
part's blocks in ``_update_each``, its constants from
:func:`~nnframe.optimizer_base.scalars_per_block`, or for one array in
``_update_one`` (SGD, whose update is never split). Binding, state, weight
decay, blocks and threads are the base class's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nnframe.optimizer_base import Optimizer, one_block_of_update_each, scalars_per_block
from nnframe.optimizer_params import (
    BOOK_EPS,
    AdaGradParams,
    AdamParams,
    AdamWParams,
    MomentumParams,
    NesterovParams,
    OptimizerParams,
    RMSpropParams,
    SGDParams,
)

__all__ = ["EPS", "SGD", "AdaGrad", "Adam", "AdamW", "Momentum", "Nesterov", "Optimizer", "RMSprop"]

EPS = BOOK_EPS
"""The epsilon of the book's rules (AdaGrad, RMSprop, Adam), their ``eps`` field's default."""
BETA1_KEY, BETA2_KEY = "beta1", "beta2"
"""Adam's state keys for the betas its sums were taken with (a parameter's keys all hold a dot)."""


class SGD(Optimizer):
    """Stochastic gradient descent: ``p -= lr * g``.

    Its two passes are done before a second thread is under way: split
    between two threads, mlp-large's SGD update took 0.76 ms against
    0.61 ms in one part, so it stays in one.
    """

    params_model = SGDParams

    def _update_one(self, p: np.ndarray, g: np.ndarray, tmp: np.ndarray, *state: np.ndarray) -> None:
        np.multiply(g, self.lr, out=tmp)
        p -= tmp


class Momentum(Optimizer):
    """Momentum SGD: ``v = momentum * v - lr * g; p += v``."""

    params_model = MomentumParams
    parallel_blocks = True
    slots = ("v",)
    _update_one = one_block_of_update_each

    def _update_each(self, blocks: Sequence[tuple[np.ndarray, ...]]) -> None:
        constants = scalars_per_block(blocks, Momentum, (self.config.momentum, self.lr))
        for (p, g, tmp, v), (momentum, lr) in zip(blocks, constants):
            v *= momentum
            np.multiply(g, lr, out=tmp)
            v -= tmp
            p += v


class Nesterov(Optimizer):
    """Nesterov's accelerated gradient in the book's form, whose code cites arXiv:1212.0901.

    ``v = momentum * v - lr * g; p += momentum**2 * v - (1 + momentum) * lr * g``,
    with the updated ``v``: the first step moves ``p`` by
    ``(1 + momentum + momentum**2) lr g``, further than the paper's form and
    PyTorch's ``nesterov=True`` (``(1 + momentum) lr g``), which use the old ``v``.
    """

    params_model = NesterovParams
    parallel_blocks = True
    slots = ("v",)
    _update_one = one_block_of_update_each

    def _update_each(self, blocks: Sequence[tuple[np.ndarray, ...]]) -> None:
        momentum, lr = self.config.momentum, self.lr
        constants = scalars_per_block(blocks, Nesterov, (momentum, lr, momentum * momentum, (1 + momentum) * lr))
        for (p, g, tmp, v), (momentum, lr, momentum_squared, lr_of_g) in zip(blocks, constants):
            v *= momentum
            np.multiply(g, lr, out=tmp)
            v -= tmp
            np.multiply(v, momentum_squared, out=tmp)
            p += tmp
            np.multiply(g, lr_of_g, out=tmp)
            p -= tmp


class AdaGrad(Optimizer):
    """AdaGrad: ``h += g * g; p -= lr * g / (sqrt(h) + eps)`` (eps 1e-7, the book's)."""

    params_model = AdaGradParams
    parallel_blocks = True
    slots = ("h",)
    _update_one = one_block_of_update_each

    def _update_each(self, blocks: Sequence[tuple[np.ndarray, ...]]) -> None:
        constants = scalars_per_block(blocks, AdaGrad, (self.config.eps, self.lr))
        for (p, g, tmp, h), (eps, lr) in zip(blocks, constants):
            np.square(g, out=tmp)
            h += tmp
            _scaled_step(p, g, h, tmp, eps, lr)


class RMSprop(Optimizer):
    """RMSprop: ``h = decay_rate * h + (1 - decay_rate) * g * g; p -= lr * g / (sqrt(h) + eps)`` (eps 1e-7)."""

    params_model = RMSpropParams
    parallel_blocks = True
    slots = ("h",)
    _update_one = one_block_of_update_each

    def _update_each(self, blocks: Sequence[tuple[np.ndarray, ...]]) -> None:
        decay = self.config.decay_rate
        constants = scalars_per_block(blocks, RMSprop, (decay, 1 - decay, self.config.eps, self.lr))
        for (p, g, tmp, h), (decay, one_minus_decay, eps, lr) in zip(blocks, constants):
            h *= decay
            np.square(g, out=tmp)
            tmp *= one_minus_decay
            h += tmp
            _scaled_step(p, g, h, tmp, eps, lr)


class Adam(Optimizer):
    """Adam (arXiv:1412.6980) with the book's bias correction folded into the rate.

    At step ``t``: ``lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)``;
    ``m = beta1 * m + (1 - beta1) * g``; ``v = beta2 * v + (1 - beta2) * g**2``;
    ``p -= lr_t * m / (sqrt(v) + eps)``, eps 1e-7 (PyTorch adds its eps after the bias correction: see AdamW).

    The averages are kept as the decayed sums they are a fixed multiple of,
    ``m_sum = m / (1 - beta1)`` and ``v_sum = v / (1 - beta2)``, whose
    updates, ``m_sum = beta1 * m_sum + g`` and ``v_sum = beta2 * v_sum + g**2``,
    take one pass over the arrays fewer each; the factors go into the step's
    scalars: ``p -= rate * m_sum / (sqrt(v_sum) + eps / sqrt(1 - beta2))``
    with ``rate = lr_t * (1 - beta1) / sqrt(1 - beta2)``. Ten passes instead of
    twelve: whole mlp-large steps took 0.984 of their time (an in-process A/B
    of 40 rounds). Checkpoints keep the sums, so that a resumed run takes the
    same steps as one never stopped. A float32 ``v_sum`` overflows at
    gradients ``sqrt(1 - beta2)`` times the size at which ``v`` would (about
    5.8e17 with beta2 = 0.999, against 1.8e19); a parameter whose sum has
    overflowed stops moving.
    """

    params_model = AdamParams
    parallel_blocks = True
    slots = ("m_sum", "v_sum")

    def _begin_step(self) -> None:
        beta1, beta2, t = self.config.beta1, self.config.beta2, self.step
        self._lr_t = self.lr * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)

    def _eps_now(self) -> float:
        """The epsilon added to ``sqrt(v)`` in this step's folded form."""
        return self.config.eps

    _update_one = one_block_of_update_each

    def _update_each(self, blocks: Sequence[tuple[np.ndarray, ...]]) -> None:
        """The sums, each term computed on its own, over blocks in a loop of its own.

        ``v_sum`` is never written as ``beta2 * (v_sum - g**2) + g**2``, which
        would lose about ten bits of a float32 sum while ``g**2`` dwarfs it
        (the first steps). ``np.square`` is twice as fast as ``g * g``.
        The constants are taken once per part, not once per block, and as
        arrays (see :meth:`~nnframe.optimizer_base.PlanPart.scalars`), for the
        parts wait for each other's Python work: with this loop whole
        mlp-large steps took 0.975 and 0.957 of their time before the block
        views were kept, against 0.985 and 0.974 with the views alone.
        """
        beta1, beta2 = self.config.beta1, self.config.beta2
        root = math.sqrt(1.0 - beta2)
        rate, eps = self._lr_t * (1.0 - beta1) / root, self._eps_now() / root
        constants = scalars_per_block(blocks, Adam, (beta1, beta2, rate, eps))
        for (p, g, tmp, m_sum, v_sum), (beta1, beta2, rate, eps) in zip(blocks, constants):
            m_sum *= beta1
            m_sum += g
            v_sum *= beta2
            np.square(g, out=tmp)
            v_sum += tmp
            np.sqrt(v_sum, out=tmp)
            tmp += eps
            np.divide(m_sum, tmp, out=tmp)
            tmp *= rate
            p -= tmp

    def state_dict(self) -> dict[str, np.ndarray]:
        """:meth:`Optimizer.state_dict`, with the betas the sums were taken with, where this rule keeps Adam's
        sums: a resume under other betas brings the sums to them (see :meth:`_reconfigured`)."""
        state = super().state_dict()
        if self._keeps_adams_sums():
            state[BETA1_KEY], state[BETA2_KEY] = np.float64(self.config.beta1), np.float64(self.config.beta2)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """:meth:`Optimizer.load_state_dict`; where this rule keeps Adam's sums, the averages ``<name>.m`` and
        ``<name>.v`` that its checkpoints held before them are taken too, as sums, and sums taken with other
        betas than this optimizer's are brought to its own (a checkpoint without its betas has its sums taken
        as they are)."""
        if self.names is None or not self._keeps_adams_sums():
            super().load_state_dict(state)
            return
        state = dict(state)
        summed_with = (float(state.pop(BETA1_KEY, self.config.beta1)), float(state.pop(BETA2_KEY, self.config.beta2)))
        super().load_state_dict(_sums_from_averages(state, self.names, self.config.beta1, self.config.beta2))
        self._rescale_sums(*summed_with)

    def _reconfigured(self, before: OptimizerParams) -> None:
        """A beta set on the object changes how the averages decay from the next update, not their values: the
        sums, ``m / (1 - beta1)`` and ``v / (1 - beta2)``, were read with the new betas otherwise (100 times too
        large a ``v`` from ``beta2 = 0.9`` after 0.999)."""
        if self.names is not None and self._keeps_adams_sums():
            self._rescale_sums(before.beta1, before.beta2)

    def _rescale_sums(self, beta1: float, beta2: float) -> None:
        """The sums taken with ``beta1`` and ``beta2`` as the same averages' sums under this optimizer's betas."""
        for slot, then, now in (("m_sum", beta1, self.config.beta1), ("v_sum", beta2, self.config.beta2)):
            if then != now:
                for arrays in self.state.values():
                    arrays[slot] *= (1.0 - then) / (1.0 - now)

    def _keeps_adams_sums(self) -> bool:
        """Whether this rule's slots are Adam's sums: a subclass with slots of its own, or a step of its own,
        may keep averages named ``m`` and ``v``, which must not be scaled."""
        cls = type(self)
        return (cls.slots == Adam.slots and cls._update_one is one_block_of_update_each
                and cls._update_each is Adam._update_each)


def _sums_from_averages(state: dict[str, np.ndarray], names: list[str], beta1: float,
                        beta2: float) -> dict[str, np.ndarray]:
    """``state`` with each bound parameter's averages ``m`` and ``v`` as the sums ``m_sum`` and ``v_sum``, where
    it holds the averages and not the sums."""
    sums = dict(state)
    for name in names:
        for slot, scale in (("m", 1.0 - beta1), ("v", 1.0 - beta2)):
            average, total = f"{name}.{slot}", f"{name}.{slot}_sum"
            if average in sums and total not in sums:
                sums[total] = np.asarray(sums.pop(average)) / scale
    return sums


class AdamW(Adam):
    """PyTorch's AdamW (arXiv:1711.05101): ``p *= 1 - lr * weight_decay``, then Adam's step with eps after the bias
    correction.

    Adam's ``weight_decay`` is L2 added to the gradient, which Adam then
    divides by the root of ``v``, so parameters with large gradients are
    barely decayed; AdamW's shrinks every parameter alike. As in PyTorch's
    ``AdamW``, the decay follows the scheduled rate and defaults to 0.01,
    and ``eps`` (1e-8) is added to ``sqrt(v / (1 - beta2**t))``; in Adam's
    folded form that is ``eps * sqrt(1 - beta2**t)`` added to ``sqrt(v)``.
    """

    params_model = AdamWParams
    decoupled_weight_decay = True

    def _eps_now(self) -> float:
        return self.config.eps * math.sqrt(1.0 - self.config.beta2**self.step)


def _scaled_step(p: np.ndarray, g: np.ndarray, h: np.ndarray, tmp: np.ndarray,
                 eps: float | np.ndarray, lr: float | np.ndarray) -> None:
    """``p -= lr * g / (sqrt(h) + eps)`` through ``tmp`` (AdaGrad's and RMSprop's step)."""
    np.sqrt(h, out=tmp)
    tmp += eps
    np.divide(g, tmp, out=tmp)
    tmp *= lr
    p -= tmp

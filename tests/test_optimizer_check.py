"""nnframe.testing.check_optimizer: what an optimizer plugin's rule must keep for training and resumes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import nnframe
from nnframe.builtin.optimizers import BUILTIN
from nnframe.testing import OptimizerCheckError, check_optimizer


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_rule_passes(name: str, dtype: type) -> None:
    check_optimizer(lambda: BUILTIN[name](lr=0.01, weight_decay=0.01), dtype=dtype)


class CountsOnSelf(nnframe.Optimizer):
    """Broken on purpose: a count kept on self, which no checkpoint holds."""

    def _update_one(self, p, g, tmp):
        self.calls = getattr(self, "calls", 0) + 1
        np.multiply(g, self.lr * self.calls, out=tmp)
        p -= tmp


class ByNorm(nnframe.Optimizer):
    """A step of length lr along each parameter's gradient: it reads the norm of what it is given."""

    def _update_one(self, p, g, tmp):
        np.multiply(g, self.lr / (np.linalg.norm(g) + 1e-12), out=tmp)
        p -= tmp


class ByNormWhole(ByNorm):
    elementwise = False


class Rebinds(nnframe.Optimizer):
    def _update_one(self, p, g, tmp):
        p = p - self.lr * g  # noqa: F841


class RebindsItsSlot(nnframe.Optimizer):
    """Broken on purpose: momentum whose average is a new array each step, so the slot stays as made and the
    rule trains as plain SGD."""

    slots = ("m",)

    def _update_one(self, p, g, tmp, m):
        m = 0.9 * m + g
        np.multiply(m, self.lr, out=tmp)
        p -= tmp


class ReplacesItsParameters(nnframe.Optimizer):
    def update(self, params, grads):
        for i, (p, g) in enumerate(zip(params, grads)):
            params[i] = p - self.lr * g


@pytest.mark.parametrize(("cls", "message"), [
    (CountsOnSelf, r"resumed from its state_dict after step 1, parameter 'layer/W' ends .* away from where it ends "
                   r"trained straight through on separate arrays; keep every array the rule carries from step to "
                   r"step in its slots"),
    (ByNorm, r"updating parameters that are views of one buffer, .* a rule that reads a parameter's shape, size or "
             r"norm sets elementwise = False"),
    (Rebinds, r"Rebinds's first update left layer/W, layer/b, big/W unchanged though every gradient is non-zero"),
    (ReplacesItsParameters, r"ReplacesItsParameters.update replaced an array in the list of parameters"),
    (RebindsItsSlot, r"RebindsItsSlot left its slot 'm' all zeros through 6 updates with non-zero gradients; write "
                     r"into it in place"),
])
def test_a_broken_rule_is_named_with_the_fix(cls: type, message: str) -> None:
    with pytest.raises(OptimizerCheckError, match=message):
        check_optimizer(lambda: cls(lr=0.1))


class LateAverage(nnframe.Optimizer):
    """SGD that starts a running average of its parameters at step 100 (stochastic weight averaging): right, with
    a slot that stays zero through the check's steps."""

    slots = ("avg",)

    def _update_one(self, p, g, tmp, avg):
        np.multiply(g, self.lr, out=tmp)
        p -= tmp
        if self.step >= 100:
            avg += (p - avg) / (self.step - 99)


def test_a_slot_a_rule_rightly_leaves_zero_is_named_as_idle() -> None:
    with pytest.raises(OptimizerCheckError, match=r"left its slot 'avg' all zeros .* is named in "
                                                  r"check_optimizer\(\.\.\., idle_slots=\('avg',\)\)"):
        check_optimizer(lambda: LateAverage(lr=0.1))
    check_optimizer(lambda: LateAverage(lr=0.1), idle_slots=("avg",))


def test_a_rule_that_reads_the_norm_passes_given_each_parameter_whole() -> None:
    check_optimizer(lambda: ByNormWhole(lr=0.1))


def test_the_fixture_and_a_factory_that_builds_something_else(optimizer_check) -> None:
    assert optimizer_check is check_optimizer
    with pytest.raises(TypeError, match="make\\(\\) returned SimpleNamespace, not an nnframe.Optimizer"):
        check_optimizer(SimpleNamespace)

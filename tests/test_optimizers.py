"""Tests of nnframe.optimizers (the rules), nnframe.optimizer_base (binding, state, blocks) and the built-in plugin."""

from __future__ import annotations

import io
import math
import re
import tracemalloc
from typing import Any, Literal

import numpy as np
import pytest
from pydantic import ValidationError

from nnframe.errors import CheckpointError, ConfigError, NNFrameError
from nnframe.optimizer_params import (AdaGradParams, AdamParams, AdamWParams, MomentumParams, NesterovParams,
                                      OptimizerParams, RMSpropParams, SGDParams)
from nnframe.optimizers import SGD, AdaGrad, Adam, AdamW, Momentum, Nesterov, Optimizer, RMSprop
from nnframe.plugins import get_plugin_manager

ALL = [SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam, AdamW]
COUPLED = [cls for cls in ALL if not cls.decoupled_weight_decay]
P0 = [1.0, -2.0]
G = [0.5, 0.25]


def run_steps(optimizer: Optimizer, grads: list[list[float]], p0: list[float] = P0) -> np.ndarray:
    p = np.array(p0)
    for g in grads:
        optimizer.update([p], [np.array(g)])
    return p


# One step from p = [1, -2] with g = [0.5, 0.25], lr = 0.1.
ONE_STEP = [
    # p - lr*g = [1 - 0.05, -2 - 0.025]
    (SGD(lr=0.1), [0.95, -2.025]),
    # v = -lr*g = [-0.05, -0.025]; p += v
    (Momentum(lr=0.1, momentum=0.9), [0.95, -2.025]),
    # v = [-0.05, -0.025]; p += 0.81*v - 1.9*0.1*g = [-0.0405 - 0.095, -0.02025 - 0.0475]
    (Nesterov(lr=0.1, momentum=0.9), [0.8645, -2.06775]),
    # h = g*g; g/sqrt(h) = [1, 1]; p -= 0.1
    (AdaGrad(lr=0.1), [0.9, -2.1]),
    # h = 0.01*g*g; sqrt(h) = 0.1*|g|; g/sqrt(h) = [10, 10]; p -= 0.1*10
    (RMSprop(lr=0.1, decay_rate=0.99), [0.0, -3.0]),
    # lr_1 = 0.1*sqrt(0.001)/0.1; m = 0.1*g; v = 0.001*g^2; lr_1*m/sqrt(v) = 0.1*sign(g)
    (Adam(lr=0.1, beta1=0.9, beta2=0.999), [0.9, -2.1]),
]

# Three steps from p = [1, -2], lr = 0.1; the gradient is g = [0.5, 0.25] each step unless stated.
THREE_STEPS = [
    # p - 3*0.1*g
    (SGD(lr=0.1), [G] * 3, [0.85, -2.075]),
    # v1 = [-0.05, -0.025]; v2 = 0.9*v1 - 0.1*g = [-0.095, -0.0475]; v3 = 0.9*v2 - 0.1*g = [-0.1355, -0.06775]
    # p = p0 + v1 + v2 + v3 = [1 - 0.2805, -2 - 0.14025]
    (Momentum(lr=0.1, momentum=0.9), [G] * 3, [0.7195, -2.14025]),
    # each step p += 0.81*v_t - 0.19*g with v_t as for Momentum:
    # [-0.1355, -0.06775] + [-0.17195, -0.085975] + [-0.204755, -0.1023775]
    (Nesterov(lr=0.1, momentum=0.9), [G] * 3, [0.487795, -2.2561025]),
    # h_t = t*g^2, so step t moves by 0.1/sqrt(t): 0.1 + 0.0707106781 + 0.0577350269 = 0.228445705
    (AdaGrad(lr=0.1), [G] * 3, [0.771554295, -2.228445705]),
    # h_t = c_t*g^2 with c = 0.01, 0.0199, 0.029701; moves 0.1/sqrt(c_t) = 1 + 0.708881205 + 0.580249085
    (RMSprop(lr=0.1, decay_rate=0.99), [G] * 3, [-1.28913029, -4.28913029]),
    # second coordinate: constant g, so each step moves by lr = 0.1: -2.3.
    # first coordinate, g = 0.5, -0.5, 0.5; g^2 is constant so v_t = (1 - 0.999^t)*0.25 and
    # the step is lr*m_t/(0.5*(1 - 0.9^t)):
    #   m1 = 0.05                           step 0.1*0.05/(0.5*0.1)    = 0.1        -> 0.9
    #   m2 = 0.05 + 0.1*(-0.5 - 0.05) = -0.005  step 0.1*-0.005/(0.5*0.19) = -0.00526316 -> 0.90526316
    #   m3 = -0.005 + 0.1*(0.5 + 0.005) = 0.0455 step 0.1*0.0455/(0.5*0.271) = 0.03357934 -> 0.87168382
    (Adam(lr=0.1, beta1=0.9, beta2=0.999), [G, [-0.5, 0.25], G], [0.87168382, -2.3]),
]


def _ids(cases: list) -> list[str]:
    return [type(case[0]).__name__ for case in cases]


@pytest.mark.parametrize(("optimizer", "expected"), ONE_STEP, ids=_ids(ONE_STEP))
def test_one_step_matches_hand_values(optimizer: Optimizer, expected: list[float]) -> None:
    # the 1e-7 epsilon of the adaptive rules moves the result by less than 1e-5
    np.testing.assert_allclose(run_steps(optimizer, [G]), expected, rtol=0, atol=1e-5)
    assert optimizer.step == 1


@pytest.mark.parametrize(("optimizer", "grads", "expected"), THREE_STEPS, ids=_ids(THREE_STEPS))
def test_three_steps_match_hand_values(optimizer: Optimizer, grads: list, expected: list[float]) -> None:
    np.testing.assert_allclose(run_steps(optimizer, grads), expected, rtol=0, atol=1e-5)
    assert optimizer.step == 3


class BookOptimizers:
    """The book's common/optimizer.py update rules, dict-keyed and float64, as the reference."""

    @staticmethod
    def update(kind: str, state: dict, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        state.setdefault("a", np.zeros_like(p))
        state.setdefault("b", np.zeros_like(p))
        state["t"] = state.get("t", 0) + 1
        a, b = state["a"], state["b"]
        if kind == "SGD":
            p -= lr * g
        elif kind == "Momentum":
            a[...] = 0.9 * a - lr * g
            p += a
        elif kind == "Nesterov":
            a *= 0.9
            a -= lr * g
            p += 0.9 * 0.9 * a
            p -= (1 + 0.9) * lr * g
        elif kind == "AdaGrad":
            a += g * g
            p -= lr * g / (np.sqrt(a) + 1e-7)
        elif kind == "RMSprop":
            a *= 0.99
            a += (1 - 0.99) * g * g
            p -= lr * g / (np.sqrt(a) + 1e-7)
        elif kind == "Adam":
            lr_t = lr * np.sqrt(1.0 - 0.999 ** state["t"]) / (1.0 - 0.9 ** state["t"])
            a += (1 - 0.9) * (g - a)
            b += (1 - 0.999) * (g**2 - b)
            p -= lr_t * a / (np.sqrt(b) + 1e-7)
        elif kind == "AdamW":  # PyTorch's: decay first, eps 1e-8 after the bias correction
            t = state["t"]
            p *= 1 - lr * 0.01
            a += (1 - 0.9) * (g - a)
            b += (1 - 0.999) * (g**2 - b)
            p -= lr * (a / (1 - 0.9**t)) / (np.sqrt(b / (1 - 0.999**t)) + 1e-8)


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.__name__)
def test_matches_the_books_rules_over_random_steps(cls: type[Optimizer]) -> None:
    rng = np.random.default_rng(0)
    ours = cls(lr=0.05)
    shapes = [(3, 4), (4,)]
    params = [rng.standard_normal(s) for s in shapes]
    reference = [p.copy() for p in params]
    states: list[dict] = [{} for _ in shapes]
    for _ in range(5):
        grads = [rng.standard_normal(s) for s in shapes]
        ours.update(params, grads)
        for p, g, state in zip(reference, grads, states):
            BookOptimizers.update(cls.__name__, state, p, g, 0.05)
    for p, ref in zip(params, reference):
        np.testing.assert_allclose(p, ref, rtol=1e-12, atol=1e-12)


def test_sgd_weight_decay_is_coupled_l2_and_leaves_grads_alone() -> None:
    # g + 0.1*p = [0.5 + 0.1, 0.25 - 0.2] = [0.6, 0.05]; p -= 0.1 * [0.6, 0.05]
    p, g = np.array(P0), np.array(G)
    SGD(lr=0.1, weight_decay=0.1).update([p], [g])
    np.testing.assert_allclose(p, [0.94, -2.005], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(g, G)


def twin_params(monkeypatch, seed: int) -> tuple[np.random.Generator, list[tuple[int, ...]], list, list]:
    """Two copies of several parameters of one dtype, largest last, so that they share an optimizer's scratch
    buffers; with BLOCK = 4 the 15-element one is updated in blocks."""
    import nnframe.optimizer_base as optimizer_base

    monkeypatch.setattr(optimizer_base, "BLOCK", 4)
    rng = np.random.default_rng(seed)
    shapes = [(2, 3), (4,), (3, 5)]
    params = [rng.standard_normal(shape) for shape in shapes]
    return rng, shapes, params, [p.copy() for p in params]


@pytest.mark.parametrize("cls", COUPLED, ids=lambda cls: cls.__name__)
def test_weight_decay_equals_the_rule_fed_g_plus_wd_p(monkeypatch, cls: type[Optimizer]) -> None:
    rng, shapes, p_decay, p_plain = twin_params(monkeypatch, 1)
    decayed, plain = cls(lr=0.1, weight_decay=0.01), cls(lr=0.1)
    for _ in range(3):
        grads = [rng.standard_normal(shape) for shape in shapes]
        plain.update(p_plain, [g + 0.01 * p for g, p in zip(grads, p_plain)])
        decayed.update(p_decay, grads)
    for got, expected in zip(p_decay, p_plain):
        np.testing.assert_array_equal(got, expected)


def test_adamw_is_pytorchs_decay_first_then_eps_after_the_bias_correction(monkeypatch) -> None:
    # torch.optim.AdamW's lines, with the rate a schedule changes and gradients small enough for eps to matter
    rng, shapes, p_adamw, p_torch = twin_params(monkeypatch, 3)
    m, v = [np.zeros(shape) for shape in shapes], [np.zeros(shape) for shape in shapes]
    adamw = AdamW(lr=0.1, weight_decay=0.2, eps=1e-6)
    for t, (lr, scale) in enumerate([(0.1, 1.0), (0.05, 1e-5), (0.02, 1e-7)], start=1):
        adamw.lr = lr
        grads = [scale * rng.standard_normal(shape) for shape in shapes]
        adamw.update(p_adamw, [g.copy() for g in grads])
        for p, g, m_i, v_i in zip(p_torch, grads, m, v):
            p *= 1 - lr * 0.2
            m_i[...] = 0.9 * m_i + 0.1 * g
            v_i[...] = 0.999 * v_i + 0.001 * g * g
            p -= lr * (m_i / (1 - 0.9**t)) / (np.sqrt(v_i / (1 - 0.999**t)) + 1e-6)
    for got, expected in zip(p_adamw, p_torch):
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)
    assert sorted(adamw.state_dict()) == ["0.m_sum", "0.v_sum", "1.m_sum", "1.v_sum", "2.m_sum", "2.v_sum", "beta1",
                                          "beta2", "t"]


def test_adamw_decays_by_default_and_adam_does_not() -> None:
    assert (AdamW().weight_decay, AdamW().config.eps) == (0.01, 1e-8)
    assert (Adam().weight_decay, Adam().config.eps) == (0.0, 1e-7)
    p = np.ones(3)
    AdamW(lr=0.1, weight_decay=0.5).update([p], [np.zeros(3)])
    np.testing.assert_allclose(p, 0.95, rtol=0, atol=1e-15)


def test_adamw_whose_decay_zeroes_or_flips_the_parameters_gets_a_note() -> None:
    from nnframe.launch import config_notes, prepare

    config = {"name": "decay", "data": {"type": "spiral", "points_per_class": 10, "classes": 3},
              "model": [{"type": "affine", "out": 3}], "loss": {"type": "softmax_cross_entropy"},
              "optimizer": {"type": "adamw", "lr": 0.1, "weight_decay": 20}, "train": {"epochs": 1, "batch_size": 10}}

    def decay_notes(overrides: list[str]) -> list[str]:
        return [note for note in config_notes(prepare(config, overrides, get_plugin_manager())) if "decay" in note]

    (note,) = decay_notes([])
    assert note.startswith("optimizer.lr times optimizer.weight_decay is 2, so each step multiplies the parameters "
                           "by -1 before the update")
    assert decay_notes(["optimizer.weight_decay=0.01"]) == []
    assert decay_notes(["optimizer.type=adam"]) == []  # L2 added to the gradient: no such factor


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.__name__)
def test_updates_in_place_without_rebinding(cls: type[Optimizer]) -> None:
    params = [np.array(P0), np.array([[0.5]])]
    before = [id(p) for p in params]
    aliases = [p for p in params]
    view = params[0][:1]
    cls(lr=0.1).update(params, [np.array(G), np.array([[1.0]])])
    assert [id(p) for p in params] == before
    assert all(a is p for a, p in zip(aliases, params))
    assert view[0] < 1.0 and aliases[1][0, 0] < 0.5


@pytest.mark.parametrize(("cls", "slots"), [
    (SGD, []), (Momentum, ["v"]), (Nesterov, ["v"]), (AdaGrad, ["h"]), (RMSprop, ["h"]), (Adam, ["m_sum", "v_sum"]),
], ids=lambda x: x.__name__ if isinstance(x, type) else "")
def test_state_is_keyed_by_parameter_name(cls: type[Optimizer], slots: list[str]) -> None:
    optimizer = cls()
    W, b = np.ones((2, 3)), np.ones(3)
    optimizer.bind(["affine1/W", "affine1/b"], [W, b])
    optimizer.update([W, b], [np.ones((2, 3)), np.ones(3)])
    assert list(optimizer.state) == ["affine1/W", "affine1/b"]
    expected_keys = {f"{name}.{slot}" for name in ("affine1/W", "affine1/b") for slot in slots} | {"t"}
    if cls is Adam:  # the betas its sums were taken with
        expected_keys |= {"beta1", "beta2"}
    state = optimizer.state_dict()
    assert set(state) == expected_keys
    assert int(state["t"]) == 1
    for slot in slots:
        assert state[f"affine1/W.{slot}"].shape == (2, 3)


def _grad_stream(seed: int, shapes: list[tuple[int, ...]], steps: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(steps)]


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.__name__)
def test_state_dict_round_trip_continues_bit_identically(cls: type[Optimizer]) -> None:
    names, shapes = ["affine1/W", "affine1/b"], [(3, 2), (2,)]
    stream = _grad_stream(2, shapes, 5)
    start = [np.full(s, 0.5, dtype=np.float32) for s in shapes]

    straight = [p.copy() for p in start]
    optimizer = cls(lr=0.01, weight_decay=0.001)
    optimizer.bind(names, straight)
    for grads in stream:
        optimizer.update(straight, grads)

    first = [p.copy() for p in start]
    before = cls(lr=0.01, weight_decay=0.001)
    before.bind(names, first)
    for grads in stream[:2]:
        before.update(first, grads)
    buffer = io.BytesIO()
    np.savez(buffer, **before.state_dict())
    buffer.seek(0)
    saved = dict(np.load(buffer))

    resumed_params = [p.copy() for p in first]
    resumed = cls(lr=0.01, weight_decay=0.001)
    resumed.bind(names, resumed_params)
    resumed.load_state_dict(saved)
    assert resumed.step == 2
    for grads in stream[2:]:
        resumed.update(resumed_params, grads)
    for p, q in zip(straight, resumed_params):
        np.testing.assert_array_equal(p, q)
    assert resumed.step == optimizer.step == 5


def test_state_dict_is_a_copy() -> None:
    optimizer = Momentum()
    p = np.ones(2)
    optimizer.bind(["w"], [p])
    optimizer.update([p], [np.ones(2)])
    saved = optimizer.state_dict()
    optimizer.update([p], [np.ones(2)])
    # v after one step is -0.01*g; the later step must not change the saved copy
    np.testing.assert_allclose(saved["w.v"], [-0.01, -0.01])


def test_load_state_dict_keeps_state_arrays_in_place() -> None:
    optimizer = Adam()
    p = np.ones(2)
    optimizer.bind(["w"], [p])
    m_sum = optimizer.state["w"]["m_sum"]
    optimizer.load_state_dict({"w.m_sum": np.array([1.0, 2.0]), "w.v_sum": np.array([3.0, 4.0]), "t": np.array(7)})
    assert optimizer.state["w"]["m_sum"] is m_sum
    np.testing.assert_array_equal(m_sum, [1.0, 2.0])
    assert optimizer.step == 7


def test_adam_keeps_its_averages_as_decayed_sums() -> None:
    adam, p = Adam(lr=0.1, beta1=0.8, beta2=0.99), np.zeros(3)
    m, v = np.zeros(3), np.zeros(3)
    for g in ([1.0, -2.0, 0.5], [0.25, 3.0, -1.0], [-4.0, 0.1, 2.0]):
        adam.update([p], [np.array(g)])
        m = 0.8 * m + 0.2 * np.array(g)
        v = 0.99 * v + 0.01 * np.array(g) ** 2
    np.testing.assert_allclose(adam.state["0"]["m_sum"] * 0.2, m, rtol=1e-15)
    np.testing.assert_allclose(adam.state["0"]["v_sum"] * 0.01, v, rtol=1e-14)


def book_adam(grads: list[np.ndarray], betas: list[tuple[float, float]], lr: float, eps: float,
              after_correction: bool) -> np.ndarray:
    """Adam as the book writes it, its averages carried from step to step whatever the betas of the step; eps
    after the bias correction, as PyTorch's AdamW (without its decay) has it, where ``after_correction``."""
    p, m, v = np.zeros_like(grads[0]), np.zeros_like(grads[0]), np.zeros_like(grads[0])
    for t, (g, (beta1, beta2)) in enumerate(zip(grads, betas), start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        if after_correction:
            p = p - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
        else:
            p = p - lr * np.sqrt(1 - beta2**t) / (1 - beta1**t) * m / (np.sqrt(v) + eps)
    return p


@pytest.mark.parametrize("cls", [Adam, AdamW], ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("how", ["set on the object", "loaded from a state saved under other betas"])
def test_adams_averages_carry_over_betas_changed_mid_run(cls: type[Adam], how: str) -> None:
    """Its sums are ``m / (1 - beta1)`` and ``v / (1 - beta2)``: read under new betas, they made v 100 times too
    large after beta2 went from 0.999 to 0.9."""
    grads = [step[0].astype(np.float64) for step in _grad_stream(7, [(5,)], 20)]
    p = np.zeros(5)
    first = cls(lr=0.01, weight_decay=0.0)
    first.bind(["w"], [p])
    for g in grads[:8]:
        first.update([p], [g])
    if how == "set on the object":
        first.beta1, first.beta2 = 0.5, 0.9
        second = first
    else:
        second = cls(lr=0.01, beta1=0.5, beta2=0.9, weight_decay=0.0)
        p = p.copy()
        second.bind(["w"], [p])
        second.load_state_dict(first.state_dict())
    for g in grads[8:]:
        second.update([p], [g])
    expected = book_adam(grads, [(0.9, 0.999)] * 8 + [(0.5, 0.9)] * 12, 0.01, second.config.eps, cls is AdamW)
    np.testing.assert_allclose(p, expected, rtol=1e-12)


@pytest.mark.parametrize("saved", [
    {"w.m_sum": np.array([1.0, 2.0]), "w.v_sum": np.array([3.0, 4.0])},  # before the betas were saved with them
    {"w.m": np.array([0.2, 0.4]), "w.v": np.array([0.03, 0.04])},  # before the sums: averages
], ids=["sums without their betas", "averages"])
def test_adam_takes_the_state_of_its_older_checkpoints(saved: dict) -> None:
    optimizer = Adam(beta1=0.8, beta2=0.99)
    optimizer.bind(["w"], [np.ones(2)])
    optimizer.load_state_dict({**saved, "t": np.array(5)})
    np.testing.assert_allclose(optimizer.state["w"]["m_sum"], [1.0, 2.0], rtol=1e-15)
    np.testing.assert_allclose(optimizer.state["w"]["v_sum"], [3.0, 4.0], rtol=1e-15)
    assert sorted(optimizer.state_dict()) == ["beta1", "beta2", "t", "w.m_sum", "w.v_sum"]


def test_averages_of_another_model_keep_their_names_in_the_error() -> None:
    optimizer = Adam()
    optimizer.bind(["w"], [np.ones(2)])
    with pytest.raises(CheckpointError, match=r"missing keys 'w\.m_sum', 'w\.v_sum'"):
        optimizer.load_state_dict({"x.m": np.zeros(2), "x.v": np.zeros(2), "t": np.array(1)})


class AMSGradLike(Adam):
    """A plugin's rule on Adam with slots of its own, among them averages named ``m`` and ``v``."""

    slots = ("m", "v", "v_max")

    def _update_each(self, blocks) -> None:
        for p, g, tmp, m, v, v_max in blocks:
            m += 0.1 * (g - m)
            v += 0.001 * (g * g - v)
            np.maximum(v_max, v, out=v_max)
            p -= self.lr * m / (np.sqrt(v_max) + 1e-7)


class AveragesOnAdamsSlots(Adam):
    """A plugin's rule that writes its own step on the slots it inherits, keeping averages in them."""

    def _update_each(self, blocks) -> None:
        for p, g, tmp, m, v in blocks:
            m += 0.1 * (g - m)
            v += 0.001 * (g * g - v)
            p -= self.lr * m / (np.sqrt(v) + 1e-7)


def test_a_subclass_with_averages_among_its_slots_loads_its_state_as_saved() -> None:
    optimizer, p = AMSGradLike(lr=0.1), np.ones(3)
    optimizer.bind(["w"], [p])
    optimizer.update([p], [np.array([0.5, -1.0, 2.0])])
    saved = optimizer.state_dict()
    assert sorted(saved) == ["t", "w.m", "w.v", "w.v_max"]  # no betas: its slots are not Adam's sums
    optimizer.beta2 = 0.9
    np.testing.assert_array_equal(optimizer.state["w"]["v"], saved["w.v"])
    resumed = AMSGradLike(lr=0.1)
    resumed.bind(["w"], [p.copy()])
    resumed.load_state_dict(dict(saved))
    for key, array in resumed.state_dict().items():
        np.testing.assert_array_equal(array, saved[key], err_msg=key)


def test_a_subclass_with_a_step_of_its_own_gets_no_averages_scaled_into_sums() -> None:
    optimizer = AveragesOnAdamsSlots()
    optimizer.bind(["w"], [np.ones(2)])
    with pytest.raises(CheckpointError, match=r"missing keys 'w\.m_sum', 'w\.v_sum'"):
        optimizer.load_state_dict({"w.m": np.ones(2), "w.v": np.ones(2), "t": np.array(1)})


@pytest.mark.parametrize(("state", "pattern"), [
    ({"w.m_sum": np.zeros(2), "t": np.array(1)}, r"missing key 'w\.v_sum'"),
    ({"w.m_sum": np.zeros(2), "w.v_sum": np.zeros(2)}, r"missing key 't'"),
    ({"w.m_sum": np.zeros(2), "w.v_sum": np.zeros(2), "t": np.array(1), "x.m_sum": np.zeros(2)},
     r"unexpected key 'x\.m_sum'"),
    ({"w.m_sum": np.zeros(2), "w.v_sum": np.zeros((3, 2)), "t": np.array(1)},
     r"'w\.v_sum' has shape \(3, 2\).*shape \(2,\)"),
])
def test_load_state_dict_errors_name_the_key(state: dict, pattern: str) -> None:
    optimizer = Adam()
    optimizer.bind(["w"], [np.ones(2)])
    with pytest.raises(CheckpointError, match=pattern):
        optimizer.load_state_dict(state)


def test_load_state_dict_before_bind_is_an_error() -> None:
    with pytest.raises(NNFrameError, match="bind"):
        Adam().load_state_dict({"t": np.array(1)})


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.__name__)
def test_float32_stays_float32_and_arrays_stay_put(cls: type[Optimizer]) -> None:
    params = [np.ones((4, 3), dtype=np.float32), np.ones(3, dtype=np.float32)]
    optimizer = cls(lr=0.1, weight_decay=0.01)
    optimizer.bind(["W", "b"], params)
    state_ids = {name: {slot: id(a) for slot, a in slots.items()} for name, slots in optimizer.state.items()}
    for grads in _grad_stream(3, [(4, 3), (3,)], 3):
        optimizer.update(params, grads)
    assert all(p.dtype == np.float32 for p in params)
    assert all(a.dtype == np.float32 for slots in optimizer.state.values() for a in slots.values())
    assert {name: {slot: id(a) for slot, a in slots.items()} for name, slots in optimizer.state.items()} == state_ids
    assert all(np.isfinite(p).all() for p in params)


@pytest.mark.parametrize("block", [4, None], ids=["in blocks on two threads", "whole"])
@pytest.mark.parametrize("grad_dtype", [np.float32, np.float64])
def test_adam_computes_as_its_lines_with_python_floats(monkeypatch, grad_dtype, block) -> None:
    """In blocks whose arrays share a dtype Adam's constants are arrays of that dtype: no value may move by a bit."""
    import nnframe.optimizer_base as optimizer_base

    if block is not None:
        monkeypatch.setattr(optimizer_base, "BLOCK", block)
        monkeypatch.setenv("NNFRAME_NUM_THREADS", "2")
    rng = np.random.default_rng(4)
    p = rng.standard_normal(40).astype(np.float32)
    expected, m_sum, v_sum = p.copy(), np.zeros(40, np.float32), np.zeros(40, np.float32)
    adam = Adam(lr=0.01)
    for t in range(1, 4):
        g = (rng.standard_normal(40) * 10.0 ** rng.integers(-6, 3, 40)).astype(grad_dtype)
        adam.update([p], [g])
        lr_t = 0.01 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        rate, eps = lr_t * (1 - 0.9) / math.sqrt(1 - 0.999), 1e-7 / math.sqrt(1 - 0.999)
        m_sum *= 0.9
        m_sum += g
        v_sum *= 0.999
        v_sum += np.square(g).astype(np.float32)
        expected -= m_sum / (np.sqrt(v_sum) + eps) * rate
    np.testing.assert_array_equal(p, expected)


@pytest.mark.parametrize("cls", [AdaGrad, RMSprop, Adam], ids=lambda cls: cls.__name__)
def test_float32_averages_keep_float32_precision(cls: type[Optimizer]) -> None:
    # the first steps, where g**2 dwarfs the running average: a form like
    # beta2 * (v - g**2) + g**2 would lose about ten bits here. Each element's
    # gradient keeps its sign, so the averages are sums of like terms and any
    # error beyond a few float32 roundings is the formula's.
    rng = np.random.default_rng(3)
    sign = rng.choice([-1.0, 1.0], 1000)
    grads = [sign * rng.uniform(0.1, 1.0, 1000) * 10.0 ** rng.integers(-3, 3, 1000) for _ in range(3)]
    single, double = cls(lr=0.01), cls(lr=0.01)
    p32, p64 = np.zeros(1000, np.float32), np.zeros(1000)
    for g in grads:
        single.update([p32], [g.astype(np.float32)])
        double.update([p64], [g.astype(np.float32).astype(np.float64)])
    for slot, average in single.state["0"].items():
        np.testing.assert_allclose(average, double.state["0"][slot], rtol=4e-7, err_msg=slot)


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_a_step_allocates_no_parameter_sized_array(cls: type[Optimizer], weight_decay: float) -> None:
    params = [np.ones(50_000, dtype=np.float32), np.ones((100, 10), dtype=np.float32)]
    grads = [np.full_like(p, 0.5) for p in params]
    optimizer = cls(lr=0.01, weight_decay=weight_decay)
    optimizer.update(params, grads)
    tracemalloc.start()
    try:
        optimizer.update(params, grads)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the smallest parameter is 1000 float32 = 4000 bytes; a temporary of it would show
    assert peak < params[1].nbytes


def test_update_binds_positional_names_when_not_bound() -> None:
    optimizer = Momentum()
    optimizer.update([np.ones(2), np.ones(1)], [np.ones(2), np.ones(1)])
    assert list(optimizer.state) == ["0", "1"]


@pytest.mark.parametrize(("call", "message"), [
    (lambda o: o.bind(["a"], [np.ones(1), np.ones(1)]), "1 names for 2 parameters"),
    (lambda o: o.bind(["a", "a"], [np.ones(1), np.ones(1)]), "duplicate parameter names"),
    (lambda o: (o.bind(["a"], [np.ones(1)]), o.update([np.ones(1)] * 2, [np.ones(1)] * 2)), "bound to 1 parameters"),
])
def test_bind_and_update_misuse_is_reported(call, message: str) -> None:
    with pytest.raises(NNFrameError, match=message):
        call(SGD())


def test_lr_set_from_outside_is_used_on_the_next_step() -> None:
    optimizer = SGD(lr=0.1)
    p = np.array([1.0])
    optimizer.lr = 0.5
    optimizer.update([p], [np.array([1.0])])
    # 1 - 0.5*1
    assert p[0] == 0.5


@pytest.mark.parametrize("lr", [-0.1, math.nan, math.inf, "0.1", None, True, np.array(0.1)],
                         ids=["negative", "nan", "inf", "text", "none", "bool", "array"])
def test_an_lr_set_by_hand_is_checked_at_the_next_update(lr) -> None:
    optimizer, p = Adam(lr=0.1), np.array([1.0])
    optimizer.lr = lr
    with pytest.raises(NNFrameError, match=r"Adam: lr must be a finite number, at least 0; found"):
        optimizer.update([p], [np.array([1.0])])
    assert p[0] == 1.0 and optimizer.step == 0


@pytest.mark.parametrize("lr", [0, 0.0, np.float32(0.5), np.int64(1)], ids=["zero", "float zero", "f32", "i64"])
def test_an_lr_set_by_hand_may_be_zero_or_a_numpy_number(lr) -> None:
    optimizer, p = SGD(lr=0.1), np.array([1.0])
    optimizer.lr = lr
    optimizer.update([p], [np.array([1.0])])
    assert type(optimizer.lr) is float and p[0] == 1.0 - float(lr)


@pytest.mark.parametrize(("params_cls", "defaults"), [
    (SGDParams, {"lr": 0.01, "weight_decay": 0.0}),
    (MomentumParams, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0}),
    (NesterovParams, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0}),
    (AdaGradParams, {"lr": 0.01, "weight_decay": 0.0, "eps": 1e-7}),
    (RMSpropParams, {"lr": 0.01, "decay_rate": 0.99, "weight_decay": 0.0, "eps": 1e-7}),
    (AdamParams, {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "weight_decay": 0.0, "eps": 1e-7}),
], ids=lambda x: x.__name__ if isinstance(x, type) else "")
def test_params_have_the_books_defaults(params_cls, defaults: dict) -> None:
    assert params_cls().model_dump() == defaults


@pytest.mark.parametrize("bad", [{"lr": 0}, {"lr": -1.0}, {"weight_decay": -0.1}, {"beta1": 1.0}, {"bogus": 1}])
def test_params_reject_bad_values(bad: dict) -> None:
    with pytest.raises(ValidationError):
        AdamParams(**bad)


def test_direct_construction_reports_the_field() -> None:
    with pytest.raises(ConfigError, match=r"Momentum: momentum: .*found 1\.5"):
        Momentum(momentum=1.5)


def test_repr_shows_settings_and_step() -> None:
    optimizer = Adam(lr=0.01)
    optimizer.bind(["w"], [np.ones(1)])
    assert repr(optimizer) == "Adam(lr=0.01, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-07, step=0, params=1)"


@pytest.mark.parametrize(("name", "cls", "params_cls"), [
    ("sgd", SGD, SGDParams), ("momentum", Momentum, MomentumParams), ("nesterov", Nesterov, NesterovParams),
    ("adagrad", AdaGrad, AdaGradParams), ("rmsprop", RMSprop, RMSpropParams), ("adam", Adam, AdamParams),
    ("adamw", AdamW, AdamWParams),
])
def test_builtin_plugin_registers_every_optimizer(name: str, cls: type[Optimizer], params_cls) -> None:
    plugins = get_plugin_manager()
    component = plugins.optimizers.get(name)
    assert component.kind == "optimizer"
    assert component.params is params_cls
    assert plugins.optimizers.plugin_of(name).dist == "nnframe"
    optimizer = component.build(params_cls(lr=0.5))
    assert type(optimizer) is cls
    assert optimizer.lr == 0.5
    assert component.summary().endswith("."), component.summary()  # a first sentence over two lines, whole


@pytest.mark.parametrize("threads", ["1", "2", "3"])
@pytest.mark.parametrize("cls", ALL)
def test_large_parameters_updated_in_blocks_match_the_whole_array_rule(monkeypatch, cls, threads):
    """Blocks split between 1, 2 or 3 threads give the very values of the whole-array rule."""
    import nnframe.optimizer_base as optimizer_base

    rng = np.random.default_rng(0)
    shape = (3 * optimizer_base.BLOCK + 17,)  # above the blocking threshold, with a ragged last block
    start = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    monkeypatch.setenv("NNFRAME_NUM_THREADS", threads)

    def run(block: int) -> np.ndarray:
        monkeypatch.setattr(optimizer_base, "BLOCK", block)
        optimizer = cls(lr=0.01, weight_decay=0.1)
        param = start.copy()
        for grad in grads:
            optimizer.update([param], [grad])
        return param

    blocked = run(optimizer_base.BLOCK)
    whole = run(10 * shape[0])
    assert np.array_equal(blocked, whole)
    assert not np.array_equal(blocked, start)


class HalfStepAdam(Adam):
    """A plugin's rule that rewrites Adam's ``_update_one``: Adam's own loop over blocks must not skip it."""

    def _update_one(self, p, g, tmp, *state):
        super()._update_one(p, g * 0.5, tmp, *state)


class SquaredStepAdam(Adam):
    """A plugin's rule that rewrites Adam's loop over blocks too: that loop is used."""

    def _update_each(self, blocks):
        for p, g, tmp, *state in blocks:
            super()._update_each([(p, g * g, tmp, *state)])


class HalfStepLoopAdam(HalfStepAdam):
    """Rewrites both: its loop only hands on to Adam's, which knows nothing of the halving."""

    def _update_each(self, blocks):
        super()._update_each(blocks)


def shifted_gradient(rule: type[Optimizer]) -> type[Optimizer]:
    """A plugin's rule that rewrites ``rule``'s ``_update_one``: the built-in loop over blocks must not skip it.

    It adds 1 to the gradient (halving it would change nothing AdaGrad does).
    """

    class ShiftedGradient(rule):
        def _update_one(self, p, g, tmp, *state):
            super()._update_one(p, g + 1.0, tmp, *state)

    ShiftedGradient.base_rule = rule
    return ShiftedGradient


@pytest.mark.parametrize("cls", [HalfStepAdam, SquaredStepAdam, HalfStepLoopAdam,
                                 *(shifted_gradient(rule) for rule in (Momentum, Nesterov, AdaGrad, RMSprop))],
                         ids=lambda cls: f"{cls.base_rule.__name__}-{cls.__name__}" if hasattr(cls, "base_rule")
                         else cls.__name__)
def test_a_subclass_rule_is_used_on_blocks_as_on_whole_arrays(monkeypatch, cls):
    import nnframe.optimizer_base as optimizer_base

    monkeypatch.setenv("NNFRAME_NUM_THREADS", "2")
    rng = np.random.default_rng(3)
    start, grads = rng.standard_normal(30), [rng.standard_normal(30) for _ in range(3)]

    def run(block: int) -> np.ndarray:
        monkeypatch.setattr(optimizer_base, "BLOCK", block)
        optimizer, param = cls(lr=0.1), start.copy()
        for grad in grads:
            optimizer.update([param], [grad])
        return param

    whole, blocked, plain = run(1000), run(4), start.copy()
    rule = getattr(cls, "base_rule", Adam)(lr=0.1)
    for grad in grads:
        rule.update([plain], [grad])
    np.testing.assert_array_equal(blocked, whole)
    assert not np.allclose(blocked, plain)


def test_block_views_keep_no_old_array_alive(monkeypatch):
    """One plan per parameter: new views of a parameter and new gradients each step release the old ones."""
    import gc
    import weakref

    import nnframe.optimizer_base as optimizer_base

    monkeypatch.setattr(optimizer_base, "BLOCK", 4)
    monkeypatch.setenv("NNFRAME_NUM_THREADS", "2")
    param = np.zeros(30)
    optimizer = Adam(lr=0.1)
    optimizer.update([param[:]], [np.ones(30)])
    first = np.ones(30)
    optimizer.update([param[:]], [first])
    gone = weakref.ref(first)
    del first
    optimizer.update([param[:]], [np.ones(30)])
    assert gone() is None
    kept = weakref.ref(optimizer)
    gc.disable()
    try:
        del optimizer
        assert kept() is None  # no reference cycle holds the optimizer, its state or its plans
    finally:
        gc.enable()


@pytest.mark.parametrize("cls", [Momentum, AdaGrad, Adam])
def test_block_views_are_made_once_and_follow_new_arrays(monkeypatch, cls):
    """As in training: a gradient buffer rewritten in place reuses the views; a new array or a rebind gets new ones."""
    import nnframe.optimizer_base as optimizer_base

    monkeypatch.setattr(optimizer_base, "BLOCK", 4)
    monkeypatch.setenv("NNFRAME_NUM_THREADS", "2")
    rng = np.random.default_rng(2)
    param, grad = rng.standard_normal(30), np.empty(30)
    expected = param.copy()
    made: list[bool] = []
    of = optimizer_base.BlockPlan.of.__func__
    monkeypatch.setattr(optimizer_base.BlockPlan, "of", classmethod(
        lambda plan_cls, arrays, count: (made.append(arrays[0] is param), of(plan_cls, arrays, count))[1]))
    reused, fresh = cls(lr=0.1), cls(lr=0.1)
    for _ in range(3):
        grad[...] = rng.standard_normal(30)
        reused.update([param], [grad])
        fresh.update([expected], [grad.copy()])
    assert made.count(True) == 1 and made.count(False) == 3
    np.testing.assert_array_equal(param, expected)
    reused.update([param], [grad.copy()])
    reused.bind(["w"], [param])
    reused.update([param], [grad])
    assert made.count(True) == 3


def test_a_parts_scalars_are_stride_0_arrays_made_once_that_take_each_steps_values():
    from nnframe.optimizer_base import PlanPart

    f32 = np.float32
    blocks = [(np.zeros(4, f32), np.zeros(4, f32)), (np.zeros(4, f32), np.zeros(4, f32)), (np.zeros(3, f32),) * 2]
    part = PlanPart(blocks)
    first = part.scalars(Adam, (0.5, 0.1))
    assert [[(a.shape, a.strides, a.dtype, a.flags.writeable) for a in block] for block in first] == [
        [((4,), (0,), f32, False)] * 2] * 2 + [[((3,), (0,), f32, False)] * 2]
    assert first[0] is first[1]  # blocks of one length share their views
    second = part.scalars(Adam, (0.25, 3.0))
    assert second is first
    assert [block[1][0] for block in second] == [f32(3.0)] * 3
    assert part.scalars(Adam, (0.5, 0.1, 2.0))[2][2][0] == f32(2.0)
    mixed = PlanPart([(np.zeros(4, f32), np.zeros(4))])
    assert mixed.scalars(Adam, (0.5, 0.1)) == [(0.5, 0.1)]


def test_each_key_keeps_its_own_scalars():
    """A rule's loop that calls another rule's loop on the same part keeps its own values."""
    from nnframe.optimizer_base import PlanPart

    part = PlanPart([(np.zeros(4, np.float32),) * 2])
    own = part.scalars("own", (0.5, 0.1))
    other = part.scalars("other", (2.0, 3.0))
    assert [a[0] for a in own[0]] == [np.float32(0.5), np.float32(0.1)]
    assert [a[0] for a in other[0]] == [2.0, 3.0]


@pytest.fixture
def part_counts(monkeypatch) -> list[int]:
    """How many parts each ``run_parts`` call got, with blocks of 4 elements and 4 threads."""
    import nnframe.optimizer_base as optimizer_base
    import nnframe.threads

    counts: list[int] = []
    run_parts = nnframe.threads.run_parts
    monkeypatch.setattr(nnframe.threads, "run_parts", lambda parts: (counts.append(len(parts)), run_parts(parts)))
    monkeypatch.setattr(optimizer_base, "BLOCK", 4)
    monkeypatch.setenv("NNFRAME_NUM_THREADS", "4")
    return counts


@pytest.mark.parametrize("cls", [Momentum, Nesterov, AdaGrad, RMSprop, Adam])
def test_a_large_update_runs_in_one_part_per_thread(part_counts, cls) -> None:
    params = [np.ones(9), np.ones(30), np.ones(3)]  # 2, 7 and 0 whole blocks; the last is not blocked
    cls().update(params, [np.ones(9), np.ones(30), np.ones(3)])
    assert part_counts == [2, 4]


def test_sgd_updates_a_large_parameter_in_one_part(part_counts) -> None:
    """Two passes are too short to gain from a second thread (see ``SGD``)."""
    param = np.ones(30)
    SGD(lr=0.5).update([param], [np.ones(30)])
    assert part_counts == [1]
    assert np.array_equal(param, np.full(30, 0.5))


def test_a_rule_that_does_not_declare_parallel_blocks_updates_in_one_part(part_counts) -> None:
    """A plugin's rule written before the threads may keep per-call values on ``self``."""

    class KeepsScratchOnSelf(Optimizer):
        def _update_one(self, p, g, tmp, *state):
            self.scaled = g * self.lr
            p -= self.scaled

    param = np.ones(30)
    KeepsScratchOnSelf(lr=0.5).update([param], [np.ones(30)])
    assert part_counts == [1]
    assert np.array_equal(param, np.full(30, 0.5))


def test_weight_decay_is_set_on_the_object_checked_and_switched_only_before_the_first_update() -> None:
    optimizer = SGD(lr=0.1)
    optimizer.weight_decay = 0.1  # before the first update: it sizes the scratch when bound
    p = np.ones(3)
    optimizer.update([p], [np.ones(3)])
    np.testing.assert_allclose(p, 1 - 0.1 * (1 + 0.1))
    optimizer.weight_decay = 0.2  # on, as it was
    optimizer.update([p], [np.ones(3)])
    np.testing.assert_allclose(p, 0.89 - 0.1 * (1 + 0.2 * 0.89))
    with pytest.raises(NNFrameError, match="weight_decay can be turned on or off only before the optimizer is bound"):
        optimizer.weight_decay = 0.0
    with pytest.raises(ConfigError, match="weight_decay"):
        optimizer.weight_decay = -1.0
    assert optimizer.weight_decay == 0.2
    decoupled = AdamW(lr=0.1)
    decoupled.update([np.ones(3)], [np.ones(3)])
    decoupled.weight_decay = 0.0  # AdamW's decay needs no scratch
    assert decoupled.config.weight_decay == 0.0


@pytest.mark.parametrize("params, grads, words", [
    ({"W": np.ones(3)}, {"W": np.ones(3)}, "the parameters are a dict; an update takes lists of arrays"),
    ([np.ones(3, dtype=np.int64)], [np.ones(3)], "parameter '0' holds int64, which an update cannot change by a "
                                                "fraction of a step; make it float32 or float64"),
])
def test_the_books_slips_in_an_update_by_hand_are_named(params: Any, grads: Any, words: str) -> None:
    with pytest.raises(NNFrameError, match=re.escape(words)):
        Adam(lr=0.1).update(params, grads)


def test_a_plugins_params_that_redeclare_lr_keep_its_bounds():
    from nnframe.optimizer_params import OptimizerParams

    class SignSGDParams(OptimizerParams):  # plain defaults, which drop the fields' gt=0 and ge=0
        lr: float = 0.01
        weight_decay: float = 0.0

    assert SignSGDParams().lr == 0.01
    with pytest.raises(ValidationError, match="the learning rate must be greater than 0, found -0.5"):
        SignSGDParams(lr=-0.5)
    with pytest.raises(ValidationError, match="the learning rate must be greater than 0, found 0.0"):
        SignSGDParams(lr=0.0)
    with pytest.raises(ValidationError, match="weight_decay must be at least 0, found -1.0"):
        SignSGDParams(weight_decay=-1.0)


    class WiderRateParams(OptimizerParams):
        lr: float | None | Literal["auto"] = None

    assert WiderRateParams(lr=None).lr is None and WiderRateParams(lr="auto").lr == "auto"


def test_an_update_rule_that_cannot_take_its_slots_is_refused_when_its_class_is_made():
    with pytest.raises(TypeError, match=r"_update_one\(self, p, g, tmp, m\) cannot take \(p, g, tmp, m, v\): it is "
                                        r"called with p, g, tmp and one array per slot \('m', 'v'\)"):
        class TwoSlotsOneArgument(Optimizer):
            slots = ("m", "v")

            def _update_one(self, p, g, tmp, m):
                pass

    class Flexible(Optimizer):  # takes the slots as *state
        slots = ("m", "v")

        def _update_one(self, p, g, tmp, *state):
            pass


def test_an_optimizer_reused_for_a_model_of_other_shapes_says_so():
    sgd = SGD(lr=0.1)
    sgd.update([np.ones((2, 10))], [np.ones((2, 10))])
    with pytest.raises(NNFrameError, match=r"SGD.update: a parameter of shape \(2, 20\) that is not the one of "
                                           r"shape \(2, 10\) it was bound to.*write new values into a parameter "
                                           r"\(p\[\.\.\.\] = values\) rather than replace it in the list, and give "
                                           r"a new model a new optimizer"):
        sgd.update([np.ones((2, 20))], [np.ones((2, 20))])


def test_an_optimizer_reused_for_a_model_of_the_same_shapes_says_so_but_a_view_made_again_is_the_same():
    adam = Adam(lr=0.1)
    W = np.zeros((4, 3))
    adam.update([W[:, :2]], [np.ones((4, 2))])
    adam.update([W[:, :2]], [np.ones((4, 2))])  # the same memory, sliced again for each update: its state goes on
    assert adam.step == 2
    with pytest.raises(NNFrameError, match="that is not the one of shape"):
        adam.update([np.zeros((4, 2))], [np.ones((4, 2))])  # a cell re-run: a new model, the old state
    with pytest.raises(NNFrameError, match=r"a gradient of shape \(1, 2\) for a parameter of shape \(4, 2\)"):
        adam.update([W[:, :2]], [np.ones((1, 2))])


def test_a_weight_given_twice_or_a_list_is_refused_when_bound():
    W = np.ones((3, 2))
    with pytest.raises(NNFrameError, match=r"parameters '0' and '1' share their memory \(one weight given twice\)"):
        Adam(lr=0.1).update([W, W], [np.ones((3, 2)), np.ones((3, 2))])
    with pytest.raises(NNFrameError, match=r"overlap|share their memory"):
        SGD(lr=0.1).update([W[:2], W[1:]], [np.ones((2, 2)), np.ones((2, 2))])
    with pytest.raises(NNFrameError, match="parameter '0' is a list, not a numpy array"):
        SGD(lr=0.1).update([[0.0, 1.0]], [[1.0, 1.0]])
    halves = np.zeros(6)
    SGD(lr=0.1).update([halves[:3], halves[3:]], [np.ones(3), np.ones(3)])  # one buffer, two parameters: fine
    np.testing.assert_allclose(halves, -0.1)


def test_the_learning_rate_may_come_first_without_its_name_as_in_the_book():
    assert SGD(0.1).lr == SGD(lr=0.1).lr == 0.1
    adam = Adam(0.002, beta1=0.8)
    assert (adam.lr, adam.config.beta1) == (0.002, 0.8)
    with pytest.raises(ConfigError, match="lr"):
        SGD(-1.0)


def test_a_static_update_rule_is_checked_without_self():
    class Static(Optimizer):
        @staticmethod
        def _update_one(p, g, tmp):
            np.subtract(p, g, out=p)

    p = np.ones(3)
    Static(lr=0.1).update([p], [np.ones(3)])
    assert np.array_equal(p, np.zeros(3))
    with pytest.raises(TypeError, match=r"cannot take \(p, g, tmp, m\)"):
        class StaticWithoutItsSlot(Optimizer):
            slots = ("m",)

            @staticmethod
            def _update_one(p, g, tmp):
                pass


def test_an_update_rule_given_as_a_partial_is_called_without_self():
    import functools

    def step(p, g, tmp, scale):
        np.multiply(g, scale, out=tmp)
        p -= tmp

    class Halves(Optimizer):
        _update_one = functools.partial(step, scale=0.5)

    p = np.ones(3)
    Halves(lr=0.1).update([p], [np.ones(3)])
    assert np.array_equal(p, np.full(3, 0.5))


def test_a_learning_rate_given_as_none_is_refused_not_defaulted():
    with pytest.raises(ConfigError, match="lr"):
        SGD(lr=None)


def test_a_rules_fields_set_on_the_object_as_the_book_does_take_effect_or_are_refused():
    momentum = Momentum(lr=0.1)
    momentum.momentum = 0.0  # plain SGD from here on
    p = np.zeros(2)
    for _ in range(3):
        momentum.update([p], [np.ones(2)])
    np.testing.assert_allclose(p, [-0.3, -0.3])
    with pytest.raises(ConfigError, match="momentum"):
        momentum.momentum = 2.0
    adam = Adam(lr=0.1)
    adam.beta1 = 0.5
    assert adam.config.beta1 == adam.beta1 == 0.5
    adam.weight_decay = 0.1
    assert adam.config.weight_decay == adam.weight_decay == 0.1


def test_a_refused_update_moves_nothing_and_counts_no_step():
    W1, W2 = np.ones(4), np.ones(4)
    sgd = SGD(lr=0.1)
    sgd.update([W1, W2], [np.ones(4), np.ones(4)])
    for params, grads in (([W1, np.ones(4)], [np.ones(4), np.ones(4)]), ([W1, W2], [np.ones(4), np.ones(5)])):
        with pytest.raises(NNFrameError):
            sgd.update(params, grads)
    np.testing.assert_allclose(W1, 0.9)
    assert sgd.step == 1


def test_a_config_field_named_like_an_optimizers_own_attribute_is_refused_when_the_class_is_made():
    class StateParams(OptimizerParams):
        state: str = "on"

    with pytest.raises(TypeError, match="field 'state' is the name of an attribute every optimizer keeps"):
        class Odd(Optimizer):
            params_model = StateParams


class SeesShapes(Optimizer):
    """Records the arrays it is given; a rule that reads shapes (LARS, Adafactor) says it is not element-wise."""

    elementwise = False
    seen: list = []

    def _update_one(self, p, g, tmp):
        SeesShapes.seen.append(p.shape)
        np.multiply(g, self.lr, out=tmp)
        p -= tmp


def test_a_rule_that_is_not_elementwise_gets_each_parameter_whole():
    from nnframe.flat_params import flatten
    from nnframe.nodes import Affine

    layers = [Affine(np.ones((600, 500)), np.zeros(500)), Affine(np.ones((500, 3)), np.zeros(3))]
    flatten(layers)  # one buffer, as a model built from a config has
    params = [p for layer in layers for p in layer.params]
    SeesShapes.seen = []
    SeesShapes(lr=0.1).update(params, [np.ones_like(p) for p in params])
    assert SeesShapes.seen == [(600, 500), (500,), (500, 3), (3,)]

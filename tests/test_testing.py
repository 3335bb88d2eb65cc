"""The gradient checker must pass correct nodes and fail broken ones loudly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fixtures.nodes import ForgetsItsScale
from nnframe.losses import SoftmaxWithLoss
from nnframe.node import Node
from nnframe.nodes import Affine, Dropout, MatMul, ReLU, Sigmoid
from nnframe.testing import (
    GradCheckResult,
    GradientCheckError,
    check_gradients,
    numerical_gradient,
    relative_error,
)

pytest_plugins = ["pytester"]


class ForgetfulSigmoid(Sigmoid):
    """Broken on purpose: backward drops the ``(1 - y)`` factor."""

    def backward(self, dout):
        return dout * self.out


class DoubleBiasAffine(Affine):
    """Broken on purpose: the bias gradient is twice what it should be."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads[1] *= 2
        return dx


class TransposedGrad(Sigmoid):
    """Broken on purpose: returns a gradient of the wrong shape."""

    def backward(self, dout):
        return super().backward(dout).T


class Gather(Node):
    """``y = x[idx]``: the integer input is an index, not differentiated."""

    def forward(self, x, idx):
        self.x_shape, self.idx = x.shape, idx
        return x[idx]

    def backward(self, dout):
        dx = np.zeros(self.x_shape)
        np.add.at(dx, self.idx, dout)
        return dx, None


class TinyModel:
    """A stand-in for the graph model: affine -> dropout -> relu -> affine, params named per node."""

    def __init__(self, rng):
        self.nodes = {
            "affine1": Affine(rng.standard_normal((3, 4)), rng.standard_normal(4)),
            "dropout1": Dropout(0.5, rng=np.random.default_rng(7)),
            "relu1": ReLU(),
            "affine2": Affine(rng.standard_normal((4, 2)), rng.standard_normal(2)),
        }
        self.params = [p for node in self.nodes.values() for p in node.params]
        self.grads = [g for node in self.nodes.values() for g in node.grads]
        self.param_names = [f"{name}.{p}" for name, node in self.nodes.items() for p in node.param_names]

    def forward(self, x):
        for node in self.nodes.values():
            x = node.forward(x)
        return x

    def backward(self, dout):
        for node in reversed(self.nodes.values()):
            dout = node.backward(dout)
        return dout


def test_numerical_gradient_of_known_functions():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    original = x.copy()
    # d/dx Σ x² = 2x
    np.testing.assert_allclose(numerical_gradient(lambda v: np.sum(v**2), x), 2 * x, rtol=1e-8)
    # d/dx Σ sin x = cos x
    np.testing.assert_allclose(numerical_gradient(lambda v: np.sum(np.sin(v)), x), np.cos(x), rtol=1e-8)
    # d/dx (x00 * x11) = x11 at (0, 0), x00 at (1, 1), 0 elsewhere; f reads x through the closure
    np.testing.assert_allclose(numerical_gradient(lambda _: x[0, 0] * x[1, 1], x), [[3.0, 0.0], [0.0, 1.0]],
                               atol=1e-8)
    np.testing.assert_array_equal(x, original)


@pytest.mark.parametrize("x", [np.ones(3, dtype=np.float32), [1.0, 2.0], np.arange(3)])
def test_numerical_gradient_needs_float64_arrays(x):
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda v: 0.0, x)


class OffsetScale(Node):
    """``y = s * x + 1000``: the offset swamps ``s``'s small gradient in the rounding of the projected sum."""

    param_names = ("s",)

    def __init__(self, s, wrong_by=1.0):
        super().__init__()
        self.params, self.grads = [s], [np.zeros_like(s)]
        self.wrong_by = wrong_by

    def forward(self, x):
        self.x = x
        return x * self.params[0] + 1000.0

    def backward(self, dout):
        self.grads[0][...] = (dout * self.x).sum(axis=0) * self.wrong_by
        return dout * self.params[0]


def test_a_gradient_lost_in_the_rounding_of_the_smallest_step_is_checked_at_a_larger_one(monkeypatch):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3)) * 1e-3
    s = np.ones(3)
    with monkeypatch.context() as patch:
        patch.setattr("nnframe.testing.STEPS", (1e-6,))
        result = check_gradients(OffsetScale(s.copy()), x, seed=1, raise_on_failure=False)
    assert result.errors["s"] > 1e-5  # the rounding of a sum near 1e4, over a step of 1e-6
    assert check_gradients(OffsetScale(s.copy()), x, seed=1).ok
    with pytest.raises(GradientCheckError, match="'s'"):  # a wrong gradient is wrong at every step
        check_gradients(OffsetScale(s.copy(), wrong_by=1.001), x, seed=1)


def test_relative_error_definition():
    a = np.array([3.0, 4.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(a, -a) == 1.0
    assert relative_error(np.zeros(2), np.zeros(2)) == 0.0
    # ‖(3, 4) - (3, 3)‖ / (5 + √18)
    assert relative_error(a, np.array([3.0, 3.0])) == pytest.approx(1 / (5 + np.sqrt(18)))


@pytest.mark.parametrize("node", [
    Sigmoid(), ReLU(), Dropout(0.5),
    MatMul(np.random.default_rng(0).standard_normal((3, 2))),
    Affine(np.random.default_rng(0).standard_normal((3, 2)), np.ones(2)),
], ids=repr)
def test_passes_correct_nodes(node):
    x = np.random.default_rng(1).standard_normal((4, 3))
    result = check_gradients(node, x)
    assert isinstance(result, GradCheckResult) and result.ok
    assert set(result.errors) == {"input0", *node.param_names}
    assert result.worst_error < 1e-7


def test_fails_loudly_on_a_node_that_forgets_a_factor():
    x = np.random.default_rng(1).standard_normal((4, 3))
    with pytest.raises(GradientCheckError, match=r"'input0' with relative error") as info:
        check_gradients(ForgetfulSigmoid(), x)
    assert isinstance(info.value, AssertionError)
    result = check_gradients(ForgetfulSigmoid(), x, raise_on_failure=False)
    assert not result.ok and result.worst_name == "input0" and result.worst_error > 1e-2


def test_names_the_broken_parameter():
    rng = np.random.default_rng(2)
    node = DoubleBiasAffine(rng.standard_normal((3, 2)), rng.standard_normal(2))
    with pytest.raises(GradientCheckError, match=r"worst is 'b'"):
        check_gradients(node, rng.standard_normal((4, 3)))
    result = check_gradients(node, rng.standard_normal((4, 3)), raise_on_failure=False)
    assert result.errors["W"] < 1e-7 < 1e-2 < result.errors["b"]


def test_wrong_gradient_shape_fails():
    with pytest.raises(GradientCheckError, match=r"shape \(3, 4\), expected \(4, 3\)"):
        check_gradients(TransposedGrad(), np.random.default_rng(0).standard_normal((4, 3)))


def test_missing_input_gradient_fails_unless_need_dx_is_off():
    rng = np.random.default_rng(3)
    node = MatMul(rng.standard_normal((3, 2)))
    node.backward = lambda dout: (MatMul.backward(node, dout), None)[1]
    with pytest.raises(GradientCheckError, match="no gradient for input0"):
        check_gradients(node, rng.standard_normal((4, 3)))
    node.need_dx = False
    assert set(check_gradients(node, rng.standard_normal((4, 3))).errors) == {"W"}


def test_a_node_without_param_names_has_its_parameters_named_as_its_repr_and_a_graph_name_them():
    class Unnamed(Node):
        def __init__(self, w):
            super().__init__()
            self.params, self.grads = [w], [np.zeros_like(w)]

        def forward(self, x):
            self.x = x
            return x * self.params[0]

        def backward(self, dout):
            self.grads[0][...] = (dout * self.x).sum(axis=0)
            return dout * self.params[0]

    rng = np.random.default_rng(5)
    node = Unnamed(rng.standard_normal(3))
    assert set(check_gradients(node, rng.standard_normal((4, 3))).errors) == {"input0", "p0"}
    assert repr(node) == "Unnamed(p0(3,))"


class ReplacingAffine(Affine):
    """Broken on purpose: backward puts new arrays into ``grads`` instead of writing into the old ones.

    Its gradients are right, so only the protocol check can fail it: in a
    model, the optimizer would keep reading the old, never-written arrays.
    """

    def backward(self, dout):
        W, _ = self.params
        self.grads = [self.x.T @ dout, dout.sum(axis=0)]
        return dout @ W.T


class UnnamedBias(Affine):
    """Broken on purpose: names only one of its two parameters."""

    param_names = ("W",)


def test_a_node_that_replaces_its_gradient_arrays_fails():
    rng = np.random.default_rng(4)
    node = ReplacingAffine(rng.standard_normal((3, 2)), rng.standard_normal(2))
    with pytest.raises(GradientCheckError, match=r"node 'ReplacingAffine' \(test_testing.ReplacingAffine\) "
                                                 r"replaced grads\[0\] \(W\) with a new array") as caught:
        check_gradients(node, rng.standard_normal((4, 3)))
    assert "worst is" not in str(caught.value)  # its gradients agree: naming the worst would blame W's values


def test_a_node_with_an_unnamed_parameter_fails():
    rng = np.random.default_rng(5)
    node = UnnamedBias(rng.standard_normal((3, 2)), rng.standard_normal(2))
    result = check_gradients(node, rng.standard_normal((4, 3)), raise_on_failure=False)
    assert not result.ok and result.worst_error < 1e-7
    assert result.problems == ["node 'UnnamedBias' (test_testing.UnnamedBias) has 2 params but param_names "
                               "('W',); name every parameter, in the order of params"]


class AddingAffine(Affine):
    """Broken on purpose: backward adds to its weight gradient instead of writing over it.

    Its first backward is right (the arrays start at zero), so one gradient
    check alone passes it; in training it would sum the gradients of every step.
    """

    def backward(self, dout):
        W, _ = self.params
        self.grads[0][...] += self.x.T @ dout
        self.grads[1][...] = dout.sum(axis=0)
        return dout @ W.T


def test_a_node_that_adds_to_its_gradient_fails():
    rng = np.random.default_rng(6)
    node = AddingAffine(rng.standard_normal((3, 2)), rng.standard_normal(2))
    result = check_gradients(node, rng.standard_normal((4, 3)), raise_on_failure=False)
    assert not result.ok and result.worst_error < 1e-7
    (problem,) = result.problems
    assert problem.startswith("parameter 'W' has another gradient after a second forward and backward on the same "
                              "data (first |g| max ")
    assert problem.endswith("backward must write each parameter gradient over the old one (grads[i][...] = ...), "
                            "not add to it")
    assert check_gradients(Affine(rng.standard_normal((3, 2)), rng.standard_normal(2)), rng.standard_normal((4, 3)))


def test_rtol_decides():
    x = np.random.default_rng(1).standard_normal((4, 3))
    error = check_gradients(ForgetfulSigmoid(), x, raise_on_failure=False).worst_error
    assert check_gradients(ForgetfulSigmoid(), x, rtol=2 * error).ok


def test_integer_inputs_are_not_differentiated():
    x = np.random.default_rng(4).standard_normal((5, 2))
    result = check_gradients(Gather(), x, np.array([0, 3, 3]))
    assert set(result.errors) == {"input0"}


@pytest.mark.parametrize("dtype_of", ["input", "param"])
def test_rejects_float32(dtype_of):
    rng = np.random.default_rng(5)
    W = rng.standard_normal((3, 2)).astype(np.float32 if dtype_of == "param" else np.float64)
    x = rng.standard_normal((4, 3)).astype(np.float32 if dtype_of == "input" else np.float64)
    with pytest.raises(TypeError, match="float64"):
        check_gradients(MatMul(W), x)


def test_checks_a_model_by_its_param_names_with_dropout_fixed():
    rng = np.random.default_rng(6)
    model = TinyModel(rng)
    dropout_rng = model.nodes["dropout1"].rng
    state = dropout_rng.bit_generator.state
    result = check_gradients(model, rng.standard_normal((5, 3)))
    assert set(result.errors) == {"input0", "affine1.W", "affine1.b", "affine2.W", "affine2.b"}
    assert result.worst_error < 1e-7
    assert dropout_rng.bit_generator.state == state


def test_checks_a_loss_against_its_input_only():
    rng = np.random.default_rng(7)
    result = check_gradients(SoftmaxWithLoss(), rng.standard_normal((4, 3)), target=np.array([0, 2, 1, 1]))
    assert set(result.errors) == {"input0"} and result.ok


def test_fails_a_loss_that_forgets_the_batch_mean():
    class SumNotMean(SoftmaxWithLoss):
        def backward(self, dout=1.0):
            return super().backward(dout) * len(self.y)

    with pytest.raises(GradientCheckError):
        check_gradients(SumNotMean(), np.zeros((4, 3)) + 0.1, target=np.array([0, 2, 1, 1]))


class HalfSquares:
    """A loss as the hookspec allows it: forward and backward only, no nnframe.Loss base, no params."""

    def forward(self, x, t):
        self.diff = x - t
        return 0.5 * float(np.sum(self.diff**2)) / len(x)

    def backward(self, dout=1.0):
        return dout * self.diff / len(self.diff)


def test_checks_a_loss_without_the_loss_base_or_params():
    rng = np.random.default_rng(8)
    result = check_gradients(HalfSquares(), rng.standard_normal((4, 3)), target=rng.standard_normal((4, 3)))
    assert set(result.errors) == {"input0"} and result.ok and not result.problems


def test_a_loss_returning_one_value_per_example_is_named_for_it():
    class PerExample(HalfSquares):
        def forward(self, x, t):
            super().forward(x, t)
            return 0.5 * np.sum(self.diff**2, axis=1)

    with pytest.raises(TypeError, match=r"PerExample.forward returned ndarray of shape \(4,\); a loss returns the "
                                        r"batch's mean loss as one float"):
        check_gradients(PerExample(), np.zeros((4, 3)), target=np.ones((4, 3)))


def test_fixtures_directly(gradcheck, nnframe_plugins):
    assert gradcheck is check_gradients
    assert "affine" in nnframe_plugins.nodes


def test_fixtures_through_pytester(pytester):
    pytester.makepyfile("""
        import numpy as np
        from nnframe.nodes import Sigmoid

        def test_gradcheck(gradcheck):
            assert gradcheck(Sigmoid(), np.linspace(-2.0, 2.0, 6).reshape(2, 3)).ok

        def test_plugins_are_fresh(nnframe_plugins):
            assert "softmax_cross_entropy" in nnframe_plugins.losses
            nnframe_plugins.pm.unregister(name="nodes")

        def test_plugins_are_fresh_again(nnframe_plugins):
            assert "nodes" in nnframe_plugins.infos
    """)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=3)


def test_a_failed_check_is_shown_at_the_tests_call_not_inside_nnframe(pytester):
    pytester.makepyfile("""
        import numpy as np
        from nnframe.nodes import Sigmoid

        class Forgetful(Sigmoid):
            def backward(self, dout):
                return dout * self.out

        def test_forgetful(gradcheck):
            gradcheck(Forgetful(), np.linspace(-2.0, 2.0, 6).reshape(2, 3))
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "GradientCheckError: gradient check of Sigmoid() failed" in output
    assert "_require_float64(obj, inputs)" not in output  # no source lines of check_gradients itself


class CubeWithTheTruncationAdded(Node):
    """Broken on purpose: ``y = x³`` whose gradient adds ``1e-8``, the truncation of a difference over 1e-4."""

    def forward(self, x):
        self.x = x
        return x ** 3

    def backward(self, dout):
        return dout * (3 * self.x ** 2 + 1e-8)


def test_a_wrong_gradient_shaped_like_a_large_steps_truncation_still_fails():
    x = 1e-4 * np.random.default_rng(0).standard_normal((4, 3))
    result = check_gradients(CubeWithTheTruncationAdded(), x, raise_on_failure=False)
    assert not result.ok and result.errors["input0"] > 0.1


class ReadsItsInputForDout(Node):
    """Broken on purpose: ``y = x² / 2``, whose backward gives ``x * x``, right only where ``dout`` is ``x``."""

    def forward(self, x):
        self.x = x
        return x * x / 2

    def backward(self, dout):
        return self.x * self.x


class KeepsItsFirstInput(Node):
    """y = x * s, whose backward reads the input of its first forward only."""

    param_names = ("s",)

    def __init__(self, s: np.ndarray) -> None:
        super().__init__()
        self.params, self.grads, self.x = [s], [np.zeros_like(s)], None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.x is None:
            self.x = x.copy()
        return x * self.params[0]

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.grads[0][...] = (dout * self.x).sum(axis=0)
        return dout * self.params[0]


def test_a_node_that_keeps_its_first_input_fails_and_is_told_so() -> None:
    rng = np.random.default_rng(3)
    with pytest.raises(GradientCheckError, match="its backward reads something kept from an earlier forward"):
        check_gradients(KeepsItsFirstInput(rng.standard_normal(3)), rng.standard_normal((5, 3)))


class WritesIntoItsInput(Node):
    """tanh computed in place in the array it is given."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.y = np.tanh(x, out=x)
        return self.y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1 - self.y**2)


def test_a_node_that_writes_into_its_input_fails_and_the_input_is_put_back() -> None:
    x = np.random.default_rng(4).standard_normal((4, 3))
    given = x.copy()
    with pytest.raises(GradientCheckError, match="WritesIntoItsInput wrote into its input0: a node never changes"):
        check_gradients(WritesIntoItsInput(), x)
    assert np.array_equal(x, given)


class WrapsItsIndices(Node):
    """An embedding that wraps its indices into range in the array it is given."""

    differentiable_input = False

    def __init__(self, W: np.ndarray) -> None:
        super().__init__()
        self.params, self.grads = [W], [np.zeros_like(W)]

    def forward(self, idx: np.ndarray) -> np.ndarray:
        self.idx = np.remainder(idx, len(self.params[0]), out=idx)
        return self.params[0][idx]

    def backward(self, dout: np.ndarray) -> None:
        self.grads[0][...] = 0
        np.add.at(self.grads[0], self.idx, dout)


def test_a_node_that_writes_into_its_index_input_fails_and_the_input_is_put_back() -> None:
    idx = np.array([0, 7, 9, 2])
    with pytest.raises(GradientCheckError, match="WrapsItsIndices wrote into its input0"):
        check_gradients(WrapsItsIndices(np.random.default_rng(0).standard_normal((6, 3))), idx)
    assert idx.tolist() == [0, 7, 9, 2]


class LazyDropout(Node):
    """Dropout whose Generator is made on its first forward, where no check finds it before."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not hasattr(self, "rng"):
            self.rng = np.random.default_rng()
        self.mask = self.rng.random(x.shape) > 0.5
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.mask


def test_a_forward_that_draws_from_a_generator_the_check_cannot_find_is_told_so() -> None:
    with pytest.raises(GradientCheckError, match="its forward gives another result for the same inputs each time"):
        check_gradients(LazyDropout(), np.random.default_rng(2).standard_normal((4, 3)))


def test_a_nan_gradient_is_not_taken_for_one_added_to() -> None:
    """allclose without equal_nan, and a NaN scale, read any NaN in a gradient as a backward that adds."""
    class Gain(Node):
        param_names = ("s",)

        def __init__(self, s: np.ndarray) -> None:
            super().__init__()
            self.params, self.grads = [s], [np.zeros_like(s)]

        def forward(self, x: np.ndarray) -> np.ndarray:
            self.x = x
            return x * self.params[0]

        def backward(self, dout: np.ndarray) -> np.ndarray:
            self.grads[0][...] = (dout * self.x).sum(axis=0)
            return dout * self.params[0]

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3))
    x[0, 0] = np.nan
    result = check_gradients(Gain(rng.standard_normal(3)), x, raise_on_failure=False)
    assert not any("not add to it" in problem for problem in result.problems)


def test_a_node_whose_domain_refuses_the_other_inputs_is_checked_at_its_own() -> None:
    """The forward on other inputs that comes first keeps signs and zeros; a node refusing it is checked all the
    same."""
    class UnitInterval(Sigmoid):
        def forward(self, x: np.ndarray) -> np.ndarray:
            if np.any((x <= 0) | (x >= 1)):
                raise ValueError("defined on (0, 1) only")
            return super().forward(x)

    assert check_gradients(UnitInterval(), np.full((4, 3), 0.97)).ok  # 0.97 * exp(0.25 z) leaves it at z > 0.12


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_the_projection_is_no_stream_a_test_draws_its_input_from(seed: int) -> None:
    """A test's ``default_rng(seed)`` input was the check's ``dout`` at the same seed."""
    x = np.random.default_rng(seed).standard_normal((4, 5))
    assert not check_gradients(ReadsItsInputForDout(), x, seed=seed, raise_on_failure=False).ok


class IgnoresItsWeight(Node):
    """Reads a copy of its weight taken when built, as a node whose model moved its parameters would."""

    param_names = ("W",)

    def __init__(self) -> None:
        super().__init__()
        self.params, self.grads = [np.ones((3, 2))], [np.zeros((3, 2))]
        self.copy = self.params[0].copy()

    def forward(self, x):
        self.x = x
        return x @ self.copy

    def backward(self, dout):
        self.grads[0][...] = 0.0
        return dout @ self.copy.T


def test_a_parameter_the_result_does_not_depend_on_is_named_though_its_error_is_zero():
    result = check_gradients(IgnoresItsWeight(), np.random.default_rng(0).standard_normal((4, 3)),
                             raise_on_failure=False)
    assert result.ok and result.errors["W"] == 0.0
    assert result.zero == ["W"]
    assert check_gradients(Affine(np.ones((3, 2)), np.zeros(2)), np.ones((4, 3)), raise_on_failure=False).zero == []


class PickTwice(Node):
    """``2 h[n, idx[n]]``: a float input and an index input, flagged one by one."""

    differentiable_input = (True, False)

    def forward(self, h, idx):
        self.h, self.idx = h, idx.astype(np.intp)
        return 2 * h[np.arange(len(h)), self.idx]

    def backward(self, dout):
        dh = np.zeros_like(self.h)
        dh[np.arange(len(self.h)), self.idx] = 2 * dout
        return dh, None


def test_an_input_flagged_as_indices_is_left_out_and_the_others_are_checked():
    h, idx = np.random.default_rng(0).standard_normal((3, 4)), np.array([3.0, 0.0, 1.0])
    assert sorted(check_gradients(PickTwice(), h, idx).errors) == ["input0"]

    class Unflagged(PickTwice):
        differentiable_input = True

    with pytest.raises(GradientCheckError, match="backward returned no gradient for input1 although need_dx is True"):
        check_gradients(Unflagged(), h, idx)


def test_a_nan_error_is_the_worst_wherever_it_stands() -> None:
    result = GradCheckResult({"W": 1e-9, "b": float("nan"), "x": 2e-9})
    assert result.worst_name == "b" and not result.ok


def test_a_gradient_right_only_at_a_scale_of_one_fails_off_it(gradcheck):
    node, x = ForgetsItsScale(np.ones(4)), np.random.default_rng(0).standard_normal((5, 4))
    with pytest.raises(GradientCheckError, match="the gradients agree at the parameters as given and not with the "
                                                 "parameters moved off them"):
        gradcheck(node, x)
    assert check_gradients(node, x, moved=False).ok  # at gamma = 1 alone it passes
    assert np.array_equal(node.params[0], np.ones(4))  # put back


class OfAProbability(Node):
    """y = x * f(p) with a right backward, for a p that must stay in [0, 1]: the node checks it, or leaves its
    domain quietly (NaN) beyond it."""

    param_names = ("p",)

    def __init__(self, p: float, checks: bool) -> None:
        super().__init__()
        self.params, self.grads, self.checks = [np.full(3, p)], [np.zeros(3)], checks

    def forward(self, x):
        p = self.params[0]
        if self.checks and not ((p >= 0) & (p <= 1)).all():
            raise ValueError("p must lie in [0, 1]")
        self.x = x
        return x * np.arcsin(p)

    def backward(self, dout):
        p = self.params[0]
        self.grads[0][...] = (dout * self.x).sum(axis=0) / np.sqrt(1 - p * p)
        return dout * np.arcsin(p)


@pytest.mark.parametrize("checks", [True, False], ids=["raises off its domain", "NaN off its domain"])
def test_a_right_node_that_leaves_its_domain_off_its_values_is_judged_at_them(checks):
    x = np.random.default_rng(0).standard_normal((5, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as plugin projects often run their tests
        assert check_gradients(OfAProbability(0.9, checks), x).ok


def test_the_second_look_checks_the_input_gradient_with_params_false_too():
    node, x = ForgetsItsScale(np.ones(4)), np.random.default_rng(0).standard_normal((5, 4))
    assert not check_gradients(node, x, params=False, raise_on_failure=False).ok


def test_a_loose_tolerance_keeps_the_second_look():
    node, x = ForgetsItsScale(np.ones(4)), np.random.default_rng(0).standard_normal((5, 4))
    assert not check_gradients(node, x, rtol=1e-2, raise_on_failure=False).ok  # an error of about 0.1


def test_the_check_leaves_the_gradients_of_the_values_as_given():
    x = np.random.default_rng(0).standard_normal((5, 3))
    node, plain = OfAProbability(0.5, False), OfAProbability(0.5, False)  # its gradient depends on p
    check_gradients(node, x)
    check_gradients(plain, x, moved=False)
    assert all(np.array_equal(a, b) for a, b in zip(node.grads, plain.grads))
    assert all(np.array_equal(a, b) for a, b in zip(node.params, plain.params))


def test_a_loss_checked_with_its_targets_given_positionally_is_told_to_name_them() -> None:
    x, t = np.random.default_rng(0).standard_normal((4, 3)), np.array([0, 1, 2, 0])
    with pytest.raises(TypeError, match=r"SoftmaxWithLoss is a loss; give its targets by name, "
                                        r"check_gradients\(loss, x, target=t\)"):
        check_gradients(SoftmaxWithLoss(), x, t)
    assert check_gradients(SoftmaxWithLoss(), x, target=t).ok


class Centering(Node):
    """y = x - mean over the batch, as a batch norm starts: a bias before it moves nothing."""

    def forward(self, x):
        return x - x.mean(axis=0)

    def backward(self, dout):
        return dout - dout.mean(axis=0)


@pytest.mark.parametrize("seed", range(30))
def test_a_gradient_zero_up_to_rounding_is_counted_zero_not_failed(seed: int) -> None:
    """The bias's gradient is 0, computed as 1e-16 analytically and 1e-10 numerically, or exactly 0 at the
    smallest step and 1e-11 at the largest: read as an error of about 1, it failed a right model with nothing to
    act on."""
    from nnframe.graph import Graph

    rng = np.random.default_rng(seed)
    model = Graph.sequential([Affine(rng.standard_normal((3, 5)), rng.standard_normal(5)), Centering()])
    result = check_gradients(model, rng.standard_normal((8, 3)), raise_on_failure=False)
    assert result.ok, result.describe()
    assert result.zero == ["affine1/b"] and result.errors["affine1/b"] == 0.0


class ForgetsASmallShift(Node):
    """y = x + s * a; its backward writes for a a sum that cancels to rounding (1e-16), where the gradient, s
    times dout summed, is small but real."""

    param_names = ("a",)

    def __init__(self, width: int, s: float, offset: float = 0.0) -> None:
        super().__init__()
        self.s, self.offset = s, offset
        self.params, self.grads = [np.ones(width)], [np.zeros(width)]

    def forward(self, x):
        return x + self.offset + self.s * self.params[0]

    def backward(self, dout):
        self.grads[0][...] = (dout - dout.mean(axis=0)).sum(axis=0)
        return dout


@pytest.mark.parametrize("s, offset", [(1e-7, 0.0), (1e-8, 0.0), (1e-6, 1e5), (1e-5, 1e6)])
def test_a_small_gradient_left_out_is_not_taken_for_rounding(s: float, offset: float) -> None:
    """The numerical gradient of a real one stays as the step grows; rounding's shrinks with it. With a large
    constant in the output the smallest step sees no difference at all, and the largest sees the gradient.
    Each case is told from rounding under the 30 projections of seeds 0-29; at s = 1e-9, a gradient 1e-11 of
    the checked scalar, only under about 6 in 10."""
    from nnframe.graph import Graph

    rng = np.random.default_rng(0)
    model = Graph.sequential([Affine(10 * rng.standard_normal((3, 4)), rng.standard_normal(4)),
                              ForgetsASmallShift(4, s, offset)])
    result = check_gradients(model, 10 * rng.standard_normal((8, 3)), raise_on_failure=False)
    assert not result.ok and result.worst_name == "forgetsasmallshift1/a" and result.zero == []

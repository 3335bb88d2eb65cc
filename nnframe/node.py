"""The node protocol every layer follows, as in the book's ``common/layers.py``."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from nnframe.arrays import is_array
from nnframe.errors import DataError, GraphError, not_written


class Node:
    """A graph node: ``forward(*inputs)`` returns the output, ``backward(dout)`` the input gradients.

    ``params`` and ``grads`` are lists of arrays with equal shapes and dtypes,
    allocated once. ``backward`` writes parameter gradients *in place*
    (``self.grads[0][...] = dW``) so an optimizer or logger holding a reference
    sees the new values. With several inputs, ``backward`` returns a tuple with
    one gradient per input.

    ``training`` is the train/eval switch (a model flips it on every node at
    once). ``need_dx`` is cleared by the model when no gradient is needed for the
    input (the first layer), so nodes may skip computing it and return ``None``.
    A node whose input is indices (an embedding lookup) sets
    ``differentiable_input = False``: its ``need_dx`` is then always off, and
    gradient checks leave its input out. A node of several inputs of which
    some are indices (the book's ``EmbeddingDot(h, idx)``) gives one flag per
    input, ``(True, False)``: ``need_dx`` then follows the others, and its
    backward may return ``None`` for the indices.

    Writing over arrays is opt-in on both sides. A node whose ``forward``
    returns a new array that it neither keeps nor returns again sets
    ``output_is_fresh``; one whose ``backward`` does the same with its input
    gradient sets ``dx_is_fresh``. A node that can compute in place sets
    ``can_overwrite``: for the length of each pass a model then sets its
    ``overwrite_input`` (may ``forward`` write over its one input?) and
    ``overwrite_dout`` (may ``backward`` write over ``dout``?), true only
    where the array is fresh and this node alone reads it. Outside a
    model's pass both are false. A model's first training pass refuses a
    node that declares an array fresh yet keeps it (in an attribute, or a
    list, tuple or dict one holds) where another node writes over it. A
    declaration covers the ``forward`` or ``backward`` of the class that
    makes it, and of its subclasses that keep them: a subclass that
    rewrites one declares again (see :func:`declares`).

    ``state_names`` name the attributes that hold arrays a node updates itself
    and does not train (a batch norm's running statistics): each checkpoint
    saves them, and a resume, ``load_run`` and ``train.init_from`` write them
    back into those same arrays, as they do the parameters.
    """

    param_names: tuple[str, ...] = ()
    state_names: ClassVar[tuple[str, ...]] = ()
    differentiable_input: ClassVar[bool | tuple[bool, ...]] = True
    output_is_fresh: ClassVar[bool] = False
    dx_is_fresh: ClassVar[bool] = False
    can_overwrite: ClassVar[bool] = False
    overwrite_input = False
    overwrite_dout = False
    training = True
    need_dx = True

    def __init__(self) -> None:
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.training = True
        self.need_dx = True

    def forward(self, *inputs: np.ndarray) -> np.ndarray:
        raise not_written(self, "forward(x)", "nnframe.Node")

    def backward(self, dout: np.ndarray) -> Any:
        raise not_written(self, "backward(dout)", "nnframe.Node")

    def named_params(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """``(name, param, grad)`` for each parameter; names come from ``param_names``."""
        names = self.param_names or tuple(f"p{i}" for i in range(len(self.params)))
        return list(zip(names, self.params, self.grads))

    def named_state(self) -> list[tuple[str, np.ndarray]]:
        """``(name, array)`` for each of ``state_names``; a name whose attribute is not an array is refused."""
        if isinstance(self.state_names, str):
            raise GraphError(f"{type(self).__name__}: state_names is the string {self.state_names!r}, not a tuple of "
                             f"names; write ({self.state_names!r},), with the comma")
        found = []
        for name in self.state_names:
            value = getattr(self, name, None)
            if not isinstance(value, np.ndarray):
                raise GraphError(f"{type(self).__name__}: state_names lists {name!r}, which is "
                                 f"{'missing' if value is None else f'a {type(value).__name__}'}, not a numpy array; "
                                 "state is kept in arrays the node writes into in place")
            found.append((name, value))
        return found

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}{tuple(p.shape)}" for name, p, _ in self.named_params())
        return f"{type(self).__name__}({shapes})"


def declares(node: Any, flag: str, method: str) -> bool:
    """Whether ``node``'s class sets ``flag`` for the ``method`` it runs.

    The flag counts where the class that set it is the one that wrote
    ``method``, or a subclass of it: a subclass of Affine that rewrites
    ``forward`` (to keep its output, say) does not inherit Affine's
    ``output_is_fresh``.
    """
    mro = type(node).__mro__
    flag_owner = next((cls for cls in mro if flag in vars(cls)), None)
    method_owner = next((cls for cls in mro if method in vars(cls)), None)
    if flag_owner is None or method_owner is None or not issubclass(flag_owner, method_owner):
        return False
    return bool(vars(flag_owner)[flag])


def differentiable_inputs(node: object, count: int) -> tuple[bool, ...]:
    """Which of ``node``'s ``count`` inputs take a gradient: its ``differentiable_input``, one flag for all or one
    per input."""
    flags = getattr(node, "differentiable_input", True)
    if isinstance(flags, (tuple, list, np.ndarray)):
        if len(flags) != count:
            raise GraphError(f"{type(node).__name__}.differentiable_input is {flags!r}, but the node reads {count} "
                             f"input(s): give True or False, or a tuple of {count} of them, one per input")
        if not all(isinstance(flag, (bool, np.bool_)) for flag in flags):
            raise GraphError(f"{type(node).__name__}.differentiable_input is {flags!r}: its flags must be True or "
                             "False")
        return tuple(bool(flag) for flag in flags)
    return (bool(flags),) * count


def index_input_hint(node: object, count: int, k: int) -> str:
    """How a node whose backward gives no gradient for its input ``k`` declares that input an index."""
    if count == 1:
        return "if it reads indices there, say so with differentiable_input = False"
    flags = list(differentiable_inputs(node, count))
    flags[k] = False
    return f"if it reads indices there, say so with differentiable_input = ({', '.join(map(str, flags))})"


def indices(x: Any, size: int, node: object) -> np.ndarray:
    """``x`` as indices into ``size`` rows (an embedding's table, say), refused unless every one is a whole number
    in ``0..size-1``.

    Index inputs arrive in the run's float dtype, and ``x.astype(np.intp)``
    would read 2.5 as row 2 and -1 as the last row without a word. A value
    outside the table is a data error (exit 2), named with its position.
    """
    x = np.asarray(x)
    if x.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(x) | (x != np.floor(x)) | (x < 0) | (x >= size)
    elif x.dtype.kind in "biu":
        bad = (x < 0) | (x >= size)
    else:
        raise DataError(f"{type(node).__name__}: indices must be numbers, found dtype {x.dtype}")
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{type(node).__name__}: index {x[where].item()!r} at {where} is not one of its {size} "
                        f"rows; indices must be whole numbers 0..{size - 1} (is the data's id out of range, or the "
                        "table too small?)")
    return x.astype(np.intp)


def backward_before_forward(node: object) -> RuntimeError:
    """The error for a ``backward`` called before any ``forward`` (a notebook's cells run out of order)."""
    return RuntimeError(f"{type(node).__name__}.backward was called before forward: run forward first, "
                        "it keeps what backward needs")


def check_dout(node: object, dout: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``dout`` as an array, refused where its shape is not that of the output it is the gradient of.

    For nodes whose backward would otherwise reshape a wrong ``dout`` into a
    gradient of the wrong shape (Repeat, Sum), or broadcast it into wrong
    values of the right shape (the activations), without a word.
    """
    if getattr(dout, "shape", None) == shape:
        return dout
    try:
        array = np.asarray(dout)
    except ValueError:  # nested lists of uneven lengths
        raise ValueError(f"{type(node).__name__}.backward: dout is not an array of numbers (its nested lists are "
                         f"uneven); forward's output had shape {shape}") from None
    if array.shape != shape:
        raise ValueError(f"{type(node).__name__}.backward: dout has shape {array.shape}, but forward's output "
                         f"had shape {shape}")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{type(node).__name__}.backward: dout must hold numbers, found dtype {array.dtype}")
    return array


def weight(value: Any, name: str, node: str, shape: tuple[int | None, ...] | None = None) -> np.ndarray:
    """``value`` as a parameter array of ``node``: floating point, of ``shape`` where given (``None`` for a size
    matches any).

    An array is kept as it is, so the caller's own array is the one trained;
    a nested list is made into one.
    """
    array = value if is_array(value) else np.asarray(value)
    if array.dtype.kind != "f":
        raise TypeError(f"{node}: {name} must be a floating-point array, found {type(value).__name__} of dtype "
                        f"{array.dtype}")
    if shape is None:
        return array
    if array.ndim != len(shape) or any(want is not None and want != got for want, got in zip(shape, array.shape)):
        sizes = ", ".join("any" if want is None else str(want) for want in shape)
        raise ValueError(f"{node}: {name} must have shape ({sizes}{',' if len(shape) == 1 else ''}), "
                         f"found {array.shape}")
    return array

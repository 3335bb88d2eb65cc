"""The one place that knows how arrays are created and which dtypes are allowed.

Optimizers and the core nodes' parameter gradients are allocated through
these functions, so that a later backend (CuPy on a GPU) starts from one
module; the nodes' forward and backward still call numpy directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

xp = np

DTYPES = {"float32": np.float32, "float64": np.float64}


def is_array(value: object) -> bool:
    """A numpy array, or a GPU array of the same interface (CuPy's); a numpy scalar, which no update can change
    in place, is not."""
    return isinstance(value, np.ndarray) or hasattr(value, "__cuda_array_interface__")


def as_dtype(name: str | np.dtype | type) -> np.dtype:
    """The numpy dtype for a config name such as ``"float32"``."""
    if isinstance(name, str):
        if name not in DTYPES:
            raise ValueError(f"unsupported dtype {name!r}; use one of {', '.join(DTYPES)}")
        return np.dtype(DTYPES[name])
    return np.dtype(name)


def jsonable(value: Any) -> Any:
    """``value`` with numpy arrays and scalars, also inside dicts, turned into lists and Python numbers.

    A ``Generator``'s ``bit_generator.state`` needs this before ``json.dumps``.
    """
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def zeros(shape: tuple[int, ...], dtype: np.dtype | str) -> np.ndarray:
    return xp.zeros(shape, dtype=as_dtype(dtype))


def zeros_like(array: np.ndarray) -> np.ndarray:
    return xp.zeros_like(array)

"""The core graph nodes of the seed, with book-style constructors.

Each node follows :class:`nnframe.Node`: ``forward`` caches what ``backward``
needs, and parameter gradients are written in place.
"""

from __future__ import annotations

from nnframe.nodes.activations import ReLU, Sigmoid, Tanh, sigmoid
from nnframe.nodes.affine import Affine
from nnframe.nodes.arithmetic import Add, Mul, reduce_to_shape
from nnframe.nodes.dropout import Dropout
from nnframe.nodes.flatten import Flatten
from nnframe.nodes.matmul import MatMul
from nnframe.nodes.repeat_sum import Repeat, Sum
from nnframe.nodes.softmax import Softmax, log_softmax, softmax

__all__ = [
    "Add", "Affine", "Dropout", "Flatten", "MatMul", "Mul", "ReLU", "Repeat", "Sigmoid", "Softmax", "Sum", "Tanh",
    "log_softmax", "reduce_to_shape", "sigmoid", "softmax",
]

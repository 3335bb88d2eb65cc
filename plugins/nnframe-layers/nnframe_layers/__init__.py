"""Example third-party nnframe plugin: LayerNorm, BatchNorm, GELU and Swish nodes.

nnframe finds the components through the ``nnframe`` entry point declared in
``pyproject.toml`` (``layers = "nnframe_layers.plugin"``); the node classes can
also be used directly, like nnframe's own ``nnframe.nodes``.
"""

from __future__ import annotations

from nnframe_layers.layers import GELU, BatchNorm, LayerNorm, Swish

__all__ = ["GELU", "BatchNorm", "LayerNorm", "Swish"]
__version__ = "0.1.0"

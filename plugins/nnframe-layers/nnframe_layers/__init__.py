"""Example third-party nnframe plugin: LayerNorm, GELU and Swish nodes.

nnframe finds the components through the ``nnframe`` entry point declared in
``pyproject.toml`` (``layers = "nnframe_layers.plugin"``); the node classes can
also be used directly, like nnframe's own ``nnframe.nodes``.
"""

from __future__ import annotations

from nnframe_layers.layers import GELU, LayerNorm, Swish

__all__ = ["GELU", "LayerNorm", "Swish"]
__version__ = "0.1.0"

"""Example third-party nnframe plugin: scikit-learn's bundled datasets as nnframe datasets.

nnframe finds the components through the ``nnframe`` entry point declared in
``pyproject.toml`` (``sklearn = "nnframe_sklearn.plugin"``).
"""

from __future__ import annotations

from nnframe_sklearn.datasets import prepare, stratified_split

__all__ = ["prepare", "stratified_split"]
__version__ = "0.1.0"

"""nnframe: a numpy training framework with explicit forward and backward nodes.

The public names are imported lazily so that ``nnframe --help`` stays fast.
Importing nnframe before numpy lets OpenBLAS's idle threads sleep sooner
(see :mod:`nnframe.threads`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nnframe.threads import quiet_idle_blas_threads

quiet_idle_blas_threads()

__version__ = "0.1.0"

_PUBLIC = {
    "Node": "nnframe.node",
    "hookimpl": "nnframe.hookspecs",
    "hookspec": "nnframe.hookspecs",
    "Component": "nnframe.components",
    "Params": "nnframe.components",
    "NodeContext": "nnframe.components",
    "Optimizer": "nnframe.optimizer_base",
    "OptimizerParams": "nnframe.optimizer_params",
    "Schedule": "nnframe.schedules",
    "DatasetContext": "nnframe.components",
    "CallbackContext": "nnframe.components",
    "Dataset": "nnframe.data",
    "Loss": "nnframe.losses",
    "NNFrameError": "nnframe.errors",
    "UserError": "nnframe.errors",
    "Interrupted": "nnframe.train",
    "get_plugin_manager": "nnframe.plugins",
    "RunContext": "nnframe.run",
    "StepMetrics": "nnframe.run",
    "EvalMetrics": "nnframe.run",
    "run_experiment": "nnframe.api",
    "prepare_experiment": "nnframe.api",
    "load_run": "nnframe.api",
}

__all__ = sorted(_PUBLIC) + ["__version__"]

if TYPE_CHECKING:
    from nnframe.api import load_run, prepare_experiment, run_experiment
    from nnframe.components import CallbackContext, Component, DatasetContext, NodeContext, Params
    from nnframe.data import Dataset
    from nnframe.errors import NNFrameError, UserError
    from nnframe.hookspecs import hookimpl, hookspec
    from nnframe.losses import Loss
    from nnframe.node import Node
    from nnframe.optimizer_base import Optimizer
    from nnframe.optimizer_params import OptimizerParams
    from nnframe.plugins import get_plugin_manager
    from nnframe.run import EvalMetrics, RunContext, StepMetrics
    from nnframe.schedules import Schedule
    from nnframe.train import Interrupted


_SUBMODULES = ("nodes", "node", "losses", "optimizers", "schedules", "gradients", "graph", "testing", "errors")
"""Reachable as ``nnframe.nodes.Affine`` without importing them first, as a reader of the book expects."""


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"nnframe.{name}")
    raise AttributeError(f"module 'nnframe' has no attribute {name!r}")

"""The plugin module nnframe loads through the ``nnframe`` entry point.

It is written exactly like nnframe's built-in dataset plugin: one hook
implementation returning components, each a name, a :class:`nnframe.Params`
model and a ``build(params, ctx)`` function.
"""

from __future__ import annotations

from nnframe import hookimpl
from nnframe.components import Component, dataset
from nnframe_sklearn.datasets import (
    DigitsParams,
    SklearnParams,
    build_breast_cancer,
    build_digits,
    build_iris,
    build_wine,
)


@hookimpl
def nnframe_register_datasets() -> list[Component]:
    return [
        dataset("digits", DigitsParams, build_digits),
        dataset("iris", SklearnParams, build_iris),
        dataset("wine", SklearnParams, build_wine),
        dataset("breast_cancer", SklearnParams, build_breast_cancer),
    ]

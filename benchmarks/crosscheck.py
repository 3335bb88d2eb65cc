"""Correctness cross-check: nnframe and the hand-written reference give the same loss curves, on spiral (sigmoid,
SGD) and on digits (ReLU, Adam, also with a hidden layer wide enough for Adam's update in blocks), in float64.

Both start from nnframe's built initial weights (copied into the reference)
and see the same mini-batches: the indices come from a
:class:`~nnframe.batches.BatchIterator` over a copy of the run's shuffle
stream, taken before the Trainer draws from it. In float64 the two loss curves
then agree to rounding (about 1e-15); they are compared with
``np.allclose(rtol=1e-12, atol=1e-12)``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from benchmarks.handwritten.net import MultiLayerNet
from benchmarks.handwritten.optimizer import SGD, Adam
from benchmarks.handwritten.trainer import Trainer as ReferenceTrainer

TOLERANCE = 1e-12


def loss_curves(config: Path, steps: int, overrides: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(nnframe, reference)`` losses of the first ``steps`` steps of a config of Affine layers with one kind of
    activation between them and SGD or Adam (the spiral config: sigmoid, SGD; digits: ReLU, Adam)."""
    from nnframe.batches import BatchIterator
    from nnframe.launch import prepare
    from nnframe.plugins import get_plugin_manager
    from nnframe.run import RunContext
    from nnframe.train import Trainer

    plugins = get_plugin_manager()
    experiment = prepare(Path(config), list(overrides or []), plugins)
    settings = experiment.settings
    shuffle = copy.deepcopy(experiment.streams.shuffle)
    activation = next(node["type"] for node in experiment.config.resolved["model"] if node["type"] != "affine")
    optimizer = {"sgd": SGD, "adam": Adam}[settings.optimizer.type](lr=settings.optimizer.lr)
    reference = reference_trainer(experiment.model.params, experiment.dataset, optimizer, settings.train.batch_size,
                                  activation)
    run = RunContext(name=settings.name, config=experiment.config.resolved, run_dir=None, plugin_manager=plugins.pm)
    trainer = Trainer(experiment, run)
    ours = np.array([trainer.train_step().loss for _ in range(steps)])
    order = BatchIterator(experiment.dataset.n_train, settings.train.batch_size, shuffle,
                          drop_last=settings.train.drop_last, shuffle=settings.train.shuffle)
    theirs = np.array(reference.fit_batches(order.next_batch() for _ in range(steps)))
    return ours, theirs


def reference_trainer(params: list[np.ndarray], dataset, optimizer: SGD | Adam, batch_size: int,
                      activation: str = "sigmoid") -> ReferenceTrainer:
    """The book's net with ``params`` (``W1, b1, W2, b2, ...``) copied in, on the same data."""
    weights = params[0::2]
    sizes = [W.shape[0] for W in weights] + [weights[-1].shape[1]]
    model = MultiLayerNet(sizes, activation, dtype=params[0].dtype)
    for mine, theirs in zip(model.params, params, strict=True):
        mine[...] = theirs
    return ReferenceTrainer(model, optimizer, dataset.x, dataset.y, batch_size)


CHECKS = {"spiral": ("spiral.yaml", [], None),
          "digits_float64": ("digits.yaml", ["train.dtype=float64"], None),
          "digits_wide_float64": ("digits.yaml", ["train.dtype=float64", "model.0.out=4096"], 300)}
"""Each check's config in ``benchmarks/configs``, overrides and most steps: spiral's sigmoid and SGD as the book
runs them; digits' ReLU and Adam, which mlp_large and digits time in float32, here in float64 to compare to
rounding; and digits with a hidden layer of 4096, whose 307,210 parameters Adam updates in blocks split between
threads, as mlp_large's (the 7,510 of digits are updated in one go)."""


def compare_all(configs: Path, steps: int) -> dict[str, dict]:
    """:func:`compare` for each of :data:`CHECKS`."""
    return {name: compare(configs / config, min(steps, most or steps), overrides)
            for name, (config, overrides, most) in CHECKS.items()}


def compare(config: Path, steps: int, overrides: list[str] | None = None) -> dict:
    """One cross-check's result for the report."""
    ours, theirs = loss_curves(config, steps, overrides)
    difference = np.abs(ours - theirs)
    return {
        "steps": steps,
        "max_abs_diff": float(difference.max()),
        "tolerance": TOLERANCE,
        "allclose": bool(np.allclose(ours, theirs, rtol=TOLERANCE, atol=TOLERANCE)),
        "first_loss": float(ours[0]),
        "last_loss": float(ours[-1]),
    }

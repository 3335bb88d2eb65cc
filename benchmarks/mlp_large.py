"""The mlp-large workload: synthetic MNIST-shaped data and the three trainers built on it.

The data are written once per run to an ``.npz`` file that nnframe reads
through its ``npz`` dataset (``data.path=...``) and the others with
``np.load``: ``x`` standard normal ``(N, 784)`` float32, ``y`` the argmax of a
fixed random linear map, so the task is learnable and the loss falls.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZES = (784, 1000, 1000, 10)
BATCH = 256
LR = 0.001


def write_data(path: Path, examples: int, seed: int = 0) -> Path:
    """Write ``x: (examples, 784)`` float32 and ``y: (examples,)`` int64 class indices to ``path``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((examples, SIZES[0]), dtype=np.float32)
    teacher = rng.standard_normal((SIZES[0], SIZES[-1]), dtype=np.float32)
    y = (x @ teacher).argmax(axis=1).astype(np.int64)
    np.savez(path, x=x, y=y)
    return path


def load_data(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as archive:
        return archive["x"], archive["y"]


def weight_std() -> list[float]:
    """He for the ReLU layers, Xavier for the last, as the benchmark config."""
    fans = SIZES[:-1]
    return [float(np.sqrt(2 / fan)) for fan in fans[:-1]] + [float(np.sqrt(1 / fans[-1]))]


def handwritten_trainer(path: Path, seed: int = 0):
    """The book-style reference: MultiLayerNet with Relu, Adam, float32."""
    from benchmarks.handwritten.net import MultiLayerNet
    from benchmarks.handwritten.optimizer import Adam
    from benchmarks.handwritten.trainer import Trainer

    x, t = load_data(path)
    rng = np.random.default_rng(seed)
    model = MultiLayerNet(SIZES, "relu", weight_std(), rng, np.float32)
    return Trainer(model, Adam(lr=LR), x, t, BATCH, rng)


def torch_trainer(path: Path, seed: int = 0):
    from benchmarks.pytorch.models import trainer

    x, t = load_data(path)
    return trainer(SIZES, "relu", "float32", "adam", LR, x, t, BATCH, seed)

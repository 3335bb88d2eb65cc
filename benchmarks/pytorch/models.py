"""PyTorch versions of the benchmark nets and a one-step-at-a-time trainer.

The loop is what a PyTorch user writes without a DataLoader: a permutation per
epoch, index the tensors, ``zero_grad``, ``backward``, ``step``, and
``loss.item()`` (every implementation reports each step's loss).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def mlp(sizes: Sequence[int], activation: str, dtype: str) -> nn.Sequential:
    """``Linear - activation - ... - Linear`` with PyTorch's default initialisation."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1], dtype=DTYPES[dtype]))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """``sgd`` or ``adam`` (the defaults otherwise)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


class Trainer:
    """Mini-batch training of a classifier; ``train_step()`` takes one optimizer step and returns the loss."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, x: np.ndarray, t: np.ndarray,
                 batch_size: int, seed: int = 0) -> None:
        self.model = model
        self.opt = opt
        dtype = next(model.parameters()).dtype
        self.x = torch.as_tensor(x, dtype=dtype)
        self.t = torch.as_tensor(t, dtype=torch.int64)
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.max_iters = -(-len(x) // batch_size)
        self.iters = 0
        self.idx = None
        self.loss_fn = nn.CrossEntropyLoss()

    def train_step(self) -> float:
        if self.iters == 0:
            self.idx = torch.randperm(len(self.x), generator=self.generator)
        batch = self.idx[self.iters * self.batch_size:(self.iters + 1) * self.batch_size]
        self.iters = (self.iters + 1) % self.max_iters
        loss = self.loss_fn(self.model(self.x[batch]), self.t[batch])
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.item()

    def fit(self, epochs: int) -> list[float]:
        return [self.train_step() for _ in range(epochs * self.max_iters)]

    @torch.no_grad()
    def accuracy(self, x: np.ndarray, t: np.ndarray) -> float:
        dtype = next(self.model.parameters()).dtype
        predicted = self.model(torch.as_tensor(x, dtype=dtype)).argmax(dim=1).numpy()
        return float(np.mean(predicted == t))

    def __repr__(self) -> str:
        return f"Trainer({self.model!r}, batch_size={self.batch_size})"


def trainer(sizes: Sequence[int], activation: str, dtype: str, opt: str, lr: float, x: np.ndarray,
            t: np.ndarray, batch_size: int, seed: int = 0) -> Trainer:
    """A seeded :class:`Trainer` for an MLP of ``sizes``."""
    torch.manual_seed(seed)
    model = mlp(sizes, activation, dtype)
    return Trainer(model, optimizer(opt, model.parameters(), lr), x, t, batch_size, seed)

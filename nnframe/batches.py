"""The mini-batch iterator: which examples each optimizer step sees, resumable mid-epoch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from nnframe.arrays import jsonable
from nnframe.errors import CheckpointError, DataError, UserError


def batches_per_epoch(n: int, batch_size: int, drop_last: bool) -> int:
    """Mini-batches in one pass over ``n`` examples; a last partial batch counts unless dropped."""
    return n // batch_size if drop_last else -(-n // batch_size)


class BatchIterator:
    """Index arrays of mini-batches over ``n`` examples, a new permutation every epoch.

    Each epoch draws one permutation of ``0..n-1`` from ``rng`` (or uses
    ``0..n-1`` in order when ``shuffle`` is off) and cuts it into
    ``batches_per_epoch`` slices of ``batch_size``; the last, shorter slice is
    kept unless ``drop_last``. A step costs one slice of the precomputed
    permutation.

    ``epoch`` counts finished epochs and ``position`` the batches already taken
    in the current one. ``next_batch()`` runs on across epochs (for step-driven
    training); iterating yields the rest of the current epoch. The iterator owns
    ``rng``: :meth:`state_dict` saves its state, so that :meth:`load_state_dict`
    on a fresh iterator continues with exactly the same batches.
    """

    def __init__(self, n: int, batch_size: int, rng: np.random.Generator,
                 drop_last: bool = False, shuffle: bool = True) -> None:
        if batch_size < 1:
            raise UserError(f"batch_size must be at least 1; found {batch_size}")
        if n < batch_size:
            raise DataError(f"dataset has {n} training examples, fewer than batch_size {batch_size}; "
                            f"lower batch_size to at most {n} or use more data")
        self.n = n
        self.batch_size = batch_size
        self.rng = rng
        self.drop_last = drop_last
        self.shuffle = shuffle
        self.batches_per_epoch = batches_per_epoch(n, batch_size, drop_last)
        self.epoch = 0
        self.position = 0
        self._order = self._draw_order()

    def next_batch(self) -> np.ndarray:
        """The indices of the next batch, starting a new epoch after the last batch of this one."""
        start = self.position * self.batch_size
        batch = self._order[start:start + self.batch_size]
        self.position += 1
        if self.position == self.batches_per_epoch:
            self.epoch += 1
            self.position = 0
            self._order = self._draw_order()
        return batch

    def __iter__(self) -> Iterator[np.ndarray]:
        epoch = self.epoch
        while self.epoch == epoch:
            yield self.next_batch()

    @property
    def order(self) -> np.ndarray:
        """The current epoch's permutation (read it, do not change it)."""
        return self._order

    def state_dict(self) -> dict[str, Any]:
        """Where the iterator stands: ints, the current order, and the rng state as JSON text."""
        return {
            "n": self.n,
            "batch_size": self.batch_size,
            "epoch": self.epoch,
            "position": self.position,
            "order": self._order.copy(),
            "rng": json.dumps(jsonable(self.rng.bit_generator.state)),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`; the iterator must cover the same ``n`` and ``batch_size``."""
        if int(state["n"]) != self.n:
            raise CheckpointError(f"the run was trained on {int(state['n'])} training examples, but this config "
                                  f"gives {self.n}; a resume needs the run's training data (its data section, "
                                  "val_fraction included)")
        if int(state["batch_size"]) != self.batch_size:
            raise CheckpointError(f"the run was trained in batches of {int(state['batch_size'])}, but this config "
                                  f"has train.batch_size {self.batch_size}; a resume keeps the run's batch size")
        order = np.asarray(state["order"], dtype=np.int64)
        position = int(state["position"])
        if order.shape != (self.n,) or not 0 <= position < self.batches_per_epoch:
            raise CheckpointError(f"the saved batch position is corrupt: order of shape {order.shape} "
                                  f"for {self.n} examples, batch {position} of {self.batches_per_epoch}")
        rng_state = json.loads(str(np.asarray(state["rng"])))
        try:
            self.rng.bit_generator.state = rng_state
        except (ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"the saved data-order random state does not fit this run's "
                                  f"{type(self.rng.bit_generator).__name__} generator: {exc}") from None
        self.epoch = int(state["epoch"])
        self.position = position
        self._order = order

    def __repr__(self) -> str:
        return (f"BatchIterator(n={self.n}, batch_size={self.batch_size}, drop_last={self.drop_last}, "
                f"shuffle={self.shuffle}, epoch={self.epoch}, position={self.position}/{self.batches_per_epoch})")

    def _draw_order(self) -> np.ndarray:
        if self.shuffle:
            return self.rng.permutation(self.n)
        return np.arange(self.n, dtype=np.int64)


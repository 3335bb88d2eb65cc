"""Train the book's spiral net by hand, as a whole process: ``python -m benchmarks.handwritten.train_spiral``.

The whole-process timing runs this script next to ``nnframe train`` and the
PyTorch script; it imports numpy and the reference classes, nothing else.
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.handwritten.net import TwoLayerNet
from benchmarks.handwritten.optimizer import SGD
from benchmarks.handwritten.spiral import load_data
from benchmarks.handwritten.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1984)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    x, t = load_data(rng)
    model = TwoLayerNet(input_size=2, hidden_size=10, output_size=3, rng=rng)
    trainer = Trainer(model, SGD(lr=1.0), x, t, batch_size=30, rng=rng)
    total_loss, loss_count = 0.0, 0
    for epoch in range(args.epochs):
        for iters in range(trainer.max_iters):
            total_loss += trainer.train_step()
            loss_count += 1
            if (iters + 1) % 10 == 0:
                avg_loss = total_loss / loss_count
                print(f"| epoch {epoch + 1} |  iter {iters + 1} / {trainer.max_iters} | loss {avg_loss:.2f}")
                total_loss, loss_count = 0.0, 0
    print(f"train accuracy {model.accuracy(x, t):.4f}")


if __name__ == "__main__":
    main()

"""Train the book's spiral net in PyTorch, as a whole process: ``python -m benchmarks.pytorch.train_spiral``.

Same data (the book's generator), net (2-10-3 sigmoid, float64), SGD lr 1.0,
batch 30 and 300 epochs as ``nnframe train experiments/spiral.yaml``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.handwritten.spiral import load_data
from benchmarks.pytorch.models import trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1984)
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave the default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, t = load_data(np.random.default_rng(args.seed))
    run = trainer([2, 10, 3], "sigmoid", "float64", "sgd", 1.0, x, t, batch_size=30, seed=args.seed)
    total_loss, loss_count = 0.0, 0
    for epoch in range(args.epochs):
        for iters in range(run.max_iters):
            total_loss += run.train_step()
            loss_count += 1
            if (iters + 1) % 10 == 0:
                print(f"| epoch {epoch + 1} |  iter {iters + 1} / {run.max_iters} | loss {total_loss / loss_count:.2f}")
                total_loss, loss_count = 0.0, 0
    print(f"train accuracy {run.accuracy(x, t):.4f}")


if __name__ == "__main__":
    main()

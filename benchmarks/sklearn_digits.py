"""scikit-learn's MLPClassifier on the digits benchmark: same net, Adam, batch 32, a fixed number of epochs."""

from __future__ import annotations

import time
import warnings

import numpy as np


def fit_mlp(x: np.ndarray, t: np.ndarray, x_test: np.ndarray, t_test: np.ndarray, epochs: int,
            seed: int = 0) -> dict[str, float]:
    """Fit time (s), test accuracy and epochs run of a 64-100-10 ReLU MLPClassifier.

    ``alpha=0`` (no L2, like the others) and ``n_iter_no_change`` past
    ``max_iter`` so that exactly ``epochs`` epochs run, not fewer.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(100,), activation="relu", solver="adam", alpha=0.0, batch_size=32,
                        learning_rate_init=0.001, max_iter=epochs, n_iter_no_change=epochs + 1, shuffle=True,
                        random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        clf.fit(x, t)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "accuracy": float(clf.score(x_test, t_test)), "epochs": int(clf.n_iter_)}

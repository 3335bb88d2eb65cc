"""``nnframe gradcheck``: check a configured model's gradients numerically, in float64."""

from __future__ import annotations

from pathlib import Path

from nnframe.build import build_experiment
from nnframe.config_loader import load_experiment
from nnframe.plugins import Plugins
from nnframe.testing import GradCheckResult, check_gradients


def check_experiment(config_path: Path, overrides: list[str], plugins: Plugins, batch: int = 4,
                     tolerance: float = 1e-5) -> GradCheckResult:
    """Build the experiment's model in float64 and check every parameter on a batch of ``batch`` examples."""
    loaded = load_experiment(config_path, [*overrides, "train.dtype=float64"], plugins)
    experiment = build_experiment(loaded, plugins)
    model = experiment.model
    model.need_input_grad = True
    x = experiment.dataset.x[:batch]
    return check_gradients(model, x, rtol=tolerance, raise_on_failure=False)

"""How numbers are shown to people: progress lines, the final metrics, ``nnframe runs``."""

from __future__ import annotations


def format_metric(value: float) -> str:
    """A loss as four decimals, or in scientific notation when that would be a page of digits (a 1e300 loss)."""
    return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.4e}"

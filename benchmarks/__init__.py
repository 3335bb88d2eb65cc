"""nnframe's performance comparisons; run ``python -m benchmarks.run`` from the repository root (see README.md)."""

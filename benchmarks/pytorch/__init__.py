"""The PyTorch CPU comparison: the same nets and loops in idiomatic PyTorch.

PyTorch is never a dependency of nnframe: ``pip install torch`` (a CPU wheel)
to include it; the runner leaves it out when it is not installed. Import this
package's modules only after checking that ``torch`` is importable.
"""

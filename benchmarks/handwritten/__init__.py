"""The hand-written numpy reference, in the style of the book's ``common/`` code.

Plain classes with ``params``, ``grads``, ``forward`` and ``backward``, an
optimizer with ``update(params, grads)`` and a loop that slices mini-batches:
what a reader of chapter 1 writes by hand. nnframe is measured against it.
"""

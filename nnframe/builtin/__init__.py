"""nnframe's own components, each module a plugin registered through nnframe's entry points."""

"""README.md's "Nodes in Python" section, run as written: the book-style nodes, a Graph, a branch."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Nodes in Python"


def python_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", 1)]
    return [textwrap.dedent(block) for block in
            re.findall(r"^ *```python\n(.*?)^ *```$", section, flags=re.MULTILINE | re.DOTALL)]


def test_the_sections_code_runs_and_its_graph_returns_the_input_gradient() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 2
    names: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), names)
    assert names["dW"] is names["affine"].grads[0]
    assert names["dx"].shape == names["x"].shape
    assert names["net"].param_names == ["affine1/W", "affine1/b"]
    branch, x = names["branch"], names["x"]
    out = branch.forward(x)
    np.testing.assert_allclose(branch.backward(np.ones_like(out)), 2 * np.ones_like(out) @ names["W"].T)

"""README.md and docs/: every relative link reaches a file and a heading, and docs/python.md's own loop runs."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from fixtures.console import NNFRAME

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_reaches_a_file_and_a_heading(page: Path) -> None:
    links = [link for link in LINK.findall(page.read_text(encoding="utf-8")) if "://" not in link]
    assert links or page.name != "README.md"
    for link in links:
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        assert path.exists(), f"{page.name}: {link} reaches no file"
        if anchor:
            assert anchor in anchors(path), f"{page.name}: {link} reaches no heading of {path.name}"


def test_the_readme_links_every_page_of_the_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert all(f"docs/{page.name}" in readme for page in PAGES[1:])


def test_the_loop_of_your_own_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    text = (ROOT / "docs" / "python.md").read_text(encoding="utf-8")
    section = text[text.index("## A loop of your own"):]
    (block,) = re.findall(r"^```python\n(.*?)^```$", section[:section.index("\n## ", 1)], re.MULTILINE | re.DOTALL)
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    exec(compile(textwrap.dedent(block), "docs/python.md", "exec"), {})
    loss, accuracy = re.fullmatch(r"loss ([\d.]+), accuracy ([\d.]+)\n", capsys.readouterr().out).groups()
    assert float(loss) < 0.3 and float(accuracy) >= 0.9
    assert (tmp_path / "runs" / "weights.npz").exists()


def test_the_readmes_experiments_from_python_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Experiments from Python"):]
    block = re.findall(r"^```python\n(.*?)^```$", section[:section.index("\n## ", 1)], re.MULTILINE | re.DOTALL)[0]
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(block, "README.md", "exec"), names)
    assert names["scores"].shape == (len(names["x"]), 3)
    assert str(names["result"].run_dir) in capsys.readouterr().out
    assert names["result"].summary["steps"] == 300


def test_the_readmes_error_examples_are_what_the_cli_prints(tmp_path: Path) -> None:
    """The README wraps each message to fit the page; the CLI prints it on one line."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("Here `bad.yaml` is"):]
    (block,) = re.findall(r"^```text\n(.*?)^```$", section[:section.index("\n## ")], re.MULTILINE | re.DOTALL)
    spiral = (ROOT / "experiments" / "spiral.yaml").read_text(encoding="utf-8")
    (tmp_path / "bad.yaml").write_text(spiral.replace("type: affine", "type: afine", 1), encoding="utf-8")
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    examples = re.findall(r"^\$ (nnframe .*)\n((?:(?!\$ ).*\n?)+)", block, re.MULTILINE)
    assert len(examples) == 2
    for command, shown in examples:
        done = subprocess.run([NNFRAME, *shlex.split(command)[1:]], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2
        assert done.stderr == " ".join(shown.split("\n")).strip() + "\n"


DEFAULTS_RESERVED = ("type", "name", "inputs", "schedule")
"""Keys the config reads itself, which no component's row lists."""


def _shown(value: Any) -> str:
    """A default as the table shows it."""
    if value is None:
        return "null (unset)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return str(value)
    return f"`{value}`" if isinstance(value, str) else str(value)


def _fields(model: Any) -> str:
    parts = []
    for key, field in model.model_fields.items():
        if key in DEFAULTS_RESERVED:
            continue
        if field.is_required():
            parts.append(f"`{key}` (required)")
        else:
            default = field.default_factory() if field.default_factory is not None else field.default
            parts.append(f"`{key}` {_shown(default)}")
    return ", ".join(parts) or "none"


def _default_rows() -> list[str]:
    from nnframe.config import CheckpointConfig, LogConfig, TrainConfig
    from nnframe.plugins import get_plugin_manager

    rows = [f"| `{name}` | {_fields(model)} |" for name, model in
            (("train", TrainConfig), ("log", LogConfig), ("checkpoint", CheckpointConfig))]
    plugins = get_plugin_manager()
    for kind, section in (("datasets", "data"), ("nodes", "model"), ("losses", "loss"), ("optimizers", "optimizer"),
                          ("schedules", "optimizer.schedule"), ("callbacks", "callbacks")):
        registry = getattr(plugins, kind)
        rows += [f"| {section} `{component.name}` | {_fields(component.params)} |" for component in registry
                 if registry.plugin_of(component.name).dist == "nnframe"]
    return rows


def test_the_table_of_defaults_is_the_configs_own() -> None:
    """Each row of docs/experiments.md's *Every default*, as the models of the config and the built-in components
    give their defaults: a default changed in the code and not in the table fails here."""
    page = (ROOT / "docs" / "experiments.md").read_text(encoding="utf-8")
    missing = [row for row in _default_rows() if row not in page]
    assert not missing, "\n".join(missing)

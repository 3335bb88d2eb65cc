"""The ``model`` section read as one graph, and what is wrong with it, each problem at its field path.

:func:`model_layout` reads either form of the section (a list of nodes, or
``inputs``/``nodes``/``output``) as one graph: names, inputs, output, and each
node's field path. :func:`layout_problems` finds duplicate names, unknown
inputs, cycles and nodes that do not reach the output before anything is
built, so that each problem names the field to fix. (:class:`~nnframe.graph.Graph`
checks the same structure again for models built in code, where there are no
field paths.)
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from nnframe.errors import unknown_name_message
from nnframe.graph import sequential_names


@dataclass(frozen=True)
class NodeSpec:
    """One model node as the config describes it: its name and inputs filled in, and its field path."""

    name: str
    entry: BaseModel
    inputs: tuple[str, ...]
    path: str


@dataclass(frozen=True)
class ModelLayout:
    """Either model form as one graph: the nodes, the graph inputs and the output, with field paths."""

    nodes: list[NodeSpec]
    inputs: list[str]
    output: str
    output_path: str
    inputs_path: str

    def __repr__(self) -> str:
        return f"ModelLayout(inputs={self.inputs}, nodes={[n.name for n in self.nodes]}, output={self.output!r})"


def model_layout(model_config: Any) -> ModelLayout:
    """The nodes, inputs and output of a validated ``model`` section.

    Sequential nodes are named by type and position (``affine1``) unless named;
    a node without ``inputs`` reads the node before it (the first reads the
    first graph input); the output defaults to the last node.
    """
    if isinstance(model_config, list):
        entries, inputs, output, base = model_config, ["x"], None, "model"
    else:
        entries, inputs, output = model_config.nodes, list(model_config.inputs), model_config.output
        base = "model.nodes"
    names = sequential_names([entry.type for entry in entries], explicit=[entry.name for entry in entries])
    specs = []
    previous = inputs[0]
    for index, (name, entry) in enumerate(zip(names, entries)):
        reads = tuple(entry.inputs) if entry.inputs else (previous,)
        specs.append(NodeSpec(name, entry, reads, f"{base}[{index}]"))
        previous = name
    return ModelLayout(specs, inputs, output or names[-1],
                       output_path="model.output" if output else f"{base}[{len(specs) - 1}]",
                       inputs_path="model.inputs")


def layout_problems(layout: ModelLayout) -> list[tuple[str, str]]:
    """What is wrong with the graph as ``(field path, message)``: names, inputs, output, cycles, dead nodes."""
    return _name_problems(layout) or _reference_problems(layout) or _cycle_problems(layout) or _reach_problems(layout)


def _name_problems(layout: ModelLayout) -> list[tuple[str, str]]:
    problems = []
    seen_inputs: set[str] = set()
    for name in layout.inputs:
        if name in seen_inputs:
            problems.append((layout.inputs_path, f"graph input {name!r} is listed twice"))
        seen_inputs.add(name)
    first_path: dict[str, str] = {}
    for spec in layout.nodes:
        if spec.name in seen_inputs:
            problems.append((f"{spec.path}.name", f"node name {spec.name!r} is also a graph input; "
                                                  "give the node another name"))
        elif spec.name in first_path:
            problems.append((f"{spec.path}.name", f"duplicate node name {spec.name!r} "
                                                  f"(also at {first_path[spec.name]}); every node needs its own name"))
        first_path.setdefault(spec.name, spec.path)
    return problems


def _reference_problems(layout: ModelLayout) -> list[tuple[str, str]]:
    names = [spec.name for spec in layout.nodes]
    problems = []
    for spec in layout.nodes:
        available = [name for name in dict.fromkeys([*layout.inputs, *names]) if name != spec.name]
        for name in spec.inputs:
            if name == spec.name:
                problems.append((f"{spec.path}.inputs", f"node {spec.name!r} reads its own output; "
                                                        "a node cannot depend on its own output"))
            elif name not in available:
                problems.append((f"{spec.path}.inputs",
                                 f"node {spec.name!r}: " + unknown_name_message("input", name, available)))
    if layout.output in layout.inputs:
        problems.append((layout.output_path, f"the output {layout.output!r} is a graph input; "
                                             f"name one of the nodes: {', '.join(names)}"))
    elif layout.output not in names:
        problems.append((layout.output_path, unknown_name_message("graph output", layout.output, names)))
    return problems


def _cycle_problems(layout: ModelLayout) -> list[tuple[str, str]]:
    predecessors = {spec.name: [n for n in spec.inputs if n not in layout.inputs] for spec in layout.nodes}
    try:
        graphlib.TopologicalSorter(predecessors).prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        first = next(spec for spec in layout.nodes if spec.name in cycle)
        start = cycle.index(first.name)
        ordered = cycle[start:-1] + cycle[:start] + [first.name]
        return [(f"{first.path}.inputs", f"node {first.name!r} is in a cycle: {' -> '.join(ordered)}; "
                                         "a node cannot depend on its own output")]
    return []


def _reach_problems(layout: ModelLayout) -> list[tuple[str, str]]:
    by_name = {spec.name: spec for spec in layout.nodes}
    reached: set[str] = set()
    waiting = [layout.output]
    while waiting:
        name = waiting.pop()
        if name not in reached:
            reached.add(name)
            waiting.extend(by_name[name].inputs if name in by_name else ())
    problems = [(spec.path, f"node {spec.name!r} does not lead to the output {layout.output!r}; "
                            f"feed it into a node on the way to {layout.output!r} or remove it")
                for spec in layout.nodes if spec.name not in reached]
    unused = [name for name in layout.inputs if name not in reached]
    if unused:
        problems.append((layout.inputs_path, f"graph input(s) {', '.join(map(repr, unused))} are not read "
                                             f"by any node on the way to the output {layout.output!r}"))
    return problems

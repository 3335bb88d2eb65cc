"""Plain YAML scalars as YAML 1.2 reads them, for nnframe's config loader and for the YAML nnframe writes.

PyYAML follows YAML 1.1, where ``017`` is the octal 15, ``1:30`` the base-60
90 and ``yes`` a boolean. nnframe reads configs and overrides the YAML 1.2
way (:mod:`nnframe.bounded_yaml`), so the YAML it writes (a run's
``config.yaml``, the overrides it prints) must quote every string that either
reading would take for something else: ``"09"`` stays a string both ways.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from nnframe.errors import short_repr

BOOL = "tag:yaml.org,2002:bool"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
YAML12_RESOLVERS = (
    (BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
    (INT, re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+)$"), list("-+0123456789")),
    (FLOAT, re.compile(r"^(?:[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
                       r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+.0123456789")),
)


def use_yaml12_scalars(loader: type[yaml.SafeLoader]) -> None:
    """Make ``loader`` (a SafeLoader subclass) resolve booleans, integers and floats as YAML 1.2 does."""
    loader.yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag not in (BOOL, INT, FLOAT)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for tag, pattern, first in YAML12_RESOLVERS:
        loader.add_implicit_resolver(tag, pattern, first)
    loader.add_constructor(INT, _yaml12_int)


def _yaml12_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """An integer in YAML 1.2's forms: decimal (leading zeros allowed), ``0o`` octal, ``0x`` hexadecimal."""
    text = str(loader.construct_scalar(node)).replace("_", "")
    digits = text.lstrip("+-")
    base = {"0o": 8, "0x": 16}.get(digits[:2], 10)
    try:
        value = int(digits[2:] if base != 10 else digits, base)
    except ValueError:  # a digit of the wrong base, or more digits than Python converts (4300)
        problem = (f"an integer of {len(digits)} digits is larger than any setting takes" if digits.isdigit()
                   else f"{short_repr(text)} is not an integer")
        raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None
    return -value if text.startswith("-") else value


class _QuotingDumper(yaml.SafeDumper):
    """SafeDumper that also quotes the strings YAML 1.2 would read as another type."""


for _tag, _pattern, _first in YAML12_RESOLVERS:
    _QuotingDumper.add_implicit_resolver(_tag, _pattern, _first)


def dump_yaml(data: Any, **options: Any) -> str:
    """``yaml.safe_dump`` whose text reads back the same under YAML 1.1 and under nnframe's YAML 1.2."""
    return yaml.dump(data, Dumper=_QuotingDumper, **options)

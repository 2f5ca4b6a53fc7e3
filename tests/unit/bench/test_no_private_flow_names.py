"""The benchmarks use the flows' public names only (issue 22).

import-linter sees modules, not names: `from flows.stops import _encode` or
`flows.stops._encode = ...` passes its contracts. This test reads bench/*.py with `ast` and
fails on any private name (leading underscore) of a flows module, imported or used as an
attribute, naming the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench"


def _dotted(node: ast.expr) -> str | None:
    """`a.b.c` of an attribute chain of names, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_flow_names(source: str, filename: str) -> list[str]:
    """Each use of a private name of a flows module in `source`, as 'file:line: name'."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "flows":
            found += [f"{filename}:{node.lineno}: from {node.module} import {a.name}"
                      for a in node.names if _is_private(a.name)]  # fmt: skip
        elif isinstance(node, ast.Import):
            found += [f"{filename}:{node.lineno}: import {a.name}" for a in node.names
                      if a.name.split(".")[0] == "flows"
                      and any(map(_is_private, a.name.split(".")))]  # fmt: skip
        elif isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = _dotted(node.value)
            if owner is not None and owner.split(".")[0] == "flows":
                found.append(f"{filename}:{node.lineno}: {owner}.{node.attr}")
    return found


def test_the_guard_finds_each_shape_of_private_use() -> None:
    source = (
        "import flows.stops\n"
        "from flows.stops import _encode, attach\n"
        "import flows._private\n"
        "x = flows.stops._encode\n"
        "flows.audit._shard = None\n"
        "y = flows.stops.encode_child_order\n"
    )
    assert private_flow_names(source, "b.py") == [
        "b.py:2: from flows.stops import _encode",
        "b.py:3: import flows._private",
        "b.py:4: flows.stops._encode",
        "b.py:5: flows.audit._shard",
    ]


def test_the_benchmarks_use_no_private_name_of_the_flows() -> None:
    found = []
    for path in sorted(BENCH.glob("*.py")):
        found += private_flow_names(path.read_text(), str(path.relative_to(BENCH.parent)))
    assert not found, "bench uses private names of the flows:\n" + "\n".join(found)

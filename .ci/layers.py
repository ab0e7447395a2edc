"""Fail on an import that points up the layering: ``python3 .ci/layers.py``.

docs/architecture.md draws rxdb's layers; this is the same table as code. A module may import
its own layer and those below, never one above: a room that needs something from above takes
it as a parameter or a Protocol (``rxdb.api``, ``rxdb.bus``, ``rxdb.engines.seam``). Every
import statement counts, deferred and ``TYPE_CHECKING`` ones included; ``from a import b``
points at ``a.b`` when that is a module. A new module directly under ``rxdb/`` counts as the
top layer (nothing below may import it) until it is placed lower here on purpose.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# Bottom up. The longest matching prefix decides a module's layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("parser",),
    (
        "rxdb._types",
        "rxdb.errors",
        "rxdb.rows",
        "rxdb.updates",
        "rxdb.arguments",
        "rxdb.shutdown",
        "rxdb.watch.states",  # plain data the contract (rxdb.api) names
    ),
    ("rxdb.streams",),
    ("rxdb.api", "rxdb.bus"),
    ("rxdb.engines",),
    ("rxdb.watch",),
    ("rxdb.boundary",),
    ("rxdb.remote.wire", "rxdb.remote.hub", "rxdb.remote.runtime"),
    ("rxdb.options", "rxdb.database"),
    ("rxdb.remote",),
    ("rxdb.asgi", "rxdb.cli", "rxdb.demo", "rxdb.__main__", "rxdb"),
)


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (length of the prefix, layer)
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), level)
    return None if best is None else best[1]


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.AST, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [
            f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
            for alias in node.names
        ]
    return []


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    files = {
        module_name(root, path): path
        for package in ("rxdb", "parser")
        for path in sorted((root / package).rglob("*.py"))
    }
    known = set(files)
    problems = []
    for module, path in files.items():
        here = layer_of(module)
        if here is None:
            problems.append(f"{path}: {module} is in no layer (add it to .ci/layers.py)")
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for target in imported(node, known):
                there = layer_of(target)
                if there is not None and there > here:
                    line = getattr(node, "lineno", 0)
                    problems.append(
                        f"{path}:{line}: {module} (layer {here}) imports {target} (layer {there})"
                    )
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"every import points down the layers ({len(files)} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

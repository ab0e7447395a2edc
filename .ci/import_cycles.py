"""Fail on an import circle inside a package: ``python3 .ci/import_cycles.py rxdb``.

Every import statement counts, wherever it stands: at module level, under ``if TYPE_CHECKING:``,
inside a function. A deferred import keeps the interpreter from tripping over a circle, but the
two modules still need each other, so the layering is only hidden, not kept. An edge points at
the module named by the import (``from a import b`` points at ``a.b`` when that is a module, else
at ``a``); the parent packages Python also runs on the way are not counted, or every module
would sit in a circle with the package ``__init__`` that re-exports it. Imports by string
(``importlib.import_module``) are not seen.

Prints each strongly connected component of more than one module with one shortest circle
through it (file and line of each import), and exits 1 if there is any.
"""

from __future__ import annotations

import ast
import itertools
import sys
from collections import deque
from pathlib import Path

Edges = dict[str, dict[str, int]]  # module -> imported module -> line of the first such import


def find_modules(package_dir: Path) -> dict[str, Path]:
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """The modules of the package that ``module`` imports, each with the line of its first
    import."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            targets = []
            source = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                source = f"{base}.{source}" if source else base
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.append(submodule if submodule in modules else source)
        else:
            continue
        for target in targets:
            if target in modules and target != module:
                found.setdefault(target, node.lineno)
    return found


def strongly_connected(edges: Edges) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a deep package must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(edges[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return [c for c in components if len(c) > 1]


def shortest_circle(start: str, members: set[str], edges: Edges) -> list[str]:
    """Breadth-first from ``start`` back to itself, inside one component."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(edges[node]):
            if succ not in members or succ in came_from:
                continue
            came_from[succ] = node
            if succ == start:
                path = [start]
                while path[-1] != start or len(path) == 1:
                    path.append(came_from[path[-1]])
                return path[::-1]
            queue.append(succ)
    raise AssertionError(f"{start} is in a component but on no circle")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python3 .ci/import_cycles.py PACKAGE_DIR", file=sys.stderr)
        return 2
    package_dir = Path(argv[1]).resolve()
    modules = find_modules(package_dir)
    edges = {name: imports_of(name, path, modules) for name, path in modules.items()}
    components = strongly_connected(edges)
    for component in components:
        print(f"import circle of {len(component)} modules: {', '.join(component)}")
        circle = shortest_circle(component[0], set(component), edges)
        for here, there in itertools.pairwise(circle):
            line = edges[here][there]
            print(f"  {modules[here].relative_to(package_dir.parent)}:{line}  {here} -> {there}")
    count = sum(len(targets) for targets in edges.values())
    if components:
        print(f"{len(components)} import circle(s) in {package_dir.name}/")
        return 1
    print(f"no import circle in {package_dir.name}/ ({len(modules)} modules, {count} imports)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

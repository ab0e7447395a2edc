"""The public surface: every module says what it exports, every exported name exists, is
documented and says it is rxdb's, and ``import rxdb`` stays light."""

from __future__ import annotations

import ast
import importlib
import threading
from pathlib import Path
from typing import Any

import pytest

import parser
import rxdb
from tests.rxdb.fresh_process import json_of_fresh_python

# Modules that define public names but have no __all__ yet; each fails the day it gets one
# (xfail_strict), so take it off this list then.
WITHOUT_ALL: dict[str, str] = {}


def module_names() -> list[str]:
    """Every module of rxdb and parser, found from the files on disk: pkgutil.walk_packages
    skips a directory without ``__init__.py`` (a namespace package such as rxdb/watch/) and
    every module below it. ``__main__`` modules are scripts (importing one runs it)."""
    names = []
    for package in (rxdb, parser):
        root = Path(str(package.__file__)).parent
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root.parent).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join(parts))
    return names


MODULES = module_names()


def exports_nothing(module_name: str) -> bool:
    """A package whose ``__init__.py`` holds only its docstring has nothing to export."""
    module = importlib.import_module(module_name)
    if not str(module.__file__).endswith("__init__.py"):
        return False
    body = ast.parse(Path(str(module.__file__)).read_text(encoding="utf-8")).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def test_the_walk_finds_the_namespace_rooms() -> None:
    assert "rxdb.watch.stream" in MODULES
    assert "parser.analysis" in MODULES


def test_every_room_is_a_regular_package() -> None:
    """setuptools' ``packages.find`` (pyproject) leaves a folder without ``__init__.py`` out
    of a built wheel: an editable install would work and a real one would not import."""
    for package in (rxdb, parser):
        root = Path(str(package.__file__)).parent
        for folder in {path.parent for path in root.rglob("*.py")}:
            assert (folder / "__init__.py").exists(), f"{folder} has no __init__.py"


@pytest.mark.parametrize(
    "module_name",
    [
        pytest.param(name, marks=pytest.mark.xfail(reason=WITHOUT_ALL[name], strict=True))
        if name in WITHOUT_ALL
        else name
        for name in MODULES
    ],
)
def test_module_declares_all(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert hasattr(module, "__all__") or exports_nothing(module_name), (
        f"{module_name} has no __all__"
    )


@pytest.mark.parametrize("module_name", MODULES)
def test_all_is_a_tuple_of_unique_defined_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", ())
    assert isinstance(exported, tuple), f"{module_name}.__all__ is a {type(exported).__name__}"
    duplicates = sorted({name for name in exported if exported.count(name) > 1})
    assert duplicates == [], f"{module_name}.__all__ repeats {duplicates}"
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == [], f"{module_name}.__all__ names what it does not define: {missing}"


def test_every_lazy_name_is_public_and_resolves_through_the_loader() -> None:
    lazy: dict[str, str] = rxdb._LAZY
    assert set(lazy) <= set(rxdb.__all__)
    for name, module_name in lazy.items():
        # rxdb.__getattr__ directly: the name may already be cached in rxdb's globals.
        assert rxdb.__getattr__(name) is getattr(importlib.import_module(module_name), name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rxdb.__getattr__("nope")
    assert set(rxdb.__all__) <= set(dir(rxdb))


# Run by a fresh interpreter: what `import rxdb` alone loads, and which names it binds.
FRESH_IMPORT = """
import json, sys
import rxdb
print(json.dumps({"modules": sorted(sys.modules), "bound": sorted(vars(rxdb))}))
"""


def fresh_import_of_rxdb() -> dict[str, list[str]]:
    result: dict[str, list[str]] = json_of_fresh_python(FRESH_IMPORT)
    return result


def test_import_rxdb_loads_neither_remote_nor_msgpack_nor_aiosqlite() -> None:
    loaded = fresh_import_of_rxdb()["modules"]
    heavy = [
        name
        for name in loaded
        if name.partition(".")[0] in {"msgpack", "aiosqlite"}
        or name == "rxdb.remote"
        or name.startswith("rxdb.remote.")
    ]
    assert heavy == []


# What opening a database and reading from it loads, in a fresh interpreter.
FRESH_OPEN = """
import asyncio, json, sys
import rxdb
async def main():
    async with rxdb.open(":memory:") as db:
        await db.fetch_all("SELECT 1")
asyncio.run(main())
print(json.dumps({"modules": sorted(sys.modules)}))
"""


WATCH_MACHINERY = {
    "rxdb.api",
    "rxdb.engines.postgres.dsn",
    "rxdb.engines.sqlite.backup",
    "rxdb.engines.sqlite.maintenance",
    "rxdb.engines.sqlite.read_sets",
    "rxdb.streams.diffs",
    "rxdb.streams.stream",
    "rxdb.watch.registry",
    "rxdb.watch.stream",
    "parser.catalog",
    "parser.dependencies",
    "parser.maintainable",
}
"""Loaded by the first watch (maintained, for the last ones), the first backup, a PostgreSQL
URL or a type checker: a program that opens a database and queries it pays for none of them
(issue #14's import rows)."""


def test_opening_and_reading_loads_no_watch_machinery() -> None:
    result: dict[str, list[str]] = json_of_fresh_python(FRESH_OPEN)
    assert WATCH_MACHINERY & set(result["modules"]) == set()


# The same program with a watch: what opening left out loads on first use, and works.
FRESH_WATCH = """
import asyncio, json, sys
import rxdb
async def main():
    async with rxdb.open(":memory:") as db:
        await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        async for rows in db.watch("SELECT v FROM t ORDER BY id"):
            if rows:
                return [row["v"] for row in rows]
            await db.execute("INSERT INTO t (v) VALUES ('a')")
seen = asyncio.run(main())
print(json.dumps({"modules": sorted(sys.modules), "seen": seen}))
"""


def test_the_first_watch_loads_its_machinery_and_sees_the_commit() -> None:
    result: dict[str, list[str]] = json_of_fresh_python(FRESH_WATCH)
    assert result["seen"] == ["a"]
    assert {"rxdb.watch.registry", "rxdb.streams.stream", "parser.catalog"} <= set(
        result["modules"]
    )


def test_threads_making_the_first_watch_at_once_share_one_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The blocking façade watches from its caller's thread, so the registry the first watch
    # makes may be made by two threads at once: both must use the one the database keeps
    # (and completes on close), never one of their own.
    from rxdb.watch import registry

    made = registry.WatchRegistry
    both_inside = threading.Barrier(2, timeout=10)
    used: list[registry.WatchRegistry] = []

    def making(*args: Any, **kwargs: Any) -> registry.WatchRegistry:
        both_inside.wait()  # each thread has started making one before either stores it
        return made(*args, **kwargs)

    def watch(self: registry.WatchRegistry, *args: Any, **kwargs: Any) -> Any:
        used.append(self)
        return real_watch(self, *args, **kwargs)

    real_watch = made.watch
    monkeypatch.setattr(registry, "WatchRegistry", making)
    monkeypatch.setattr(made, "watch", watch)
    with rxdb.open_sync(":memory:") as db:
        threads = [threading.Thread(target=db.watch, args=("SELECT 1",)) for _ in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(used) == 2
        kept = db._database._watches  # type: ignore[attr-defined]
        assert used == [kept, kept]


def test_every_public_name_is_bound_at_import_or_lazy() -> None:
    bound = set(fresh_import_of_rxdb()["bound"])
    unreachable = [name for name in rxdb.__all__ if name not in bound and name not in rxdb._LAZY]
    assert unreachable == []


def test_facade_objects_report_rxdb_as_their_module() -> None:
    for name in rxdb.__all__:
        obj = getattr(rxdb, name)
        if isinstance(obj, type):
            assert obj.__module__ == "rxdb", name


def test_every_public_class_and_function_has_a_docstring() -> None:
    for module in (rxdb, parser):
        for name in module.__all__:
            assert getattr(module, name).__doc__, f"{module.__name__}.{name} has no docstring"


def test_errors_subclass_what_callers_already_catch() -> None:
    assert issubclass(rxdb.ClosedError, RuntimeError)
    assert issubclass(rxdb.WrongLoopError, RuntimeError)
    assert issubclass(rxdb.IntegrityError, rxdb.DatabaseError)
    assert issubclass(rxdb.DatabaseError, rxdb.RxdbError)
    assert issubclass(parser.Unanalyzable, ValueError)

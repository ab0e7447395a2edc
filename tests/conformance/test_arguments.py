"""Wrong arguments at the public entry points raise an rxdb error that names the argument,
on every shape -- never a raw TypeError, OverflowError, AttributeError or
UnicodeEncodeError, and never a value Python merely finds true (``distinct='no'``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb.api import AsyncDatabase

LONE = "\ud800"  # a lone surrogate: a str Python holds, that no UTF-8 text can

# Typed Any: the calls are wrong on purpose, which the type checker would refuse.
Call = Callable[[Any, Path], Any]

CALLS: list[tuple[str, Call, str]] = [
    ("sql None", lambda db, _: db.execute(None), "SQL must be a str"),
    ("sql int", lambda db, _: db.fetch_all(3), "SQL must be a str"),
    ("sql bytes", lambda db, _: db.fetch_one(b"SELECT 1"), "SQL must be a str"),
    ("script None", lambda db, _: db.execute_script(None), "SQL must be a str"),
    ("lone surrogate in SQL", lambda db, _: db.execute(f"SELECT '{LONE}'"), "(?i)utf-8"),
    ("lone surrogate in a parameter", lambda db, _: db.fetch_all("SELECT ?", (LONE,)), "(?i)utf-8"),
    (
        "lone surrogate in a script",
        lambda db, _: db.execute_script(f"SELECT '{LONE}'"),
        "(?i)utf-8",
    ),
    ("parameters an int", lambda db, _: db.fetch_all("SELECT ?", 3), "parameters"),
    ("parameter sets None", lambda db, _: db.execute_many("SELECT ?", None), "parameter sets"),
    (
        "pages_per_step 2**40",
        lambda db, tmp: db.backup(tmp / "copy.db", pages_per_step=2**40),
        "pages_per_step",
    ),
    ("backup to bytes", lambda db, tmp: db.backup(bytes(tmp / "copy.db")), "bytes|path"),
    ("progress 3", lambda db, tmp: db.backup(tmp / "copy.db", progress=3), "progress"),
    ("transaction mode", lambda db, _: db.transaction("x").__aenter__(), "mode"),
    ("notify_updates 3", lambda db, _: db.notify_updates(3), "table name"),
]

SYNCHRONOUS: list[tuple[str, Callable[[Any], object], str]] = [
    ("distinct 'no'", lambda db: db.watch("SELECT 1", distinct="no"), "distinct"),
    ("recover 1", lambda db: db.watch("SELECT 1", recover=1), "recover"),
    ("group distinct 'no'", lambda db: db.watch_many({"a": "SELECT 1"}, distinct="no"), "distinct"),
    ("group recover 1", lambda db: db.watch_many({"a": "SELECT 1"}, recover=1), "recover"),
    ("group of no queries", lambda db: db.watch_many({}), "queries"),
    ("watch None", lambda db: db.watch(None), "SQL must be a str"),
    ("table_updates 3", lambda db: db.table_updates(3), "table names"),
    ("kinds 3", lambda db: db.table_updates(None, 3), "kinds"),
    ("kinds of str", lambda db: db.table_updates(None, ["insert"]), "UpdateKind"),
]


@pytest.mark.parametrize(
    ("call", "names"), [(c, n) for _, c, n in CALLS], ids=[i for i, _, _ in CALLS]
)
async def test_a_wrong_argument_raises_an_rxdb_error_naming_it(
    db: AsyncDatabase, tmp_path: Path, call: Call, names: str
) -> None:
    with pytest.raises(rxdb.ProgrammingError, match=names):
        await call(db, tmp_path)
    assert await db.fetch_all("SELECT 1") == [(1,)]  # and the database goes on


@pytest.mark.parametrize(
    ("call", "names"), [(c, n) for _, c, n in SYNCHRONOUS], ids=[i for i, _, _ in SYNCHRONOUS]
)
async def test_a_wrong_argument_to_an_observation_raises_at_once(
    db: AsyncDatabase, call: Callable[[Any], object], names: str
) -> None:
    with pytest.raises(rxdb.ProgrammingError, match=names):
        call(db)

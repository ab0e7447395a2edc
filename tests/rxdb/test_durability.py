"""The writer's ``PRAGMA synchronous``: NORMAL by default for a file in WAL mode, SQLite's FULL
for every other journal mode, and whatever the caller asks for when asked.

Read back on the writer itself (inside a transaction, where reads run on the writer): the
readers keep SQLite's default, which does not matter since they never write.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import rxdb
from rxdb.engines.sqlite.engine import Synchronous

LEVELS = {"off": 0, "normal": 1, "full": 2, "extra": 3}


async def writer_synchronous(db: rxdb.Database) -> int:
    async with db.transaction():
        rows = await db.fetch_all("PRAGMA synchronous")
    return int(rows[0][0])


async def test_a_wal_file_defaults_to_normal(db_path: Path) -> None:
    async with rxdb.open(db_path) as db:
        assert (await db.fetch_all("PRAGMA journal_mode"))[0][0] == "wal"
        assert await writer_synchronous(db) == LEVELS["normal"]


@pytest.mark.parametrize("level", sorted(LEVELS))
async def test_an_explicit_level_is_kept(db_path: Path, level: Synchronous) -> None:
    async with rxdb.open(db_path, synchronous=level) as db:
        assert await writer_synchronous(db) == LEVELS[level]


async def test_a_file_not_in_wal_mode_keeps_sqlites_full(tmp_path: Path) -> None:
    # A read-only database keeps the journal mode the file has: here a rollback journal,
    # where NORMAL could corrupt the file on a power loss.
    path = tmp_path / "rollback.db"
    connection = sqlite3.connect(path)
    try:
        connection.execute("CREATE TABLE t(x)")
        connection.commit()
    finally:
        connection.close()
    async with rxdb.open(path, read_only=True) as db:
        assert (await db.fetch_all("PRAGMA journal_mode"))[0][0] == "delete"
        assert (await db.fetch_all("PRAGMA synchronous"))[0][0] == LEVELS["full"]


async def test_memory_keeps_sqlites_default() -> None:
    async with rxdb.open(":memory:") as db:
        assert await writer_synchronous(db) == LEVELS["full"]

"""The trigger journal: a foreign commit re-runs only the watches of the tables it wrote."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb.engines.sqlite.journal import JOURNAL_TABLE, trigger_sql
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind
from tests.conftest import WAIT, Recorder, sqlite_engine, subscribed

INSERT, UPDATE, DELETE = UpdateKind.INSERT, UpdateKind.UPDATE, UpdateKind.DELETE


def foreign(path: Path, *statements: str) -> None:
    """Another program: its own connection, one transaction."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for statement in statements:
            conn.execute(statement)
        conn.execute("COMMIT")
    finally:
        conn.close()


class Foreign(Recorder[NotifyTablesUpdated]):
    """What the poller announced for foreign commits."""

    async def next(self) -> NotifyTablesUpdated:
        count = len(self.values) + 1
        values = await self.wait_count(count)
        return values[count - 1]


def foreign_messages(db: rxdb.Database, recorder: Foreign) -> Any:
    stream = db.table_updates()

    class Only:
        def on_next(self, message: NotifyTablesUpdated) -> None:
            if message.origin == f"{db.origin}/foreign":
                recorder.on_next(message)

        def on_error(self, error: Exception) -> None:
            recorder.on_error(error)

        def on_completed(self) -> None:
            recorder.on_completed()

    return subscribed(stream, Only())


@pytest.fixture
async def tracked(db_path: Path) -> AsyncIterator[rxdb.Database]:
    async with rxdb.open(db_path, foreign_poll=0.002) as db:
        await db.execute_script(
            "CREATE TABLE a(id INTEGER PRIMARY KEY, x); CREATE TABLE b(id INTEGER PRIMARY KEY, x);"
        )
        await db.track_foreign_writes()
        yield db


def triggers(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' ORDER BY name"
        ).fetchall()
    finally:
        conn.close()
    return dict(rows)


async def reconciled(db: rxdb.Database) -> None:
    """Wait for the trigger update that a schema change started (if one did)."""
    await asyncio.sleep(0)  # the bus delivers our own commit's message first
    journal = sqlite_engine(db).journal
    assert journal is not None
    task = journal._reconciling
    if task is not None:
        await asyncio.wait_for(asyncio.shield(task), WAIT)


async def test_install_creates_the_journal_and_one_trigger_per_table_and_kind(
    tracked: rxdb.Database, db_path: Path
) -> None:
    expected = dict(trigger_sql(t, k) for t in ("a", "b") for k in UpdateKind)
    assert triggers(db_path) == expected
    await tracked.track_foreign_writes()  # idempotent
    assert triggers(db_path) == expected


async def test_a_foreign_commit_announces_exactly_what_it_wrote(
    tracked: rxdb.Database, db_path: Path
) -> None:
    seen = Foreign()
    with foreign_messages(tracked, seen):
        await asyncio.to_thread(foreign, db_path, "INSERT INTO a(x) VALUES (1)")
        message = await seen.next()
        assert not message.everything
        assert message.updates == {TableUpdate("a", INSERT)}
        await asyncio.to_thread(
            foreign, db_path, "UPDATE a SET x = 2", "DELETE FROM a", "INSERT INTO b(x) VALUES (1)"
        )
        message = await seen.next()
        assert message.updates == {
            TableUpdate("a", UPDATE),
            TableUpdate("a", DELETE),
            TableUpdate("b", INSERT),
        }


async def test_only_watches_of_written_tables_rerun(tracked: rxdb.Database, db_path: Path) -> None:
    runs = {"a": 0, "b": 0}
    real = sqlite_engine(tracked).fetch_all

    async def counting(sql: str, params: Any = ()) -> Any:
        for table in runs:
            if sql == f"SELECT count(*) FROM {table}":
                runs[table] += 1
        return await real(sql, params)

    sqlite_engine(tracked).fetch_all = counting  # type: ignore[method-assign]
    rec_a: Recorder[Any] = Recorder()
    rec_b: Recorder[Any] = Recorder()
    with (
        subscribed(tracked.watch("SELECT count(*) FROM a"), rec_a),
        subscribed(tracked.watch("SELECT count(*) FROM b"), rec_b),
    ):
        await rec_a.wait_value([(0,)])
        await rec_b.wait_value([(0,)])
        before = dict(runs)
        for n in range(1, 4):
            await asyncio.to_thread(foreign, db_path, "INSERT INTO a(x) VALUES (1)")
            await rec_a.wait_value([(n,)])
        assert runs["b"] == before["b"]
        await asyncio.to_thread(foreign, db_path, "INSERT INTO b(x) VALUES (1)")
        await rec_b.wait_value([(1,)])


async def test_own_writes_do_not_announce_the_journal(tracked: rxdb.Database) -> None:
    rec: Recorder[NotifyTablesUpdated] = Recorder()
    with subscribed(tracked.table_updates(), rec):
        await tracked.execute("INSERT INTO a(x) VALUES (1)")
        (message,) = await rec.wait_count(1)
        assert message.updates == {TableUpdate("a", INSERT)}
    assert await tracked.fetch_all(f"SELECT tbl, kind, seq FROM {JOURNAL_TABLE}") == [
        ("a", "insert", 1)
    ]


async def test_a_foreign_new_table_gets_its_triggers_and_is_never_missed(
    tracked: rxdb.Database, db_path: Path
) -> None:
    seen = Foreign()
    rec: Recorder[Any] = Recorder()
    with foreign_messages(tracked, seen):
        # Created and written in one foreign commit, before any trigger can exist.
        await asyncio.to_thread(
            foreign,
            db_path,
            "CREATE TABLE c(id INTEGER PRIMARY KEY, x)",
            "INSERT INTO c(x) VALUES (1)",
        )
        assert (await seen.next()).everything
        await reconciled(tracked)
        assert "rxdb_journal_insert_c" in triggers(db_path)
        with subscribed(tracked.watch("SELECT count(*) FROM c"), rec):
            await rec.wait_value([(1,)])
            await asyncio.to_thread(foreign, db_path, "INSERT INTO c(x) VALUES (2)")
            await rec.wait_value([(2,)])
        message = seen.values[-1]
        assert message.updates == {TableUpdate("c", INSERT)}


async def test_a_renamed_table_gets_new_triggers(tracked: rxdb.Database, db_path: Path) -> None:
    rec: Recorder[Any] = Recorder()
    renamed = Foreign()
    with foreign_messages(tracked, renamed):
        await asyncio.to_thread(foreign, db_path, "ALTER TABLE a RENAME TO a2")
        await renamed.next()
    await reconciled(tracked)
    names = triggers(db_path)
    assert not any(name.endswith("_a") for name in names)
    assert names["rxdb_journal_insert_a2"] == trigger_sql("a2", INSERT)[1]
    seen = Foreign()
    with foreign_messages(tracked, seen), subscribed(tracked.watch("SELECT count(*) FROM a2"), rec):
        await rec.wait_value([(0,)])
        await asyncio.to_thread(foreign, db_path, "INSERT INTO a2(x) VALUES (1)")
        await rec.wait_value([(1,)])
        assert seen.values[-1].updates == {TableUpdate("a2", INSERT)}


async def test_own_new_table_gets_its_triggers(tracked: rxdb.Database, db_path: Path) -> None:
    await tracked.execute("CREATE TABLE d(x)")
    await reconciled(tracked)
    assert "rxdb_journal_delete_d" in triggers(db_path)


async def test_untracking_removes_everything_and_falls_back_to_resync(
    tracked: rxdb.Database, db_path: Path
) -> None:
    await tracked.untrack_foreign_writes()
    assert triggers(db_path) == {}
    assert (
        await tracked.fetch_all("SELECT name FROM sqlite_schema WHERE name = ?", (JOURNAL_TABLE,))
        == []
    )
    seen = Foreign()
    with foreign_messages(tracked, seen):
        await asyncio.to_thread(foreign, db_path, "INSERT INTO a(x) VALUES (1)")
        assert (await seen.next()).everything


async def test_another_database_on_the_file_uses_the_journal_by_itself(
    tracked: rxdb.Database, db_path: Path
) -> None:
    async with rxdb.open(db_path, foreign_poll=0.002) as other:
        seen = Foreign()
        with foreign_messages(other, seen):
            # The first foreign commit it sees establishes its baseline: everything.
            await asyncio.to_thread(foreign, db_path, "INSERT INTO a(x) VALUES (1)")
            assert (await seen.next()).everything
            await asyncio.to_thread(foreign, db_path, "INSERT INTO b(x) VALUES (1)")
            assert (await seen.next()).updates == {TableUpdate("b", INSERT)}


async def test_journal_can_be_ignored(tracked: rxdb.Database, db_path: Path) -> None:
    async with rxdb.open(db_path, foreign_poll=0.002, track_foreign_writes=False) as other:
        seen = Foreign()
        with foreign_messages(other, seen):
            for _ in range(2):
                await asyncio.to_thread(foreign, db_path, "INSERT INTO a(x) VALUES (1)")
                assert (await seen.next()).everything


async def test_open_option_installs(db_path: Path) -> None:
    foreign(db_path, "CREATE TABLE t(x)")
    async with rxdb.open(db_path, track_foreign_writes=True):
        assert set(triggers(db_path)) == {f"rxdb_journal_{k.value}_t" for k in UpdateKind}


async def test_tracking_needs_a_file_and_polling(db_path: Path) -> None:
    async with rxdb.open(":memory:") as memory:
        with pytest.raises(rxdb.ProgrammingError, match="foreign_poll"):
            await memory.track_foreign_writes()
    async with rxdb.open(db_path, foreign_poll=None) as unpolled:
        with pytest.raises(rxdb.ProgrammingError, match="foreign_poll"):
            await unpolled.track_foreign_writes()


async def test_virtual_tables_are_announced_on_every_foreign_commit(
    tracked: rxdb.Database, db_path: Path
) -> None:
    try:
        await tracked.execute("CREATE VIRTUAL TABLE docs USING fts5(body)")
    except rxdb.OperationalError:
        pytest.skip("this SQLite has no FTS5")  # pragma: no cover
    await reconciled(tracked)
    seen = Foreign()
    with foreign_messages(tracked, seen):
        # The first foreign commit after a schema change re-runs everything; the next ones
        # are told apart again.
        for attempt in range(3):
            await asyncio.to_thread(foreign, db_path, f"INSERT INTO docs VALUES ('{attempt}')")
            message = await seen.next()
            if not message.everything:
                break
        assert TableUpdate("docs") in message.updates
        assert TableUpdate("docs_data") in message.updates  # a shadow table: no triggers
    assert not any("docs" in name for name in triggers(db_path))


async def test_names_that_need_quoting(tracked: rxdb.Database, db_path: Path) -> None:
    await tracked.execute('CREATE TABLE "we""ird ta\'ble"(x)')
    await reconciled(tracked)
    assert len(triggers(db_path)) == 9
    seen = Foreign()
    with foreign_messages(tracked, seen):
        for _ in range(2):  # the first one after the schema change: everything
            await asyncio.to_thread(foreign, db_path, 'INSERT INTO "we""ird ta\'ble" VALUES (1)')
            message = await seen.next()
        assert message.updates == {TableUpdate("we\"ird ta'ble", INSERT)}


async def test_foreign_schema_churn_and_writes_never_leave_a_watch_stale(
    tracked: rxdb.Database, db_path: Path
) -> None:
    """A foreign program creates tables and writes them at once (before any trigger can
    exist), renames and drops them, while watches of those tables stay open: once the
    program is done, every watch shows what a fresh query shows. (Its transactions are
    BEGIN IMMEDIATE: a deferred one that read the schema before our trigger update committed
    could not write at all, which is SQLite's rule, not rxdb's.)"""
    names = [f"s{i}" for i in range(4)]
    recorders = {name: Recorder[Any]() for name in names}

    def churn() -> None:
        import random

        rng = random.Random(7)
        conn = sqlite3.connect(db_path, isolation_level=None, timeout=10)
        try:
            for step in range(60):
                name = rng.choice(names)
                action = rng.random()
                if action < 0.3:
                    conn.executescript(
                        f"BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS {name}(x);"
                        f"INSERT INTO {name} VALUES ({step}); COMMIT;"
                    )
                elif action < 0.4:
                    conn.executescript(
                        f"BEGIN IMMEDIATE; DROP TABLE IF EXISTS tmp; "
                        f"CREATE TABLE IF NOT EXISTS {name}(x); ALTER TABLE {name} RENAME TO tmp;"
                        f"CREATE TABLE {name}(x); INSERT INTO {name} SELECT x FROM tmp; "
                        f"INSERT INTO {name} VALUES ({step}); DROP TABLE tmp; COMMIT;"
                    )
                else:
                    conn.execute(f"CREATE TABLE IF NOT EXISTS {name}(x)")
                    conn.execute(f"INSERT INTO {name} VALUES ({step})")
        finally:
            conn.close()

    for name in names:
        await tracked.execute(f"CREATE TABLE {name}(x)")
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(
                subscribed(tracked.watch(f"SELECT count(*) FROM {name}"), recorders[name])
            )
        for name in names:
            await recorders[name].wait_value([(0,)])
        await asyncio.to_thread(churn)
        for name in names:
            truth = await tracked.fetch_all(f"SELECT count(*) FROM {name}")
            await recorders[name].wait_value(truth)


async def test_a_schema_change_between_two_looks_means_everything(
    tracked: rxdb.Database, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The case the schema-version check exists for: a table is created, written before it
    has triggers, and given its triggers by someone else, all between two looks at the
    journal. The second look sees a complete schema and no journal entry for the write; only
    the changed schema version says that something may have been missed."""
    journal, poller = sqlite_engine(tracked).journal, sqlite_engine(tracked).poller
    assert journal is not None
    assert poller is not None
    await poller.stop()  # this test takes the looks itself
    monkeypatch.setattr(journal, "reconcile_soon", lambda: None)  # "someone else" installs
    await journal.changes()  # the baseline
    assert await journal.changes() == frozenset()  # nothing happened: nothing to announce
    await asyncio.to_thread(foreign, db_path, "CREATE TABLE c(x)")
    assert await journal.changes() is None  # c has no triggers yet: everything
    await asyncio.to_thread(foreign, db_path, "INSERT INTO c VALUES (1)")  # not journaled
    await asyncio.to_thread(foreign, db_path, *(trigger_sql("c", k)[1] for k in UpdateKind))
    assert await journal.changes() is None  # complete again, but the schema moved
    assert await journal.changes() == frozenset()  # and now it is trusted again

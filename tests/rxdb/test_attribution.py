"""Telling rxdb's commits from foreign ones: the WAL-index commit counter, writers' claims,
and the poller that re-runs watches only for commits nobody claimed."""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rxdb
import rxdb.engines.sqlite.foreign as foreign_module
from rxdb.engines.sqlite.foreign import ForeignWritePoller
from rxdb.engines.sqlite.walindex import CommitStamper, WalIndex, counter_span
from rxdb.updates import NotifyTablesUpdated
from tests.conftest import WAIT, Recorder, sqlite_engine, subscribed
from tests.rxdb.test_foreign import counted_polls, foreign_insert
from tests.rxdb.test_processes import run_script

COUNT = "SELECT count(*) FROM t"

pytestmark = pytest.mark.usefixtures("foreign_detection")


@pytest.fixture
def wal_file(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A WAL database with table t, held open (so its -shm file exists)."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
    try:
        yield conn
    finally:
        conn.close()


class TestWalIndex:
    def test_counter_moves_by_one_per_commit_of_any_connection(
        self, wal_file: sqlite3.Connection, db_path: Path
    ) -> None:
        index = WalIndex(str(db_path))
        try:
            start = index.read()
            assert start is not None
            wal_file.execute("INSERT INTO t(x) VALUES (1)")
            foreign_insert(db_path)
            with wal_file:
                wal_file.execute("BEGIN")
                wal_file.execute("INSERT INTO t(x) VALUES (2)")
                wal_file.execute("INSERT INTO t(x) VALUES (3)")
            after = index.read()
            assert after is not None
            assert counter_span(start, after) == 3
            wal_file.execute("UPDATE t SET x = 0 WHERE 0")  # wrote nothing: no commit
            assert index.read() == after
        finally:
            index.release()

    def test_no_index_for_a_rollback_journal_database(self, db_path: Path) -> None:
        conn = sqlite3.connect(db_path)
        try:
            conn.execute("CREATE TABLE t(x)")
            index = WalIndex(str(db_path))
            assert index.read() is None
            index.release()
        finally:
            conn.close()

    def test_one_descriptor_per_file_shared_by_handles(
        self, wal_file: sqlite3.Connection, db_path: Path
    ) -> None:
        first, second = WalIndex(str(db_path)), WalIndex(str(db_path))
        try:
            assert first.read() == second.read() is not None
            assert first._shared is second._shared
        finally:
            first.release()
            second.release()

    def test_counter_span_wraps_and_refuses_the_unbelievable(self) -> None:
        assert counter_span(2**32 - 1, 1) == 2
        assert counter_span(5, 5) == 0
        assert counter_span(5, 4) is None  # backwards: a replaced file, not 4 billion commits


class TestCommitStamper:
    def stamper(self, db_path: Path) -> CommitStamper:
        index = WalIndex(str(db_path))
        self.index = index
        return CommitStamper(index, lambda: True)

    def test_claims_exactly_the_value_of_its_own_commit(
        self, wal_file: sqlite3.Connection, db_path: Path
    ) -> None:
        stamper = self.stamper(db_path)
        try:
            before = self.index.read()
            assert before is not None
            stamper.begin(wal_file)
            wal_file.execute("INSERT INTO t(x) VALUES (1)")
            assert stamper.end(wal_file) == (before, (before + 1) & 0xFFFFFFFF)
        finally:
            self.index.release()

    def test_claims_nothing_if_someone_else_committed_meanwhile(
        self, wal_file: sqlite3.Connection, db_path: Path
    ) -> None:
        stamper = self.stamper(db_path)
        try:
            stamper.begin(wal_file)
            wal_file.execute("BEGIN")
            wal_file.execute("SELECT 1").fetchall()
            foreign_insert(db_path)  # another connection commits while we have not locked
            wal_file.execute("INSERT INTO t(x) VALUES (1)")
            wal_file.execute("COMMIT")
        except sqlite3.OperationalError:
            pytest.fail("a deferred transaction that only started reading can still write")
        else:
            assert stamper.end(wal_file) is None
        finally:
            self.index.release()

    def test_claims_nothing_for_a_commit_that_wrote_nothing(
        self, wal_file: sqlite3.Connection, db_path: Path
    ) -> None:
        stamper = self.stamper(db_path)
        try:
            stamper.begin(wal_file)
            wal_file.execute("DELETE FROM t WHERE 0")
            assert stamper.end(wal_file) is None
        finally:
            self.index.release()

    def test_disabled_stamper_reads_nothing(
        self, wal_file: sqlite3.Connection, db_path: Path
    ) -> None:
        index = WalIndex(str(db_path))
        try:
            stamper = CommitStamper(index, lambda: False)
            stamper.begin(wal_file)
            wal_file.execute("INSERT INTO t(x) VALUES (1)")
            assert stamper.end(wal_file) is None
        finally:
            index.release()


class FakeFile:
    """What a poller reads, under the test's control: ``commit`` moves the counter and the
    writer's ``data_version`` the way another connection's commit would."""

    def __init__(self) -> None:
        self.version = 1
        self.counter = 100
        self.polls = 0
        self.polled = asyncio.Event()

    def commit(self) -> int:
        self.counter += 1
        self.version += 1
        return self.counter

    async def read_state(self) -> tuple[int, int | None]:
        return self.version, self.read_counter()

    async def read_state_without_counter(self) -> tuple[int, None]:
        self.read_counter()
        return self.version, None

    def read_counter(self) -> int:
        self.polls += 1  # once per poll, twice when the counter moved
        self.polled.set()
        return self.counter

    def no_counter(self) -> None:
        self.read_counter()

    async def polls_later(self, count: int) -> None:
        target = self.polls + count
        while self.polls < target:
            self.polled.clear()
            await asyncio.wait_for(self.polled.wait(), WAIT)


class TestPoller:
    @pytest.fixture
    async def running(self) -> Any:
        file = FakeFile()
        foreign: list[int] = []

        async def on_foreign() -> None:
            foreign.append(file.counter)

        poller = ForeignWritePoller(file.read_state, file.read_counter, on_foreign, 0.001)
        poller.claims_expected = lambda: True  # other rxdb writers share the file
        await poller.start()
        try:
            await file.polls_later(2)
            yield file, poller, foreign
        finally:
            await poller.stop()

    async def test_claimed_commits_are_not_foreign(self, running: Any) -> None:
        file, poller, foreign = running
        for _ in range(5):
            value = file.commit()
            poller.claim(((value - 1) & 0xFFFFFFFF, value))
        await file.polls_later(3)
        assert foreign == []
        assert poller.foreign_commits == 0

    async def test_an_unclaimed_commit_is_foreign(self, running: Any) -> None:
        file, poller, foreign = running
        value = file.commit()
        poller.claim((value - 1, value))
        file.commit()  # nobody claims this one
        await file.polls_later(3)
        assert foreign == [file.counter]
        assert poller.foreign_commits == 1

    async def test_a_claim_arriving_within_the_grace_period_counts(self, running: Any) -> None:
        file, poller, foreign = running
        value = file.commit()
        await file.polls_later(2)  # the poller saw it unclaimed and waits for the claim
        poller.claim((value - 1, value))
        await file.polls_later(3)
        assert foreign == []

    async def test_a_claim_for_an_accounted_value_does_not_excuse_a_later_commit(
        self, running: Any
    ) -> None:
        file, poller, foreign = running
        file.commit()
        await file.polls_later(3)  # foreign, accounted for
        assert len(foreign) == 1
        poller.claim((file.counter - 1, file.counter))  # a late claim for it
        file.commit()
        await file.polls_later(3)
        assert len(foreign) == 2

    async def test_own_commits_between_polls_need_no_claim(self, running: Any) -> None:
        file, poller, foreign = running
        for _ in range(3):
            file.counter += 1  # the writer's own commits: data_version does not move
            await file.polls_later(2)
        assert foreign == []
        value = file.commit()  # then someone else's, claimed
        poller.claim((value - 1, value))
        await file.polls_later(3)
        assert foreign == []

    async def test_unknown_counter_makes_every_change_foreign(self) -> None:
        file = FakeFile()
        calls: list[None] = []

        async def on_foreign() -> None:
            calls.append(None)

        poller = ForeignWritePoller(
            file.read_state_without_counter, file.no_counter, on_foreign, 0.001
        )
        await poller.start()
        try:
            await file.polls_later(2)
            value = file.commit()
            poller.claim((value - 1, value))
            await file.polls_later(3)
            assert calls == [None]
        finally:
            await poller.stop()


# ---------------------------------------------------------------------------------------
# End to end


@pytest.fixture
def patient_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give a claim a second to arrive, not CLAIM_GRACE's 10 ms: under load the writer's
    thread (or process) may publish it later, and the poller then counts a foreign commit as
    designed (a re-run too many, never one too few). These tests are about whose commit is
    whose, not about how fast a claim travels."""
    monkeypatch.setattr(foreign_module, "CLAIM_GRACE", 1.0)


async def wait_quiet(db: rxdb.Database) -> None:
    """Let the poller of ``db`` look at the file a few more times."""
    enough = await counted_polls(db, 5)
    await asyncio.wait_for(enough.wait(), WAIT)


@pytest.mark.usefixtures("patient_claims")
async def test_commits_of_another_database_in_this_process_are_not_foreign(
    db_path: Path,
) -> None:
    async with (
        rxdb.open(db_path, foreign_poll=0.002) as watcher,
        rxdb.open(db_path) as writer,
    ):
        await writer.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
        await wait_quiet(watcher)  # the DDL above: claimed or not, it is behind us now
        poller = sqlite_engine(watcher).poller
        assert poller is not None
        before = poller.foreign_commits
        rec: Recorder[Any] = Recorder()
        updates: Recorder[NotifyTablesUpdated] = Recorder()
        with subscribed(watcher.watch(COUNT), rec), subscribed(watcher.table_updates(), updates):
            await rec.wait_value([(0,)])
            for value in range(20):
                await writer.execute("INSERT INTO t(x) VALUES (?)", (value,))
            await rec.wait_value([(20,)])
            await wait_quiet(watcher)
            assert poller.foreign_commits == before
            assert not any(m.everything for m in updates.values)
            # A program that is not rxdb is still seen, and only it causes a resync.
            await asyncio.to_thread(foreign_insert, db_path)
            await rec.wait_value([(21,)])
            # The writer's poller too may see that commit, and first: its resync (one bus in
            # this process) then refreshes the watch before this poller has counted it.
            own = f"{sqlite_engine(watcher).origin}/foreign"
            await updates.wait_for(lambda r: any(m.origin == own for m in r.values))
            assert poller.foreign_commits == before + 1


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    import rxdb

    async def main(path: str, count: int) -> None:
        async with rxdb.open(path) as db:
            for value in range(count):
                await db.execute("INSERT INTO t(x) VALUES (?)", (value,))

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


@pytest.mark.usefixtures("patient_claims")
async def test_commits_of_another_rxdb_process_rerun_watches_once(db_path: Path) -> None:
    async with rxdb.open(db_path, foreign_poll=0.002) as db:
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
        await wait_quiet(db)
        poller = sqlite_engine(db).poller
        assert poller is not None
        rec: Recorder[Any] = Recorder()
        updates: Recorder[NotifyTablesUpdated] = Recorder()
        with subscribed(db.watch(COUNT), rec), subscribed(db.table_updates(), updates):
            await rec.wait_value([(0,)])
            before = poller.foreign_commits
            await run_script(WRITER, str(db_path), "30")
            await rec.wait_value([(30,)])
            await wait_quiet(db)
            # Each of the 30 commits arrived once, through the hub; the poller saw every
            # one of them claimed (the writer joined the hub before its first commit).
            inserts = [m for m in updates.values if not m.everything]
            assert len(inserts) == 30
            assert all(m.wal_changes is not None for m in inserts)
            assert poller.foreign_commits == before
            assert not any(m.everything for m in updates.values)


async def test_interleaved_foreign_and_rxdb_commits_are_never_missed(db_path: Path) -> None:
    """Foreign commits hidden among claimed ones are still seen, whatever the timing."""
    async with (
        rxdb.open(db_path, foreign_poll=0.001) as watcher,
        rxdb.open(db_path) as writer,
    ):
        await writer.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
        await writer.execute("CREATE TABLE f(id INTEGER PRIMARY KEY, x)")
        rec: Recorder[Any] = Recorder()
        # Only foreign commits write f: the watch of f can only learn of them by a resync.
        with subscribed(watcher.watch("SELECT count(*) FROM f"), rec):
            await rec.wait_value([(0,)])

            def foreign(value: int) -> None:
                conn = sqlite3.connect(db_path, isolation_level=None, timeout=10)
                try:
                    conn.execute("INSERT INTO f(x) VALUES (?)", (value,))
                finally:
                    conn.close()

            for round_ in range(15):
                writes = [writer.execute("INSERT INTO t(x) VALUES (?)", (n,)) for n in range(3)]
                await asyncio.gather(*writes, asyncio.to_thread(foreign, round_))
                await rec.wait_value([(round_ + 1,)])


async def test_no_descriptor_outlives_the_database(tmp_path: Path) -> None:
    """The -shm descriptor is let go once SQLite has deleted the file (last connection)."""

    def shm_descriptors() -> list[str]:
        fds = Path("/proc/self/fd")
        targets = [str(fd.resolve()) if fd.exists() else "" for fd in fds.iterdir()]
        return [t for t in targets if t.endswith("-shm") and t.startswith(str(tmp_path))]

    for round_ in range(3):
        async with rxdb.open(tmp_path / f"{round_}.db") as db:
            await db.execute("CREATE TABLE t(x)")
            wal_index = sqlite_engine(db).wal_index
            assert wal_index is not None
            assert wal_index.read() is not None
            assert shm_descriptors()  # SQLite's and ours
        assert shm_descriptors() == []


async def test_the_counter_is_found_through_a_symbolic_link(tmp_path: Path) -> None:
    """SQLite follows a link to the database file and keeps -shm beside the real file."""
    sqlite3.connect(tmp_path / "real.db").close()
    (tmp_path / "link.db").symlink_to(tmp_path / "real.db")
    async with rxdb.open(tmp_path / "link.db") as db:
        await db.execute("CREATE TABLE t(x)")
        index = sqlite_engine(db).wal_index
        assert index is not None
        before = index.read()
        assert before is not None
        await db.execute("INSERT INTO t VALUES (1)")
        assert index.read() == (before + 1) & 0xFFFFFFFF


async def test_a_lost_baseline_makes_the_first_reading_foreign() -> None:
    """The baseline is the one reading that absorbs commits unannounced; if it failed, a
    commit made before the next successful reading would be absorbed by that one instead."""
    file = FakeFile()
    calls: list[int] = []
    failures = [1]

    async def flaky_state() -> tuple[int, int | None]:
        if failures[0]:
            failures[0] -= 1
            raise rxdb.BusyError("locked")
        return await file.read_state()

    async def on_foreign() -> None:
        calls.append(file.counter)

    poller = ForeignWritePoller(flaky_state, file.read_counter, on_foreign, 0.001)
    await poller.start()
    try:
        file.commit()  # after the failed baseline, before any successful reading
        await file.polls_later(3)
        assert calls == [file.counter]
    finally:
        await poller.stop()

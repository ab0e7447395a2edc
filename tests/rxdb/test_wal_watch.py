"""Told instead of polling: the inotify watch on the database's files (rxdb.engines.sqlite
.wal_watch) and the poller's chase after its events (rxdb.engines.sqlite.foreign)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rxdb
import rxdb.engines.sqlite.foreign as foreign_module
import rxdb.engines.sqlite.wal_watch as wal_watch_module
from rxdb.engines.sqlite.foreign import (
    CHASE_BUSY,
    CHASE_FIRST,
    CHASE_LENGTH,
    SAFETY_INTERVAL,
    ForeignWritePoller,
)
from rxdb.engines.sqlite.wal_watch import FileWatch, filesystem_type
from tests.conftest import WAIT, Recorder, no_watch, sqlite_engine, subscribed
from tests.rxdb.test_attribution import FakeFile
from tests.rxdb.test_foreign import COUNT, foreign_insert
from tests.rxdb.test_processes import run_script

NEVER = 3600.0  # a poll interval no test lives to see: only the watch can tell in time


@pytest.fixture
def told_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No safety poll within a test's lifetime: a commit is seen through the watch or not."""
    monkeypatch.setattr(foreign_module, "SAFETY_INTERVAL", NEVER)


def inotify_descriptors() -> set[int]:
    """The process's inotify descriptors. A set, not a count: another test's closed watch
    may still be on its way out (FileWatch.close releases it on a thread)."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:inotify":
                found.add(int(name))
        except OSError:
            continue  # the listing's own descriptor, closed by now
    return found


def watches_of(fd: int) -> int:
    """How many watches the inotify instance ``fd`` of this process has (the kernel lists
    each in the descriptor's fdinfo)."""
    with open(f"/proc/self/fdinfo/{fd}") as info:
        return sum(line.startswith("inotify wd:") for line in info)


def kept() -> list[int]:
    """The inotify instances kept for the next watch."""
    return list(wal_watch_module._IDLE)


@pytest.fixture
def none_kept() -> None:
    """Close the instances earlier tests' watches kept, as a forked child does its copies."""
    wal_watch_module._forget_idle_in_child()


@pytest.fixture
def no_idle_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    """No instance kept by an earlier test's watch is handed out or kept."""
    monkeypatch.setattr(wal_watch_module, "_IDLE", [])
    monkeypatch.setattr(wal_watch_module, "IDLE_LIMIT", 0)


# ---------------------------------------------------------------------------------------
# End to end: a plain sqlite3 writer, a watch


@pytest.mark.usefixtures("told_only")
async def sees_a_foreign_insert(db: rxdb.Database, db_path: Path) -> None:
    """A watch of ``db`` goes from 0 rows to 1 when a plain sqlite3 thread inserts one."""
    rec: Recorder[Any] = Recorder()
    with subscribed(db.watch(COUNT), rec):
        await rec.wait_value([(0,)])
        await asyncio.to_thread(foreign_insert, db_path)
        await rec.wait_value([(1,)])


async def test_a_plain_sqlite3_thread_commit_reruns_the_watch_when_told(db_path: Path) -> None:
    async with rxdb.open(db_path, foreign_poll=NEVER) as db:
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
        poller = sqlite_engine(db).poller
        assert poller is not None
        assert poller.watching
        rec: Recorder[Any] = Recorder()
        with subscribed(db.watch(COUNT), rec):
            await rec.wait_value([(0,)])
            for count in range(1, 4):
                await asyncio.to_thread(foreign_insert, db_path, count)
                await rec.wait_value([(count,)])
        assert poller.foreign_commits == 3


@pytest.mark.usefixtures("told_only")
async def test_a_plain_sqlite3_process_commit_reruns_the_watch_when_told(db_path: Path) -> None:
    async with rxdb.open(db_path, foreign_poll=NEVER) as db:
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
        rec: Recorder[Any] = Recorder()
        with subscribed(db.watch(COUNT), rec):
            await rec.wait_value([(0,)])
            await run_script(
                "import sqlite3, sys\n"
                "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                "conn.execute('INSERT INTO t(x) VALUES (1)')\n"
                "conn.close()\n",
                str(db_path),
            )
            await rec.wait_value([(1,)])


@pytest.mark.usefixtures("told_only")
async def test_a_rollback_journal_file_is_watched_too(db_path: Path) -> None:
    """A file rxdb may not switch to WAL (opened read-only) keeps its rollback journal: its
    commits write the main file, which is watched; there is no counter, so each event asks
    data_version."""
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
    conn.close()
    async with rxdb.open(db_path, read_only=True, foreign_poll=NEVER) as db:
        poller = sqlite_engine(db).poller
        assert poller is not None
        assert poller.watching
        assert sqlite_engine(db).wal_index is None
        await sees_a_foreign_insert(db, db_path)


async def test_without_inotify_polling_sees_the_commit(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_watch(monkeypatch)
    async with rxdb.open(db_path, foreign_poll=0.005) as db:
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
        poller = sqlite_engine(db).poller
        assert poller is not None
        assert not poller.watching
        await sees_a_foreign_insert(db, db_path)


@pytest.mark.usefixtures("none_kept")
async def test_the_database_closes_its_inotify_descriptor_where_none_is_kept(
    db_path: Path,
) -> None:
    before = inotify_descriptors()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wal_watch_module, "IDLE_LIMIT", 0)
        db = await rxdb.open(db_path)
        try:
            poller = sqlite_engine(db).poller
            assert poller is not None
            assert poller.watching
            watch = poller._watch
            assert isinstance(watch, FileWatch)
            assert inotify_descriptors() - before == {watch.fileno}
            assert watches_of(watch.fileno) == 2  # the file and its -wal file
        finally:
            await db.close()
    assert inotify_descriptors() - before == set()


@pytest.mark.usefixtures("none_kept")
async def test_the_database_leaves_its_inotify_instance_emptied_for_the_next_watch(
    db_path: Path, tmp_path: Path
) -> None:
    # Closing an instance that had watches can wait 7-16 ms for the kernel; removing the
    # watches does not. The instance then serves the next watch.
    db = await rxdb.open(db_path)
    try:
        poller = sqlite_engine(db).poller
        assert poller is not None
        watch = poller._watch
        assert isinstance(watch, FileWatch)
        fd = watch.fileno
    finally:
        await db.close()
    assert watch._closer is None  # no thread closes it: nothing to wait for
    assert kept() == [fd]
    assert watches_of(fd) == 0

    other = tmp_path / "other"
    other.write_bytes(b"")
    told = asyncio.Event()
    again = FileWatch.start([str(other)], told.set)
    assert again is not None
    try:
        assert again.fileno == fd
        assert kept() == []
        assert watches_of(fd) == 1
        await asyncio.to_thread(db_path.write_bytes, b"the old file: not watched any more")
        assert not again.drain()  # nothing of the old watches is left, not even IN_IGNORED
        await asyncio.to_thread(other.write_bytes, b"the new one")
        await asyncio.wait_for(told.wait(), WAIT)
        assert again.drain()
    finally:
        again.close()


@pytest.mark.usefixtures("none_kept")
async def test_at_most_idle_limit_instances_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal_watch_module, "IDLE_LIMIT", 1)
    path = tmp_path / "data"
    path.write_bytes(b"")
    first = FileWatch.start([str(path)], lambda: None)
    second = FileWatch.start([str(path)], lambda: None)
    assert first is not None
    assert second is not None
    kept_fd, closed = first.fileno, second.fileno
    first.close()
    second.close()
    await second.wait_closed()
    assert kept() == [kept_fd]
    assert closed not in inotify_descriptors()


@pytest.mark.usefixtures("none_kept")
async def test_a_kept_descriptor_reused_behind_rxdbs_back_is_left_alone(tmp_path: Path) -> None:
    # Someone closed the kept descriptor and its number went to a pipe: a new watch must
    # neither read the pipe's data nor close it.
    read, write = os.pipe()
    try:
        os.write(write, b"not rxdb's")
        wal_watch_module._IDLE.append(read)
        path = tmp_path / "data"
        path.write_bytes(b"")
        watch = FileWatch.start([str(path)], lambda: None)
        assert watch is not None
        try:
            assert watch.fileno != read
            assert kept() == []
        finally:
            watch.close()
        assert os.read(read, 100) == b"not rxdb's"
    finally:
        os.close(read)
        os.close(write)


@pytest.mark.usefixtures("none_kept")
def test_a_forked_child_does_not_share_the_kept_instances(tmp_path: Path) -> None:
    async def keep_one() -> int:
        path = tmp_path / "data"
        path.write_bytes(b"")
        watch = FileWatch.start([str(path)], lambda: None)
        assert watch is not None
        fd = watch.fileno
        watch.close()
        return fd

    fd = asyncio.run(keep_one())
    assert kept() == [fd]
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python >= 3.12 warns of fork() in a process with threads (another test's may be
        # winding down); the child runs nothing that could wait for one of them.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report and leave at once, running nothing of the parent's
        try:
            os.close(read)
            os.write(write, f"{len(wal_watch_module._IDLE)} {fd in inotify_descriptors()}".encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        with os.fdopen(read, "rb") as pipe:
            report = pipe.read().decode()
    finally:
        os.waitpid(pid, 0)
    assert report == "0 False"
    assert kept() == [fd]  # the parent keeps its own
    assert fd in inotify_descriptors()


@pytest.mark.usefixtures("no_idle_instance")
async def test_closing_the_watch_does_not_wait_for_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where no instance is kept, the kernel's release of one with watches can take 7-16 ms
    # (a grace period); here it takes until the test says so. close() must not wait for it.
    path = tmp_path / "data"
    path.write_bytes(b"")
    watch = FileWatch.start([str(path)], lambda: None)
    assert watch is not None
    fd = watch.fileno
    gate = threading.Event()
    close = os.close

    def slow_close(descriptor: int) -> None:
        if descriptor == fd:
            gate.wait(WAIT)
        close(descriptor)

    monkeypatch.setattr(os, "close", slow_close)
    ticks = 0

    async def ticking() -> None:  # the loop is free while the descriptor closes
        nonlocal ticks
        while True:
            ticks += 1
            if ticks == 3:
                gate.set()
            await asyncio.sleep(0)

    ticker = asyncio.create_task(ticking())
    try:
        watch.close()  # came back: the descriptor closes elsewhere
        assert watch.fileno == -1
        assert fd in inotify_descriptors()
        await asyncio.wait_for(watch.wait_closed(), WAIT)
    finally:
        gate.set()
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
    assert ticks >= 3
    assert fd not in inotify_descriptors()


async def test_no_file_watch_for_memory_or_without_polling(db_path: Path) -> None:
    before = inotify_descriptors()
    async with rxdb.open(":memory:"), rxdb.open(db_path, foreign_poll=None):
        assert inotify_descriptors() - before == set()


# ---------------------------------------------------------------------------------------
# The watch itself


async def test_the_watch_reports_writes_and_follows_a_file_deleted_and_made_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"")
    told = asyncio.Event()
    watch = FileWatch.start([str(path)], told.set)
    assert watch is not None

    async def reported() -> None:
        """One report per burst: read what piled up, listen again."""
        await asyncio.wait_for(told.wait(), WAIT)
        told.clear()
        assert watch.drain()
        assert not watch.drain()
        watch.listen()

    try:
        assert watch.complete
        path.write_bytes(b"one")
        path.write_bytes(b"one more")  # the same burst: no second report needed
        await reported()
        path.unlink()  # the kernel drops the watch; its IN_IGNORED is a report too
        await reported()
        assert not watch.complete
        path.write_bytes(b"")
        watch.refresh()
        assert watch.complete
        path.write_bytes(b"two")
        await reported()
    finally:
        watch.close()
    assert watch.fileno == -1
    assert not watch.complete
    watch.close()  # twice is harmless


async def test_a_missing_file_leaves_the_watch_incomplete(tmp_path: Path) -> None:
    watch = FileWatch.start([str(tmp_path / "nothing-yet")], lambda: None)
    assert watch is not None
    try:
        assert not watch.complete
        (tmp_path / "nothing-yet").write_bytes(b"")
        watch.refresh()
        assert watch.complete
    finally:
        watch.close()


async def test_no_watch_on_a_network_filesystem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = filesystem_type(str(tmp_path))
    assert kind is not None
    local = FileWatch.start([str(tmp_path / "db")], lambda: None)
    assert local is not None
    local.close()
    monkeypatch.setattr(wal_watch_module, "_REMOTE_FILESYSTEMS", frozenset({kind}))
    assert FileWatch.start([str(tmp_path / "db")], lambda: None) is None


class NoInstanceLeft:
    """A C library whose inotify_init1 fails, as when the user's inotify instances are all in
    use (fs.inotify.max_user_instances)."""

    def inotify_init1(self, flags: int) -> int:
        return -1

    def statfs(self, path: bytes, buffer: Any) -> int:
        return 0  # f_type 0: no network filesystem


@pytest.mark.usefixtures("no_idle_instance")
async def test_no_watch_when_no_inotify_instance_is_left(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal_watch_module, "_libc", NoInstanceLeft)
    assert FileWatch.start([str(db_path)], lambda: None) is None
    async with rxdb.open(db_path, foreign_poll=0.005) as db:  # polls instead
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
        poller = sqlite_engine(db).poller
        assert poller is not None
        assert not poller.watching
        await sees_a_foreign_insert(db, db_path)


async def test_no_watch_without_inotify_in_the_c_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal_watch_module, "_libc", lambda: None)
    assert FileWatch.start([str(tmp_path / "db")], lambda: None) is None


# ---------------------------------------------------------------------------------------
# The poller's chase


class FakeWatch:
    """A watch the test reports through."""

    def __init__(self, report: Callable[[], None]) -> None:
        self.report = report
        self.complete = True
        self.closed = False

    def refresh(self) -> None:
        pass

    def listen(self) -> None:
        pass

    def drain(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        assert self.closed


async def started(file: FakeFile, foreign: list[int]) -> tuple[ForeignWritePoller, FakeWatch]:
    watches: list[FakeWatch] = []

    def watch(report: Callable[[], None]) -> FakeWatch:
        watches.append(FakeWatch(report))
        return watches[0]

    async def on_foreign() -> None:
        foreign.append(file.counter)

    poller = ForeignWritePoller(file.read_state, file.read_counter, on_foreign, NEVER, watch)
    await poller.start()
    return poller, watches[0]


@pytest.mark.usefixtures("told_only")
async def test_a_commit_that_lands_after_its_event_is_chased() -> None:
    """SQLite syncs a commit's pages after writing them (the event) and only then moves the
    counter: the poller looks again until it moves, without another event."""
    file = FakeFile()
    foreign: list[int] = []
    poller, watch = await started(file, foreign)
    try:
        assert poller.watching
        watch.report()  # the pages are written...
        await file.polls_later(1)  # ...the poller looks: nothing yet
        value = file.commit()  # the counter moves, with no event of its own
        while not foreign:
            await file.polls_later(1)
        assert foreign == [value]
    finally:
        await poller.stop()
    assert watch.closed


async def test_the_chase_schedule() -> None:
    """Fine gaps first, growing with the time since the chase began, capped while events keep
    coming, over once the counter moved or CHASE_LENGTH passed quietly; between chases
    only the safety net; without a complete watch, the plain interval."""
    file = FakeFile()
    poller, watch = await started(file, [])
    try:
        check_schedule(poller, watch)
    finally:
        await poller.stop()


def check_schedule(poller: ForeignWritePoller, watch: FakeWatch) -> None:
    interval = NEVER
    assert poller._next_delay(signalled=False, moved=False, now=0.0) == SAFETY_INTERVAL
    assert poller._next_delay(signalled=True, moved=False, now=0.0) == CHASE_FIRST
    assert poller._next_delay(signalled=False, moved=False, now=0.001) == CHASE_FIRST
    assert poller._next_delay(signalled=True, moved=False, now=0.02) == 0.02 / 4
    assert poller._next_delay(signalled=True, moved=False, now=0.2) == CHASE_BUSY
    assert poller._next_delay(signalled=False, moved=False, now=0.21) == CHASE_BUSY
    quiet = 0.2 + CHASE_LENGTH + 0.001
    assert poller._next_delay(signalled=False, moved=False, now=quiet) == SAFETY_INTERVAL
    assert poller._next_delay(signalled=True, moved=False, now=5.0) == CHASE_FIRST
    assert poller._next_delay(signalled=False, moved=True, now=5.001) == SAFETY_INTERVAL
    poller._writer_busy = lambda: True  # its commit will nudge: no fine steps meanwhile
    assert poller._next_delay(signalled=True, moved=False, now=5.5) == CHASE_BUSY
    assert poller.wants_nudge
    # Its own commits in a burst: one look per CHASE_BUSY, not listening in between.
    assert poller._next_delay(signalled=True, moved=True, now=5.6) == CHASE_BUSY
    poller._writer_busy = lambda: False
    assert poller._next_delay(signalled=False, moved=True, now=5.7) == SAFETY_INTERVAL
    watch.complete = False
    assert poller._next_delay(signalled=True, moved=False, now=6.0) == interval
    poller._watch = None
    assert poller._next_delay(signalled=True, moved=False, now=7.0) == interval


@pytest.mark.usefixtures("told_only")
async def test_commits_claimed_by_rxdb_writers_need_no_reading() -> None:
    """Another rxdb process's commit raises events here too; its claim (through the hub)
    accounts for it without asking the writer, and nothing re-runs."""
    file = FakeFile()
    foreign: list[int] = []
    poller, watch = await started(file, foreign)
    asked = [0]
    real = file.read_state

    async def counting() -> tuple[int, int | None]:
        asked[0] += 1
        return await real()

    poller._read_state = counting
    try:
        for _ in range(3):
            value = file.commit()
            poller.claim((value - 1, value))
            watch.report()
            await file.polls_later(1)
        assert asked[0] == 0
        value = file.commit()  # unclaimed: the writer is asked, and it is foreign
        watch.report()
        while not foreign:
            await file.polls_later(1)
        assert asked[0] >= 1
        assert foreign == [value]
    finally:
        await poller.stop()


class CountingSet(set[int]):
    """A set that counts the membership tests made of it."""

    looked = 0

    def __contains__(self, value: object) -> bool:
        self.looked += 1
        return super().__contains__(value)


async def test_a_long_burst_of_commits_is_accounted_without_walking_it() -> None:
    # execute_many outside a transaction commits each row: 300,000 rows move the counter
    # 300,000 values, of which at most 65,536 are claimed. Every look used to build and walk
    # the whole window on the loop (~17 ms each, many times during the burst).
    file = FakeFile()
    poller, _ = await started(file, [])
    try:
        start = poller._seen
        assert start == file.counter
        claimed = CountingSet({start + 1, start + 2, start + 3})
        poller._claimed = claimed
        later = start + 300_000
        assert poller._unclaimed(later)  # more values than claims: some are nobody's
        assert claimed.looked == 0
        poller._claimed = CountingSet({start + 1, start + 2, later + 1})
        poller._advance(later)
        assert poller._seen == later
        assert poller._claimed == {later + 1}  # the claim beyond the window stays
    finally:
        await poller.stop()


async def test_accounting_follows_the_counter_across_its_wrap() -> None:
    file = FakeFile()
    poller, _ = await started(file, [])
    try:
        top = 0xFFFFFFF0
        poller._seen = top
        poller._claimed = set(range(top + 1, 0x1_0000_0000)) | set(range(0, 8))  # 15 + 8
        assert not poller._unclaimed(7)  # every value from top + 1 round to 7 is claimed
        assert poller._unclaimed(8)
        poller._claimed |= {9, 10}
        poller._advance(7)  # a window no longer than the claims: taken out of them
        assert (poller._seen, poller._claimed) == (7, {9, 10})
        poller._seen = top
        poller._claimed = {top + 3, 5, 0x30}
        poller._advance(0x20)  # longer than the claims: those beyond it are kept
        assert (poller._seen, poller._claimed) == (0x20, {0x30})
    finally:
        await poller.stop()


@pytest.mark.usefixtures("told_only")
async def test_while_the_writer_works_a_chase_waits_for_its_nudge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write event while this database's writer works is most likely its own commit: the
    poller looks when the writer says it committed (no fine steps meanwhile; here the
    longest gap is made endless, so only the nudge can bring the look)."""
    monkeypatch.setattr(foreign_module, "CHASE_BUSY", NEVER)
    file = FakeFile()
    foreign: list[int] = []
    poller, watch = await started(file, foreign)
    poller._writer_busy = lambda: True
    try:
        watch.report()
        await file.polls_later(1)  # nothing committed yet: it waits for the nudge
        assert poller.wants_nudge
        value = file.commit()  # (a foreign one, as it happens)
        poller.nudge()
        assert not poller.wants_nudge
        while not foreign:
            await file.polls_later(1)
        assert foreign == [value]
    finally:
        await poller.stop()

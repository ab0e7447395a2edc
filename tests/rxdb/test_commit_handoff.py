"""What the writer's thread does after a commit, and when: the foreign-write poller's state
reading waits until the call that committed has handed its result to the loop
(``Worker.after_report``), so that it never delays the result, nor a watch's emission riding
with it; it is never taken inside a transaction; and the poller's look that follows does not
listen for the writer's next commit."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import rxdb
from rxdb.engines.sqlite.connections import TrackedConnection
from rxdb.engines.sqlite.foreign import CHASE_BUSY, SAFETY_INTERVAL
from rxdb.engines.sqlite.walindex import StateReadings
from tests.conftest import WAIT, sqlite_engine
from tests.rxdb.test_attribution import FakeFile
from tests.rxdb.test_wal_watch import started


async def on_readings(
    db: rxdb.Database, monkeypatch: pytest.MonkeyPatch, spy: Callable[[TrackedConnection], None]
) -> None:
    """Call ``spy`` on the writer's thread before each state reading it takes after a call
    that committed, from the next call on."""
    engine = sqlite_engine(db)
    assert engine.poller is not None
    assert engine.poller.watching  # the writer reads then
    await readings_over(db)
    real = StateReadings.after_commit

    def after_commit(readings: StateReadings, connection: TrackedConnection) -> None:
        spy(connection)
        real(readings, connection)

    monkeypatch.setattr(StateReadings, "after_commit", after_commit)


async def readings_over(db: rxdb.Database) -> None:
    """Wait until the writer's calls so far have taken their readings (after their results:
    a call queued behind them returns once they are over)."""
    await db.execute("SELECT 1")


async def test_the_write_returns_before_the_writer_reads_its_state(
    db: rxdb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await db.execute("CREATE TABLE t (x)")
    returned = threading.Event()
    waited: list[bool] = []
    # Held until the write has returned on the loop: a reading taken before the hand-off
    # would hold the result back, and wait here in vain.
    await on_readings(db, monkeypatch, lambda _: waited.append(returned.wait(WAIT)))
    await db.execute("INSERT INTO t VALUES (1)")
    returned.set()
    await readings_over(db)
    assert waited == [True]


async def test_no_reading_inside_a_transaction_one_after_it(
    db: rxdb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await db.execute("CREATE TABLE t (x)")
    inside: list[bool] = []  # whether a transaction was open, at each reading
    await on_readings(db, monkeypatch, lambda connection: inside.append(connection.in_transaction))
    # A call that commits, then opens a transaction: nothing is read until that one ends.
    await db.execute_script("INSERT INTO t VALUES (1); BEGIN; INSERT INTO t VALUES (2)")
    await db.execute("INSERT INTO t VALUES (3)")
    await readings_over(db)
    assert inside == []
    await db.execute("COMMIT")
    await readings_over(db)
    assert inside == [False]
    await db.execute("INSERT INTO t VALUES (4)")
    await readings_over(db)
    assert inside == [False, False]


async def test_right_after_the_writers_commit_the_poller_does_not_listen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer's nudge comes once its call is over, when it may be free already; its next
    commit may follow at once, and a poller listening then would wake the loop at that
    commit's first write, while the writer works. So the look a nudge brings is the last
    for CHASE_BUSY, as during a burst of commits."""
    poller, watch = await started(FakeFile(), [])
    listens: list[None] = []
    monkeypatch.setattr(watch, "listen", lambda: listens.append(None))
    try:
        poller.nudge()
        assert poller._next_delay(signalled=True, moved=True, now=1.0) == CHASE_BUSY
        assert listens == []
        assert poller._next_delay(signalled=False, moved=True, now=1.1) == SAFETY_INTERVAL
        assert listens == [None]
    finally:
        await poller.stop()

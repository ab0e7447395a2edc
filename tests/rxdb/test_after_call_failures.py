"""A failure in the work the writer's thread does after a call (a bug, by definition) must
neither hold back the call's result (the caller would wait for ever) nor cost a watch the
commit it was told of (it would stay stale), nor pass unseen."""

from __future__ import annotations

import asyncio
import logging

import pytest

import rxdb
from rxdb.engines.sqlite.readers import ReadCosts
from rxdb.engines.sqlite.walindex import StateReadings
from tests.conftest import WAIT, sqlite_engine
from tests.rxdb.test_eager_reruns import generous, watching  # noqa: F401  (a fixture)
from tests.rxdb.test_watch import make_t


class Broken(Exception):
    pass


def fail(*_: object) -> None:
    raise Broken("a bug after the call")


class BrokenRecords:
    """Costs that can be read but not recorded."""

    def __init__(self, costs: ReadCosts) -> None:
        self.seconds = costs.seconds

    record = staticmethod(fail)


async def test_failed_eager_reruns_leave_their_watches_to_the_usual_road(
    db: rxdb.Database,
    generous: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await make_t(db)
    async with watching(db) as (_, rec):
        reads = sqlite_engine(db).eager
        # The eager reads' own view of the costs breaks after their read; the readers' not.
        monkeypatch.setattr(reads, "_costs", BrokenRecords(reads._costs))
        with caplog.at_level(logging.ERROR, logger="rxdb.watch"):
            async with asyncio.timeout(WAIT):  # the write's result still comes
                await db.execute("INSERT INTO t(x) VALUES (1)")
            await rec.wait_value([(1,)])  # and the watch still hears of the commit
        assert any(record.exc_info and record.exc_info[0] is Broken for record in caplog.records)


async def test_a_failure_after_the_call_still_returns_the_result(
    db: rxdb.Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await make_t(db)
    writer = sqlite_engine(db)._writer
    assert writer is not None
    monkeypatch.setattr(writer.worker, "after_call", fail)
    with caplog.at_level(logging.ERROR, logger="rxdb.engine"):
        async with asyncio.timeout(WAIT):
            result = await db.execute("INSERT INTO t(x) VALUES (1)")
    assert result.rowcount == 1
    assert any(record.exc_info and record.exc_info[0] is Broken for record in caplog.records)


async def test_a_failed_reading_after_the_report_is_logged_and_the_writer_goes_on(
    db: rxdb.Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await make_t(db)
    engine = sqlite_engine(db)
    assert engine.poller is not None
    assert engine.poller.watching  # the writer reads then
    monkeypatch.setattr(StateReadings, "after_commit", fail)
    with caplog.at_level(logging.ERROR, logger="rxdb.engine"):
        await db.execute("INSERT INTO t(x) VALUES (1)")
        await db.execute("SELECT 1")  # queued behind the reading: it has run
    assert any(record.exc_info and record.exc_info[0] is Broken for record in caplog.records)
    assert await db.fetch_all("SELECT count(*) FROM t") == [(1,)]

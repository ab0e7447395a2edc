from __future__ import annotations

import asyncio
import threading

import pytest

from rxdb.bus import Bus
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind

WAIT = 10.0


def message(
    *tables: str, everything: bool = False, database: str = "db", seq: int = 1
) -> NotifyTablesUpdated:
    return NotifyTablesUpdated(
        database,
        "origin",
        seq,
        frozenset(TableUpdate(t, UpdateKind.INSERT) for t in tables),
        everything,
    )


class Inbox:
    def __init__(self) -> None:
        self.got: list[NotifyTablesUpdated] = []
        self.event = asyncio.Event()

    def __call__(self, msg: NotifyTablesUpdated) -> None:
        self.got.append(msg)
        self.event.set()


async def drain() -> None:
    """Run callbacks already queued on this loop (bus deliveries use call_soon_threadsafe)."""
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(done.set_result, None)
    await done


class TestBusRouting:
    async def test_bus_delivers_only_to_subscribers_of_written_tables(self) -> None:
        bus = Bus()
        a, b, every = Inbox(), Inbox(), Inbox()
        bus.subscribe("db", a, tables={"a"})
        bus.subscribe("db", b, tables={"b"})
        bus.subscribe("db", every)
        bus.publish(message("a"))
        await drain()
        assert [m.tables for m in a.got] == [frozenset({"a"})]
        assert b.got == []
        assert len(every.got) == 1

    async def test_bus_keeps_databases_apart(self) -> None:
        bus = Bus()
        inbox = Inbox()
        bus.subscribe("one", inbox, tables={"t"})
        bus.publish(message("t", database="two"))
        await drain()
        assert inbox.got == []

    async def test_bus_everything_message_reaches_all_subscribers_even_empty_interest(self) -> None:
        bus = Bus()
        table, nothing = Inbox(), Inbox()
        bus.subscribe("db", table, tables={"t"})
        bus.subscribe("db", nothing, tables=frozenset())
        bus.publish(message("x"))
        bus.publish(message(everything=True, seq=2))
        await drain()
        assert [m.sequence for m in table.got] == [2]
        assert [m.sequence for m in nothing.got] == [2]

    async def test_bus_kind_filter_matches_unknown_kind(self) -> None:
        bus = Bus()
        deletes = Inbox()
        bus.subscribe("db", deletes, tables={"t"}, kinds={UpdateKind.DELETE})
        bus.publish(message("t"))  # an insert
        bus.publish(NotifyTablesUpdated("db", "o", 2, frozenset({TableUpdate("t")})))
        await drain()
        assert [m.sequence for m in deletes.got] == [2]

    async def test_bus_statistics_count_interested_deliveries_only(self) -> None:
        bus = Bus()
        for index in range(100):
            bus.subscribe("db", Inbox(), tables={f"t{index}"})
        bus.publish(message("t7"))
        await drain()
        stats = bus.statistics()
        assert (stats.subscriptions, stats.published, stats.deliveries) == (100, 1, 1)

    async def test_bus_retarget_changes_interest(self) -> None:
        bus = Bus()
        inbox = Inbox()
        sub = bus.subscribe("db", inbox, tables={"a"})
        sub.retarget({"b"})
        bus.publish(message("a"))
        bus.publish(message("b", seq=2))
        await drain()
        assert [m.sequence for m in inbox.got] == [2]

    async def test_bus_close_stops_delivery_of_already_published_message(self) -> None:
        bus = Bus()
        inbox = Inbox()
        sub = bus.subscribe("db", inbox, tables={"a"})
        bus.publish(message("a"))
        sub.close()  # before the loop ran the delivery
        await drain()
        assert inbox.got == []
        assert bus.statistics().subscriptions == 0

    async def test_bus_wanted_is_asked_on_the_publishing_thread_before_any_delivery(
        self,
    ) -> None:
        bus = Bus()
        inbox = Inbox()
        asked: list[tuple[int, int]] = []

        def wanted(msg: NotifyTablesUpdated) -> bool:
            asked.append((msg.sequence, threading.get_ident()))
            return msg.sequence % 2 == 0

        bus.subscribe("db", inbox, wanted=wanted)

        def publish_three() -> None:
            for n in (1, 2, 3):
                bus.publish(message("t", seq=n))

        publisher = threading.Thread(target=publish_three)
        publisher.start()
        publisher.join()
        await asyncio.wait_for(inbox.event.wait(), WAIT)
        await drain()
        assert [m.sequence for m in inbox.got] == [2]
        assert [n for n, _ in asked] == [1, 2, 3]
        assert {ident for _, ident in asked} == {publisher.ident}


class TestBusIsolation:
    async def test_bus_failing_subscriber_does_not_stop_others(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        bus = Bus()
        before, after = Inbox(), Inbox()

        def broken(_: NotifyTablesUpdated) -> None:
            raise RuntimeError("subscriber bug")

        bus.subscribe("db", before, tables={"t"})
        bus.subscribe("db", broken, tables={"t"})
        bus.subscribe("db", after, tables={"t"})
        bus.publish(message("t"))
        await drain()
        assert len(before.got) == 1
        assert len(after.got) == 1
        assert "subscriber bug" in caplog.text

    async def test_bus_publish_from_other_thread_runs_callback_on_subscriber_loop(self) -> None:
        bus = Bus()
        loop_thread = threading.get_ident()
        seen: list[int] = []
        done = asyncio.Event()

        def callback(_: NotifyTablesUpdated) -> None:
            seen.append(threading.get_ident())
            done.set()

        bus.subscribe("db", callback, tables={"t"})
        publisher = threading.Thread(target=bus.publish, args=(message("t"),))
        publisher.start()
        await asyncio.wait_for(done.wait(), WAIT)
        publisher.join()
        assert seen == [loop_thread]

    async def test_bus_delivers_to_each_loop_in_its_own_thread(self) -> None:
        bus = Bus()
        other_loop = asyncio.new_event_loop()
        ready = threading.Event()
        got_there = threading.Event()
        thread_ids: list[int] = []

        def run_other() -> None:
            asyncio.set_event_loop(other_loop)

            def callback(_: NotifyTablesUpdated) -> None:
                thread_ids.append(threading.get_ident())
                got_there.set()
                other_loop.stop()

            bus.subscribe("db", callback, tables={"t"}, loop=other_loop)
            other_loop.call_soon(ready.set)
            other_loop.run_forever()

        thread = threading.Thread(target=run_other)
        thread.start()
        try:
            assert await asyncio.to_thread(ready.wait, WAIT)
            here = Inbox()
            bus.subscribe("db", here, tables={"t"})
            bus.publish(message("t"))
            await asyncio.wait_for(here.event.wait(), WAIT)
            assert await asyncio.to_thread(got_there.wait, WAIT)
        finally:
            other_loop.call_soon_threadsafe(other_loop.stop)
            thread.join(WAIT)
            other_loop.close()
        assert thread_ids == [thread.ident]

    async def test_bus_drops_subscribers_of_a_closed_loop(self) -> None:
        bus = Bus()
        dead = asyncio.new_event_loop()
        dead.close()
        bus.subscribe("db", Inbox(), tables={"t"}, loop=dead)
        live = Inbox()
        bus.subscribe("db", live, tables={"t"})
        bus.publish(message("t"))
        await drain()
        assert len(live.got) == 1
        assert bus.statistics().subscriptions == 1

    async def test_bus_concurrent_publishers_lose_nothing(self) -> None:
        bus = Bus()
        inbox = Inbox()
        bus.subscribe("db", inbox, tables={"t"})
        per_thread, threads = 200, 4

        def publish_many(worker: int) -> None:
            for seq in range(per_thread):
                bus.publish(message("t", seq=worker * per_thread + seq))

        workers = [threading.Thread(target=publish_many, args=(w,)) for w in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            await asyncio.to_thread(worker.join)
        await asyncio.wait_for(_until(lambda: len(inbox.got) == per_thread * threads, inbox), WAIT)
        assert sorted(m.sequence for m in inbox.got) == list(range(per_thread * threads))


async def _until(condition: object, inbox: Inbox) -> None:
    assert callable(condition)
    while not condition():
        inbox.event.clear()
        await inbox.event.wait()

"""A process that joins a hub, for tests/rxdb/test_hub.py.

Run as ``python -m tests.rxdb.hub_worker KEY DIRECTORY [--db PATH]``. It speaks JSON lines:
commands on stdin, events on stdout (``ready``, ``message`` for every bus message of the
key, ``rows`` for watch emissions with ``--db``, ``log`` for the hub's warnings, and one
answer per command). Without ``--db`` it publishes hand-made messages on a plain Bus.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import threading
import time
from dataclasses import asdict
from typing import Any

import rxdb
from rxdb.bus import Bus, default_bus
from rxdb.remote import hub
from rxdb.updates import NotifyTablesUpdated, TableUpdate


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class _Forward(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        emit("log", level=record.levelname, message=record.getMessage())


def _idle_then_exit(seconds: float) -> None:
    time.sleep(seconds)
    os._exit(0)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("key")
    parser.add_argument("directory")
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    logging.getLogger("rxdb.remote.hub").addHandler(_Forward(logging.WARNING))

    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())
        loop.call_soon_threadsafe(commands.put_nowait, "exit")

    threading.Thread(target=read_stdin, daemon=True).start()

    db: rxdb.Database | None = None
    if args.db is not None:
        db = await rxdb.open(args.db, foreign_poll=None)
        bus: Bus = default_bus
        key = db.key
        origin = db.origin
    else:
        bus = Bus()
        key = args.key
        origin = f"{os.getpid()}:worker"
    memberships: list[hub.Membership] = []

    async def join() -> hub.Membership:
        membership = await hub.join(
            key, bus, local_origins=lambda: {origin}, directory=args.directory
        )
        memberships.append(membership)
        return membership

    first = await join()
    latencies: list[float] = []

    def received(message: NotifyTablesUpdated) -> None:
        tables = sorted(message.tables)
        if tables and tables[0].startswith("stamp"):
            if message.origin != origin:
                latencies.append((time.perf_counter_ns() - int(tables[0][5:])) / 1e3)
            return
        emit(
            "message",
            origin=message.origin,
            sequence=message.sequence,
            tables=tables,
            everything=message.everything,
            resync=message.origin == first.origin,
            local=message.origin == origin,
        )

    subscription = bus.subscribe(key, received)
    watch_task: asyncio.Task[None] | None = None
    if db is not None:
        stream = db.watch("SELECT count(*) FROM t")

        async def follow() -> None:
            async for rows in stream:
                emit("rows", value=rows[0][0])

        watch_task = loop.create_task(follow())

    emit("ready", pid=os.getpid(), origin=first.origin, stats=asdict(first.statistics()))
    sequence = 0
    try:
        while True:
            words = (await commands.get()).split()
            if not words:
                continue
            command, rest = words[0], words[1:]
            if command == "exit":
                break
            if command == "publish":  # publish TABLE [SEQUENCE]
                sequence = int(rest[1]) if len(rest) > 1 else sequence + 1
                bus.publish(
                    NotifyTablesUpdated(key, origin, sequence, frozenset({TableUpdate(rest[0])}))
                )
                emit("published", sequence=sequence)
            elif command == "burst":  # burst COUNT TABLE
                for _ in range(int(rest[0])):
                    sequence += 1
                    bus.publish(
                        NotifyTablesUpdated(
                            key, origin, sequence, frozenset({TableUpdate(rest[1])})
                        )
                    )
                emit("published", sequence=sequence)
            elif command == "stamp":  # stamp COUNT INTERVAL: timestamped, paced messages
                for _ in range(int(rest[0])):
                    sequence += 1
                    table = f"stamp{time.perf_counter_ns()}"
                    bus.publish(
                        NotifyTablesUpdated(key, origin, sequence, frozenset({TableUpdate(table)}))
                    )
                    await asyncio.sleep(float(rest[1]))
                emit("stamped", sequence=sequence)
            elif command == "pace":  # pace COUNT TABLE INTERVAL: a steady stream
                for _ in range(int(rest[0])):
                    sequence += 1
                    bus.publish(
                        NotifyTablesUpdated(
                            key, origin, sequence, frozenset({TableUpdate(rest[1])})
                        )
                    )
                    await asyncio.sleep(float(rest[2]))
                emit("published", sequence=sequence)
            elif command == "fork":  # fork SECONDS: a child that outlives us, doing nothing
                child = os.fork()
                if child == 0:
                    _idle_then_exit(float(rest[0]))
                emit("forked", pid=child)
            elif command == "latency":
                ordered = sorted(latencies)
                emit(
                    "latency",
                    count=len(ordered),
                    median=statistics.median(ordered) if ordered else None,
                    p99=ordered[int(len(ordered) * 0.99)] if ordered else None,
                )
                latencies.clear()
            elif command == "insert":
                assert db is not None
                await db.execute("INSERT INTO t DEFAULT VALUES")
                emit("inserted")
            elif command == "stats":
                emit("stats", **asdict(memberships[-1].statistics()) if memberships else {})
            elif command == "join":
                membership = await join()
                emit("joined", stats=asdict(membership.statistics()))
            elif command == "leave":
                await memberships.pop().leave()
                emit("left", remaining=len(memberships))
            else:
                emit("error", message=f"unknown command {command!r}")
    finally:
        if watch_task is not None:
            watch_task.cancel()
        subscription.close()
        for membership in memberships:
            await membership.leave()
        if db is not None:
            await db.close()
        emit("bye")


if __name__ == "__main__":
    asyncio.run(main())

"""A process that listens for capture notifications, for tests/rxdb/test_postgres_listener.py;
and the scratch database every PostgreSQL capture and listener test runs in.

Run as ``python -m tests.rxdb.postgres_worker DSN CHANNEL``. It speaks JSON lines on stdout:
``ready`` once it listens, then ``change`` for every ``on_change`` and ``reset`` for every
``on_reset``. It leaves and exits when its stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from rxdb.engines.postgres import listener
from rxdb.updates import TableUpdate

SERVER = "postgresql://postgres@127.0.0.1:5432"


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A new database ``rxdb_test_<hex>`` on the machine's server, dropped (with every
    connection still in it) on exit; yields its name. Each step connects anew: a test may
    restart the server in between."""
    name = f"rxdb_test_{uuid.uuid4().hex}"
    await _admin(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        await _admin(f"DROP DATABASE {name} WITH (FORCE)")


async def _admin(sql: str) -> None:
    admin = await asyncpg.connect(f"{SERVER}/postgres")
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def on_change(updates: frozenset[TableUpdate], origin: str | None, everything: bool) -> None:
    tables = sorted(f"{u.table}:{u.kind.value if u.kind else None}" for u in updates)
    emit("change", tables=tables, origin=origin, everything=everything)


async def main() -> None:
    dsn, channel = sys.argv[1:3]
    loop = asyncio.get_running_loop()
    stdin_closed = asyncio.Event()

    def read_stdin() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stdin_closed.set)

    threading.Thread(target=read_stdin, daemon=True).start()
    membership = await listener.join(dsn, channel, on_change, lambda: emit("reset"))
    emit("ready", pid=membership.statistics().backend_pid)
    await stdin_closed.wait()
    await membership.leave()


if __name__ == "__main__":
    asyncio.run(main())

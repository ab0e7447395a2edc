"""kill -9, in the suite: of the process hosting the hub, of a member process, and of a
server's client process, each killed inside a transaction while other processes write. No
committed row may be lost, no uncommitted row may become visible, and every watcher must
converge on the truth (read with a plain sqlite3 connection at the end). The workers are
tests/rxdb/kill_worker.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import rxdb
from tests.conftest import WAIT, Recorder, subscribed

ROOT = Path(__file__).resolve().parents[2]
BY_WHO = "SELECT who, count(*) FROM t GROUP BY who ORDER BY who"


class Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")

    async def expect(self, prefix: str) -> str:
        """The next line that starts with ``prefix`` (within WAIT s)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(WAIT):
            while True:
                line = (await self.process.stdout.readline()).decode()
                assert line, f"the worker exited while we waited for {prefix!r}"
                if line.startswith(prefix):
                    return line.strip()

    async def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
        await self.process.wait()


@contextlib.asynccontextmanager
async def workers() -> AsyncIterator[list[Worker]]:
    started: list[Worker] = []
    try:
        yield started
    finally:
        for worker in started:
            await worker.kill()


async def start(started: list[Worker], mode: str, target: Path | str) -> Worker:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.rxdb.kill_worker",
        mode,
        str(target),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    worker = Worker(process)
    started.append(worker)
    return worker


def truth(path: Path) -> list[tuple[Any, ...]]:
    """What the file holds, read without rxdb."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return list(connection.execute(BY_WHO))


def make_table(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, who TEXT, n INTEGER)")


@pytest.mark.parametrize("killed", ["hub", "member"])
async def test_kill_9_inside_a_transaction_while_others_write(tmp_path: Path, killed: str) -> None:
    path = tmp_path / "kill.db"
    make_table(path)
    async with workers() as started, contextlib.AsyncExitStack() as stack:
        if killed == "hub":  # the first to open the file hosts its hub
            holder = await start(started, "hold", path)
            assert await holder.expect("ready") == "ready hub"
        # Polling off: only the hub (and its successor) can tell this process of the others.
        db = await stack.enter_async_context(rxdb.open(path, foreign_poll=None))
        if killed == "member":
            holder = await start(started, "hold", path)
            assert await holder.expect("ready") == "ready member"
        writer = await start(started, "write", path)
        await writer.expect("committed 3")

        seen: Recorder[Any] = Recorder()
        stack.enter_context(subscribed(db.watch(BY_WHO), seen))
        await seen.wait_count(1)

        holder.send("begin")
        assert await holder.expect("inside") == "inside"  # it holds the write lock now
        ours = asyncio.create_task(db.execute("INSERT INTO t(who, n) VALUES ('test', 0)"))
        await holder.kill()
        await asyncio.wait_for(ours, WAIT)  # the lock came free with the process

        at_kill = dict(truth(path)).get("writer", 0)
        await writer.expect(f"committed {at_kill + 3}")  # writes carry on after the kill
        writer.send("stop")
        written = int((await writer.expect("done")).split()[1])
        assert await writer.process.wait() == 0

        expected = [("held-committed", 3), ("test", 1), ("writer", written)]
        assert truth(path) == expected  # nothing committed lost, no ghost row
        await seen.wait_value(expected)  # and the watcher converged on it
        assert seen.errors == []
        assert not [who for value in seen.values for who, _ in value if who == "ghost"]


async def test_kill_9_of_a_server_client_inside_a_transaction_while_others_write(
    tmp_path: Path,
) -> None:
    """The server (a process of its own) owns the file; one client process is killed inside
    its transaction while another client process, and this process, write through it."""
    path = tmp_path / "kill.db"
    make_table(path)
    server = await rxdb.spawn(str(path))
    async with workers() as started, contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(server.shutdown_all)
        handle = json.dumps(server.handle.to_json())
        remote = await server.handle.connect()
        stack.push_async_callback(remote.close)
        holder = await start(started, "hold", handle)
        assert await holder.expect("ready") == "ready client"
        writer = await start(started, "write", handle)
        await writer.expect("committed 3")

        seen: Recorder[Any] = Recorder()
        stack.enter_context(subscribed(remote.watch(BY_WHO), seen))
        await seen.wait_count(1)

        holder.send("begin")
        assert await holder.expect("inside") == "inside"  # its block holds the writer
        ours = asyncio.create_task(remote.execute("INSERT INTO t(who, n) VALUES ('test', 0)"))
        await holder.kill()
        await asyncio.wait_for(ours, WAIT)  # the server rolled the block back

        at_kill = dict(truth(path)).get("writer", 0)
        await writer.expect(f"committed {at_kill + 3}")
        writer.send("stop")
        written = int((await writer.expect("done")).split()[1])
        assert await writer.process.wait() == 0

        expected = [("held-committed", 3), ("test", 1), ("writer", written)]
        assert truth(path) == expected
        await seen.wait_value(expected)
        assert seen.errors == []
        assert not [who for value in seen.values for who, _ in value if who == "ghost"]

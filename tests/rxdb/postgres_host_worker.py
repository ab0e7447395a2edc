"""An app server of its own: a process that opens a PostgreSQL database with rxdb, for
tests/rxdb/test_postgres_hosts.py and test_postgres_failures.py; and :class:`Host`, which
runs one and talks to it.

Run as ``python -m tests.rxdb.postgres_host_worker URL``. The worker watches every query of
:data:`WATCHES` and speaks JSON lines: on stdout, ``rows`` (a watch's emission), ``done``
(a command's answer: ``error`` with its class and SQLSTATE if it failed) and ``holding``;
on stdin, commands:

- ``{"do": "execute", "sql": ...}``: run the statement, answer ``done``;
- ``{"do": "stats"}``: answer ``done`` with each watch's :class:`~rxdb.watch.stream.WatchStatistics`
  (a field's name to its value);
- ``{"do": "hold", "statements": [...]}``: open a transaction, run the statements in it, say
  ``holding`` and wait there, never committing (until the process is killed or stdin closes).

It closes the database and exits when its stdin closes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import rxdb

WATCHES = {
    "t": "SELECT count(*) AS n, coalesce(sum(x), 0) AS total FROM t",
    "other": "SELECT count(*) AS n FROM other",
}
"""What each worker watches: ``t`` is written by the tests; ``other`` stays unrelated."""

WAIT = 10.0
ROOT = Path(__file__).resolve().parents[2]


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


async def serve(url: str) -> None:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    async with rxdb.open(url) as db:
        streams = {name: db.watch(sql) for name, sql in WATCHES.items()}
        subscriptions = [
            stream.subscribe(
                on_next=functools.partial(_emit_rows, name),
                on_error=functools.partial(_emit_error, name),
            )
            for name, stream in streams.items()
        ]
        held: list[asyncio.Task[None]] = []
        try:
            while line := await commands.readline():
                command = json.loads(line)
                if command["do"] == "hold":
                    held.append(asyncio.create_task(_hold(db, command["statements"])))
                elif command["do"] == "stats":
                    emit(
                        "done",
                        stats={n: dataclasses.asdict(s.statistics()) for n, s in streams.items()},
                    )
                else:
                    try:
                        await db.execute(command["sql"])
                    except rxdb.DatabaseError as error:
                        emit("done", error=[type(error).__name__, error.sqlstate])
                    else:
                        emit("done")
        finally:
            for task in held:
                task.cancel()
            await asyncio.gather(*held, return_exceptions=True)
            for subscription in subscriptions:
                subscription.dispose()


def _emit_rows(watch: str, rows: list[rxdb.Row]) -> None:
    emit("rows", watch=watch, rows=[list(row) for row in rows])


def _emit_error(watch: str, error: Exception) -> None:
    emit("failed", watch=watch, error=repr(error))


async def _hold(db: rxdb.Database, statements: list[str]) -> None:
    async with db.transaction():
        for sql in statements:
            await db.execute(sql)
        emit("holding")
        await asyncio.Event().wait()


class Host:
    """One worker process: its watches' latest rows, and its commands' answers."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.rows: dict[str, list[list[Any]]] = {}
        self._answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._reading = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, url: str) -> Host:
        """Start a worker on ``url`` and wait for every watch's first rows."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.rxdb.postgres_host_worker",
            url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        host = cls(process)
        async with asyncio.timeout(WAIT):
            while len(host.rows) < len(WATCHES):
                await host._next_change()
        return host

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            event: dict[str, Any] = json.loads(line)
            if event["event"] == "rows":
                self.rows[event["watch"]] = event["rows"]
            else:
                self._answers.put_nowait(event)
            self._changed.set()
        self._changed.set()

    async def _next_change(self) -> None:
        assert not self._reading.done(), "the worker exited"
        self._changed.clear()
        await self._changed.wait()

    async def sees(self, watch: str, rows: list[list[Any]]) -> None:
        """Wait until the worker's watch ``watch`` last emitted ``rows``."""
        async with asyncio.timeout(WAIT):
            while self.rows.get(watch) != rows:
                await self._next_change()

    async def answer(self, event: str = "done") -> dict[str, Any]:
        """The worker's next answer, which must be ``event``."""
        answer = await asyncio.wait_for(self._answers.get(), WAIT)
        assert answer["event"] == event, answer
        return answer

    async def execute(self, sql: str) -> dict[str, Any]:
        """Run ``sql`` in the worker; its answer."""
        self._send({"do": "execute", "sql": sql})
        return await self.answer()

    async def statistics(self) -> dict[str, dict[str, Any]]:
        """Each watch's statistics in the worker, by watch name."""
        self._send({"do": "stats"})
        stats: dict[str, dict[str, Any]] = (await self.answer())["stats"]
        return stats

    async def hold(self, *statements: str) -> None:
        """Run ``statements`` in a transaction the worker keeps open."""
        self._send({"do": "hold", "statements": statements})
        await self.answer("holding")

    def _send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())

    def kill(self) -> None:
        """SIGKILL: the worker gets no chance to say goodbye to anyone."""
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> int:
        """Close its stdin, wait for it to exit (kill it if it will not); its exit status."""
        assert self.process.stdin is not None
        if not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), WAIT)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
            await self._reading
        code = self.process.returncode
        assert code is not None
        return code


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))

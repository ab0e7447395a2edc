"""Start a server process that owns a database (``:memory:`` included) and serves it.

The child is ``sys.executable -m rxdb.remote.processes.worker serve``. Its configuration
goes in as one JSON line on its stdin (strings, numbers, booleans: never pickle, and the
token stays out of the process list); it answers with one JSON line on stdout carrying the
:class:`~rxdb.remote.handle.ServerHandle`. It serves until its stdin says ``stop`` or
closes -- so a child never outlives a parent that died without shutting it down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from typing import Any, Final

from rxdb.errors import ProgrammingError, SpawnError
from rxdb.remote.handle import ServerHandle
from rxdb.remote.processes.worker import function_reference, start_worker

__all__ = ("SpawnedServer", "spawn")

STOP_TIMEOUT: Final = 10.0


class SpawnedServer:
    """A server running in a child process. Made by :func:`spawn`.

    :ivar handle: what clients connect with.
    :ivar pid: the child's process id.
    """

    def __init__(self, process: asyncio.subprocess.Process, handle: ServerHandle) -> None:
        self._process = process
        self.handle = handle
        self.pid = process.pid
        self._stopped = False

    def __repr__(self) -> str:
        return f"<rxdb.remote.SpawnedServer pid={self.pid} {self.handle.address}>"

    @property
    def closed(self) -> bool:
        return self._stopped

    async def __aenter__(self) -> SpawnedServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown_all()

    async def shutdown_all(self) -> None:
        """Stop the child: it disconnects every client (their pending calls fail with
        :class:`rxdb.ClosedError`), rolls back their transactions, closes the database and
        exits; the child is reaped. Killed if it does not exit in time. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        await _stop(self._process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.stdin is not None:
        with contextlib.suppress(Exception):
            process.stdin.write(b"stop\n")
            await process.stdin.drain()
        process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
    finally:
        if process.stdout is not None:
            # Drain what is left so the pipe's transport closes cleanly.
            with contextlib.suppress(Exception):
                await process.stdout.read()


async def spawn(
    path_or_factory: str | os.PathLike[str] | Callable[..., Any],
    *,
    host: str | None = None,
    port: int = 0,
    token: str | None = None,
    name: str | None = None,
    allow_remote: bool = False,
    startup_timeout: float = 30.0,
    **options: Any,
) -> SpawnedServer:
    """Start a process that owns a database and serves it; return once it accepts clients.

    :param path_or_factory: a database path, opened in the child with
        ``rxdb.open(path, **options)`` (``":memory:"`` works: the child owns it); or a
        module-level function, called in the child with no arguments and returning an open
        :class:`rxdb.Database` or an awaitable of one. The function travels by reference
        (``"module:qualname"``), so the child must be able to import its module. A string is
        always a path.
    :param options: options of :class:`rxdb.Database` (JSON values only), for a path.
    :param host, port, token, name, allow_remote: as for :func:`rxdb.serve`.
    :raises rxdb.SpawnError: if the child fails to start or to open the database.
    :raises rxdb.ProgrammingError: for a factory that is not a module-level function, or
        options that are not JSON values.
    """
    config: dict[str, Any] = {
        "host": host,
        "port": port,
        "token": token,
        "name": name,
        "allow_remote": allow_remote,
        "options": options,
    }
    if callable(path_or_factory):
        config["factory"] = function_reference(path_or_factory)
    else:
        config["path"] = os.fspath(path_or_factory)
    try:
        line = json.dumps(config).encode() + b"\n"
    except (TypeError, ValueError) as error:
        raise ProgrammingError(f"spawn options must be JSON values: {error}") from None
    process = await start_worker("serve")
    try:
        if process.stdin is None or process.stdout is None:
            raise SpawnError("the server process has no pipes to talk through")
        process.stdin.write(line)
        await process.stdin.drain()
        answer = await asyncio.wait_for(process.stdout.readline(), startup_timeout)
        if not answer:
            code = await process.wait()
            raise SpawnError(f"the server process exited with code {code} before it was ready")
        handle = _handle_in(answer)
    except BaseException:
        await _stop(process)
        raise
    return SpawnedServer(process, handle)


def _handle_in(answer: bytes) -> ServerHandle:
    """The handle in the child's first line, which says ready or why not.

    :raises rxdb.SpawnError: if it failed, or said something else.
    """
    try:
        reply = json.loads(answer)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise SpawnError(f"the server process answered {answer[:200]!r}, not its handle")
    if reply.get("event") != "ready":
        raise SpawnError(
            f"the server process failed to start: {reply.get('error', 'unknown error')}"
        )
    try:
        return ServerHandle.from_json(reply.get("handle"))
    except ProgrammingError as error:
        raise SpawnError(f"the server process answered a broken handle: {error}") from None

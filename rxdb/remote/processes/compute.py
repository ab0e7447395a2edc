"""``compute_with_database``: run a function in a worker process against the same database.

Drift's ``computeWithDatabase``: heavy work (CPU-bound parsing, a bulk import) runs in
another process, so it neither blocks this event loop nor holds the GIL, while its writes
still refresh every watch. A file database is opened by the worker itself (its commits reach
watches here through the cross-process machinery: the hub, and ``PRAGMA data_version``
polling within ~50 ms). A served database -- a :class:`~rxdb.ServerHandle`, a
``RemoteDatabase``, a spawned server, or a database this process serves -- is reached through
its server, which is the only way to share ``:memory:``.

The function travels by reference (``"module:qualname"``); its arguments and result travel
as rxdb protocol values (``None``, integers, floats, text, bytes, lists, maps with text
keys, rows): never pickle.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from rxdb.database import ConnectionHandle, Database
from rxdb.errors import ProgrammingError, ProtocolError, SpawnError
from rxdb.remote.client.database import RemoteDatabase
from rxdb.remote.processes.spawn import SpawnedServer
from rxdb.remote.processes.worker import function_reference, start_worker
from rxdb.remote.server.server import Server
from rxdb.remote.wire.endpoint import Endpoint
from rxdb.remote.wire.errors import error_from_wire
from rxdb.remote.wire.frames import FrameDecoder, encode_frame
from rxdb.remote.wire.messages import Failure, Request, Response, decode_message, encode_message
from rxdb.remote.wire.operations import Compute, OpenFile

__all__ = ("compute_with_database",)


async def compute_with_database(
    target: Database | RemoteDatabase | Endpoint | Server | SpawnedServer,
    fn: Callable[..., Any] | str,
    *args: Any,
) -> Any:
    """Run ``await fn(db, *args)`` in a new worker process and return its result.

    ``db`` in the worker is the same database: the file opened anew, or a connection to the
    server. Errors raised by ``fn`` come back as rxdb errors of the same class, or as
    :class:`rxdb.RemoteError` for other exceptions.

    :param fn: a module-level ``async def`` function, or its ``"module:qualname"``.
    :raises rxdb.ProgrammingError: for a lambda, closure or other function the worker cannot
        import, one that is not ``async``, arguments that cannot travel, or an in-memory
        database that is not served.
    :raises rxdb.SpawnError: if the worker process ends without an answer.
    """
    reference = function_reference(fn)
    if callable(fn) and not asyncio.iscoroutinefunction(fn):
        raise ProgrammingError(f"{reference} must be an async function: async def fn(db, *args)")
    job = Compute(reference, list(args), await _target(target))
    try:
        payload = encode_message(Request(1, job))
    except ProtocolError as error:
        raise ProgrammingError(
            f"the arguments cannot be sent to a worker process: {error}"
        ) from None
    process = await start_worker("compute")
    try:
        out, _ = await process.communicate(encode_frame(payload))
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    try:
        payloads = FrameDecoder().feed(out)
        reply = decode_message(payloads[0]) if len(payloads) == 1 else None
    except ProtocolError as error:
        raise ProtocolError(f"the worker process sent a malformed answer: {error}") from None
    if isinstance(reply, Response):
        return reply.result
    if isinstance(reply, Failure):
        raise error_from_wire(reply.error)
    raise SpawnError(f"the worker process exited with code {process.returncode} without an answer")


async def _target(target: object) -> Endpoint | OpenFile:
    if isinstance(target, Endpoint):
        return target
    if isinstance(target, Server | SpawnedServer | RemoteDatabase):
        return target.handle
    if isinstance(target, Database):
        handle = await target.serializable_connection()
        if isinstance(handle, Endpoint):
            return handle  # served: the worker connects to its server
        if isinstance(handle, ConnectionHandle):
            if handle.path == ":memory:" or handle.key.startswith("memory:"):
                raise ProgrammingError(
                    "an in-memory database lives only in this process: serve it first "
                    "(rxdb.serve(db)) or spawn it, then pass the server's handle"
                )
            return OpenFile(handle.path, dict(handle.options))
    raise ProgrammingError(f"cannot compute with {target!r}: pass a Database, a handle or a server")

"""Waiting properly for aiosqlite's worker threads: their work, their start and their end."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

import aiosqlite

__all__ = ("close_connection", "open_connection", "uninterrupted")

T = TypeVar("T")


async def uninterrupted(operation: Awaitable[T]) -> T:
    """Await ``operation`` to its end even if the caller is cancelled meanwhile, then let the
    cancellation through.

    Once a statement is queued on a worker thread it will run; if cancellation let the caller
    go on first, it would decide about locks and rollbacks before knowing whether (say) its
    BEGIN took effect, or drop a connection that is still being opened.
    """
    future = asyncio.ensure_future(operation)
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait([future])  # unlike awaiting it, this never cancels it
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        future.exception()  # retrieved: the cancellation is what the caller gets
        raise asyncio.CancelledError
    return future.result()


async def open_connection(path: str, **kwargs: Any) -> aiosqlite.Connection:
    """Open an aiosqlite connection; if that fails, wait until its worker thread has ended.

    aiosqlite stops the worker of a failed connect without waiting for it, and the worker
    then reports to the event loop — which may be closed by then (an error in a thread).
    """
    conn = aiosqlite.connect(path, **kwargs)
    try:
        return await conn
    except BaseException:
        _join_worker(conn)
        raise


async def close_connection(conn: aiosqlite.Connection) -> None:
    """Close an aiosqlite connection and wait until its worker thread has ended.

    ``aiosqlite.Connection.close`` returns as soon as the worker answered; the thread itself
    ends a moment later. Joining it (microseconds) makes "no thread left after close" hold.
    """
    await conn.close()
    _join_worker(conn)


def _join_worker(conn: aiosqlite.Connection) -> None:
    thread = getattr(conn, "_thread", None)  # aiosqlite keeps it private
    if isinstance(thread, threading.Thread) and thread.is_alive():
        thread.join(_JOIN_TIMEOUT)


_JOIN_TIMEOUT = 5.0

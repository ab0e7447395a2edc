"""Carry a stream's values to a peer that may go away at any moment (SSE, WebSocket).

The plain recipe (``async for rows in db.watch(...): yield ...`` inside a streaming response)
notices a closed browser tab only when its next send fails, and a watch whose tables do not
change never sends: the subscription lives on, one per closed tab. Here the peer's
disconnect is awaited beside the stream, so it ends the relay at once, even in the middle of
a send that a stalled client never lets finish.

A client that never reads stalls the send; meanwhile the source is not asked for its next
value. rxdb's streams keep only their newest result for a reader that is not asking (a newer
result replaces an unsent one), so nothing queues up however many commits arrive.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeAlias, TypeVar

from reactivex import Observable

from rxdb.errors import ProgrammingError
from rxdb.streams import QueryIterator

__all__ = ("Ending", "Source", "check_source", "relay")

T = TypeVar("T")

Source: TypeAlias = AsyncIterable[T] | Observable[T]


class Ending(enum.Enum):
    """Why a relay ended."""

    GONE = "the peer went away"
    COMPLETED = "the stream completed"
    FAILED = "the stream failed"


async def relay(
    source: Source[T],
    deliver: Callable[[T], Awaitable[None]],
    *,
    gone: Callable[[], Awaitable[None]],
    idle: Callable[[], Awaitable[None]] | None = None,
    idle_after: float | None = None,
    failed: Callable[[Exception], Awaitable[None]] | None = None,
    closed: tuple[type[Exception], ...] = (OSError,),
) -> Ending:
    """Deliver each value of ``source`` until it ends, fails, or the peer goes away.

    ``gone`` returns when the peer has gone away; a delivery that raises one of ``closed``
    (a failed send) counts as the same. ``idle`` is awaited after ``idle_after`` seconds without
    a delivery (keep-alives). ``failed`` tells the peer about the stream's error. Whatever
    the ending, the subscription to ``source`` is released before this returns.
    """
    values = _iterate(source)
    peer_gone = asyncio.ensure_future(gone())
    upcoming: asyncio.Future[T] | None = None
    try:
        while True:
            if upcoming is None:
                upcoming = asyncio.ensure_future(anext(values))
            timeout = None if idle is None else idle_after
            done, _ = await asyncio.wait(
                (upcoming, peer_gone), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if peer_gone in done:
                break
            if not done:  # only with a timeout, so idle is set
                if idle is not None and not await _unless_gone(idle(), peer_gone, closed):
                    break
                continue
            finished, upcoming = upcoming, None
            try:
                value = finished.result()
            except StopAsyncIteration:
                await _close(values)
                return Ending.COMPLETED
            except Exception as error:
                await _close(values)
                return await _report(error, failed, peer_gone, closed)
            try:
                if not await _unless_gone(deliver(value), peer_gone, closed):
                    break
            except Exception as error:  # the value could not be encoded
                await _close(values)
                return await _report(error, failed, peer_gone, closed)
        # The peer went away: stop asking for the next value, then release the subscription.
        if upcoming is not None:
            _discard(upcoming)
            await asyncio.wait((upcoming,))  # an async generator cannot close while it runs
        await _close(values)
        return Ending.GONE
    except BaseException:
        # Cancelled (the server is shutting down): nothing more may be awaited here, or a
        # canceller that cancels again while it waits (anyio's cancel scopes) would see its
        # cancellation escape. The subscription is released on the next turns of the loop.
        _discard(upcoming)
        _in_background(_close_after(upcoming, values))
        raise
    finally:
        _discard(peer_gone)


async def _report(
    error: Exception,
    failed: Callable[[Exception], Awaitable[None]] | None,
    peer_gone: asyncio.Future[None],
    closed: tuple[type[Exception], ...],
) -> Ending:
    if failed is not None and not await _unless_gone(failed(error), peer_gone, closed):
        return Ending.GONE
    return Ending.FAILED


async def _unless_gone(
    step: Awaitable[None], peer_gone: asyncio.Future[None], closed: tuple[type[Exception], ...]
) -> bool:
    """Run ``step`` unless the peer goes away first; False if it did (or the send failed)."""
    task = asyncio.ensure_future(step)
    try:
        done, _ = await asyncio.wait((task, peer_gone), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        _discard(task)
        raise
    if task not in done:
        _discard(task)  # a send the peer will never read: not awaited, it may never end
        return False
    try:
        task.result()
    except closed:
        return False
    return True


def check_source(source: object) -> None:
    """Refuse, at once, what :func:`relay` could not iterate.

    :raises rxdb.ProgrammingError: naming ``source`` and the type it got.
    """
    if not isinstance(source, AsyncIterable | Observable):
        raise ProgrammingError(
            "source must be an rxdb stream (db.watch(...), an Observable or an async "
            f"iterable), not {type(source).__name__}"
        )


def _iterate(source: Source[T]) -> AsyncIterator[T]:
    if isinstance(source, AsyncIterable):
        return aiter(source)
    return QueryIterator(source)  # keeps the newest value only, as rxdb's streams do


async def _close(values: AsyncIterator[Any]) -> None:
    close = getattr(values, "aclose", None)
    if close is not None:
        await close()


async def _close_after(upcoming: asyncio.Future[Any] | None, values: AsyncIterator[Any]) -> None:
    if upcoming is not None:
        await asyncio.wait((upcoming,))  # an async generator cannot close while it runs
    await _close(values)


def _discard(future: asyncio.Future[Any] | None) -> None:
    """Cancel ``future`` without waiting for it; whatever it ends with is retrieved."""
    if future is not None:
        future.cancel()
        future.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


_BACKGROUND: set[asyncio.Task[None]] = set()  # strong references until they finish


def _in_background(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(work)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)

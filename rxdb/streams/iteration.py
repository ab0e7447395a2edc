"""``async for`` over a stream: :class:`QueryIterator`, newest value first, never a backlog."""

from __future__ import annotations

import asyncio
import weakref
from typing import Final, Generic, TypeVar

from reactivex import abc

__all__ = ("QueryIterator",)

V = TypeVar("V")


class _Nothing:
    pass


_NOTHING: Final = _Nothing()


class _Slot(Generic[V]):
    """The newest value not yet taken by an iterator, kept apart from the iterator itself so
    the subscription never holds the iterator alive (leaving ``async for`` frees it)."""

    __slots__ = ("done", "error", "event", "value")

    def __init__(self) -> None:
        self.value: V | _Nothing = _NOTHING
        self.error: BaseException | None = None
        self.done = False
        self.event = asyncio.Event()

    def on_next(self, value: V) -> None:
        self.value = value
        self.event.set()

    def on_error(self, error: Exception) -> None:
        self.error = error
        self.done = True
        self.event.set()

    def on_completed(self) -> None:
        self.done = True
        self.event.set()


class QueryIterator(Generic[V]):
    """``async for rows in db.watch(...)``: yields the newest value, never a backlog.

    Leaving the loop (``break``, ``return``, an exception) releases the subscription as soon
    as the iterator is dropped (at once on CPython); :meth:`aclose` releases it explicitly.
    """

    def __init__(self, stream: abc.ObservableBase[V]) -> None:
        self._slot: _Slot[V] = _Slot()
        slot = self._slot
        subscription = stream.subscribe(slot.on_next, slot.on_error, slot.on_completed)
        self._finalizer = weakref.finalize(self, subscription.dispose)

    def __aiter__(self) -> QueryIterator[V]:
        return self

    async def __anext__(self) -> V:
        slot = self._slot
        while True:
            if not isinstance(slot.value, _Nothing):
                value, slot.value = slot.value, _NOTHING
                slot.event.clear()
                return value
            if slot.done:
                self._finalizer()
                if slot.error is not None:
                    error, slot.error = slot.error, None
                    raise error
                raise StopAsyncIteration
            await slot.event.wait()

    async def aclose(self) -> None:
        self._finalizer()

"""``async for`` over a stream: :class:`QueryIterator`, newest value first, never a backlog."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar, overload

from reactivex import abc

__all__ = ("QueryIterator", "taken")

V = TypeVar("V")
S = TypeVar("S")


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

    @overload
    def __init__(self: QueryIterator[V], stream: abc.ObservableBase[V]) -> None: ...
    @overload
    def __init__(
        self: QueryIterator[V], stream: abc.ObservableBase[S], take: Callable[[S], V]
    ) -> None: ...
    def __init__(
        self, stream: abc.ObservableBase[Any], take: Callable[[Any], V] | None = None
    ) -> None:
        # ``take`` makes the value when the loop body asks for it, from the newest one the
        # stream gave: what depends on every value before it (a diff) is then made against
        # the value the body saw last, and no skipped value is lost in it.
        self._take = take
        self._slot: _Slot[Any] = _Slot()
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
                return taken(self._take, value, self._finalizer)
            if slot.done:
                self._finalizer()
                if slot.error is not None:
                    error, slot.error = slot.error, None
                    raise error
                raise StopAsyncIteration
            await slot.event.wait()

    async def aclose(self) -> None:
        self._finalizer()


def taken(take: Callable[[Any], V] | None, value: Any, release: Callable[[], object]) -> V:
    """``value`` as a loop body gets it: made by ``take`` if there is one. A ``take`` that
    fails (a diff of a result with a duplicated key) ends the iteration: the subscription is
    released first."""
    if take is None:
        return value  # type: ignore[no-any-return]
    try:
        return take(value)
    except BaseException:
        release()
        raise

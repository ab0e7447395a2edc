"""A client's subscriptions: watches and table updates the server pushes events for.

Each subscription has an id on the connection; the server's events for it are delivered to
its observer on the client's loop. A watch or table-updates subscription outlives a lost
connection when the client reconnects: it is asked for again on the new one (whose first
result it re-emits). A backup's progress belongs to its call and ends with the connection.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from rxdb.errors import ConnectionLostError, ProtocolError
from rxdb.remote.client.connection import Connection
from rxdb.remote.wire.errors import error_from_wire
from rxdb.remote.wire.messages import Event, EventKind
from rxdb.remote.wire.operations import Operation, Unsubscribe
from rxdb.remote.wire.states import state_from_wire
from rxdb.watch.states import WatchState

__all__ = ("RemoteObservable", "Request", "Subscriptions", "states_of")

LOG = logging.getLogger("rxdb.remote")

T = TypeVar("T")

Request = Callable[[int], Operation]
"""Makes the operation that subscribes under a given id (again, after a reconnection)."""


@dataclass
class _Entry:
    observer: abc.ObserverBase[Any]
    convert: Callable[[Any], Any]
    request: Request | None  # None: never asked for again on a new connection


class Subscriptions:
    """The subscriptions of one client, by id."""

    def __init__(self, connection: Connection, shape: object) -> None:
        self._connection = connection
        self._shape = shape  # what errors name
        self._thread = threading.get_ident()
        self._ids = itertools.count(1)
        self._entries: dict[int, _Entry] = {}

    def subscribe(
        self, request: Request, observer: abc.ObserverBase[Any], convert: Callable[[Any], Any]
    ) -> abc.DisposableBase:
        """Ask the server for a subscription; disposing it tells the server to stop.

        :raises rxdb.ClosedError: when the client is closed or lost for good.
        :raises rxdb.ProgrammingError: if the request cannot be sent.
        """
        connection = self._connection
        connection.check(self._shape)
        sub_id = next(self._ids)
        entry = _Entry(observer, convert, request)
        # Registered before the request goes out: the first event may follow at once.
        self._entries[sub_id] = entry
        if connection.lost is None:
            try:
                self._ask(sub_id, entry, raising=True)
            except BaseException:
                del self._entries[sub_id]
                raise
        # else: reconnecting; asked for when the connection is back

        def dispose() -> None:
            if self._entries.pop(sub_id, None) is None or connection.loop.is_closed():
                return
            if threading.get_ident() == self._thread:
                self._stop(sub_id)
                return
            with contextlib.suppress(RuntimeError):
                connection.loop.call_soon_threadsafe(self._stop, sub_id)

        return Disposable(dispose)

    def track(self, observer: abc.ObserverBase[Any], convert: Callable[[Any], Any]) -> int:
        """An id for events the server pushes for a call of this client (a backup's
        progress), never asked for again."""
        sub_id = next(self._ids)
        self._entries[sub_id] = _Entry(observer, convert, None)
        return sub_id

    def forget(self, sub_id: int) -> bool:
        """Stop delivering ``sub_id``'s events; whether it was still there."""
        return self._entries.pop(sub_id, None) is not None

    def unsubscribe(self, sub_id: int) -> None:
        """Forget ``sub_id`` and tell the server."""
        if self.forget(sub_id):
            self._stop(sub_id)

    def _stop(self, sub_id: int) -> None:
        self._connection.fire(Unsubscribe(sub_id), self._shape)

    def deliver(self, event: Event) -> None:
        entry = self._entries.get(event.subscription_id)
        if entry is None:
            return  # disposed meanwhile
        if event.kind is EventKind.NEXT:
            try:
                value = entry.convert(event.value)
            except ProtocolError as error:
                del self._entries[event.subscription_id]
                _safely(entry.observer.on_error, error)
                return
            _safely(entry.observer.on_next, value)
            return
        del self._entries[event.subscription_id]
        if event.error is not None:
            _safely(entry.observer.on_error, error_from_wire(event.error))
        else:
            _safely(entry.observer.on_completed)

    def end_all(self, error: Exception | None) -> None:
        """End every subscription: with ``error``, or completed (``None``: a close)."""
        entries, self._entries = self._entries, {}
        for entry in entries.values():
            if error is None:
                _safely(entry.observer.on_completed)
            else:
                _safely(entry.observer.on_error, error)

    def drop_calls(self) -> None:
        """Forget what belonged to calls of the lost connection (a backup's progress)."""
        for sub_id, entry in list(self._entries.items()):
            if entry.request is None:
                del self._entries[sub_id]

    def ask_again(self) -> None:
        """Ask the new connection for every subscription still wanted."""
        for sub_id, entry in list(self._entries.items()):
            self._ask(sub_id, entry)

    def _ask(self, sub_id: int, entry: _Entry, *, raising: bool = False) -> None:
        """Ask the server for subscription ``sub_id``; a refusal ends it with the error."""
        if entry.request is None:
            return
        try:
            future = self._connection.start(entry.request(sub_id), self._shape)
        except Exception as error:
            if raising:
                raise
            if self._entries.pop(sub_id, None) is not None:
                _safely(entry.observer.on_error, error)
            return

        def started(done: Any) -> None:
            if done.cancelled():
                return
            error = done.exception()
            if error is None:
                return
            if isinstance(error, ConnectionLostError) and not self._connection.gone:
                return  # reconnecting: asked for again on the next connection
            if self._entries.get(sub_id) is entry:
                del self._entries[sub_id]
                _safely(entry.observer.on_error, error)

        future.add_done_callback(started)


class RemoteObservable(Observable[T]):
    """An Observable the server feeds, delivered on the client's loop."""

    def __init__(
        self, subscriptions: Subscriptions, request: Request, convert: Callable[[Any], T]
    ) -> None:
        super().__init__()
        self._subscriptions = subscriptions
        self._request = request
        self._convert = convert

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return self._subscriptions.subscribe(self._request, observer, self._convert)


def states_of(convert: Callable[[Any], T]) -> Callable[[Any], WatchState[T]]:
    """How a state event's value becomes a :class:`rxdb.WatchState`, its value checked by
    ``convert`` (a malformed one: :class:`rxdb.ProtocolError`, ending that subscription)."""
    return lambda value: state_from_wire(value, convert)


def _safely(callback: Callable[..., Any], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:
        LOG.exception("a subscriber of a remote watch raised; other subscribers are unaffected")

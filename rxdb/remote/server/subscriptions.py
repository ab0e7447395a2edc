"""The subscriptions one client holds on the server: watches, table updates, a backup's
progress. Each pushes events to the client under the id the client chose."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from reactivex import abc

from rxdb.api import Subscribable
from rxdb.errors import LimitError, ProgrammingError
from rxdb.remote.wire.errors import error_to_wire
from rxdb.remote.wire.messages import Event, EventKind

__all__ = ("Subscriptions",)


class _Pending(abc.DisposableBase):
    """Stands in for a subscription while ``subscribe()`` runs."""

    def dispose(self) -> None:
        pass


class Subscriptions:
    """The subscriptions of one client connection, by id.

    :param send: sends an event to the client (one that cannot travel ends its
        subscription with the error instead).
    :param changed: called whenever one is added or removed (the server's ``wait_until``).
    :param limit: how many may be open at once.
    """

    def __init__(
        self, send: Callable[[Event], None], changed: Callable[[], None], limit: int
    ) -> None:
        self.active: dict[int, abc.DisposableBase] = {}
        self.closed = False
        self.limit = limit
        self._send = send
        self._changed = changed

    def __len__(self) -> int:
        return len(self.active)

    def new_id(self, sub_id: int) -> int:
        """:raises rxdb.ProgrammingError: if the client already uses ``sub_id``.
        :raises rxdb.LimitError: if the connection holds as many as it may."""
        if sub_id in self.active:
            raise ProgrammingError(f"subscription {sub_id} already exists on this connection")
        if len(self.active) >= self.limit:
            raise LimitError(
                f"this connection already has {len(self.active)} subscriptions open, the "
                f"server's max_subscriptions: end some before starting more"
            )
        return sub_id

    def add(self, sub_id: int, disposable: abc.DisposableBase) -> None:
        """Hold ``disposable`` (a backup) under ``sub_id`` until :meth:`drop`."""
        self.active[sub_id] = disposable
        self._changed()

    def subscribe(self, sub_id: int, stream: Subscribable, convert: Callable[[Any], Any]) -> None:
        """Subscribe to ``stream`` for the client: every value, the error or the completion
        becomes an event of ``sub_id``."""

        def on_next(value: Any) -> None:
            if sub_id in self.active:
                self._send(Event(sub_id, EventKind.NEXT, convert(value)))

        def on_error(error: Exception) -> None:
            if self.active.pop(sub_id, None) is not None:
                self._changed()
                self._send(Event(sub_id, EventKind.ERROR, None, error_to_wire(error)))

        def on_completed() -> None:
            if self.active.pop(sub_id, None) is not None:
                self._changed()
                self._send(Event(sub_id, EventKind.COMPLETE))

        # Registered first: the first value may be delivered during subscribe().
        self.add(sub_id, _Pending())
        try:
            disposable = stream.subscribe(on_next, on_error, on_completed)
        except BaseException:
            if self.active.pop(sub_id, None) is not None:
                self._changed()
            raise
        if sub_id in self.active and not self.closed:
            self.active[sub_id] = disposable
        else:
            disposable.dispose()

    def drop(self, sub_id: int) -> None:
        """End ``sub_id`` (the client unsubscribed, or its event could not be sent)."""
        subscription = self.active.pop(sub_id, None)
        if subscription is not None:
            self._changed()
            subscription.dispose()

    def drop_if(self, sub_id: int, disposable: abc.DisposableBase) -> None:
        """Forget ``sub_id`` if it is still ``disposable`` (a finished backup's progress)."""
        if self.active.get(sub_id) is disposable:
            del self.active[sub_id]
            self._changed()

    def dispose_all(self) -> None:
        """The client is gone: dispose of everything, accept nothing more."""
        self.closed = True
        active, self.active = list(self.active.values()), {}
        for subscription in active:
            with contextlib.suppress(Exception):  # one failing dispose must not keep the rest
                subscription.dispose()
        self._changed()

"""One client connection of a database server: its handshake, its requests, and its end.

:mod:`rxdb.remote.server.server` listens and hands each accepted connection to a
:class:`Session`. A session answers each request in a task of its own
(:mod:`rxdb.remote.server.operations` does the work), holds the client's blocks
(:mod:`rxdb.remote.server.blocks`) and subscriptions
(:mod:`rxdb.remote.server.subscriptions`), and when the connection ends for any reason
interrupts the statements still running in those blocks, rolls the blocks back (a read block
gives its connection back) and disposes the watches, so a dead client leaves no trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import urllib.parse
from collections.abc import Callable
from typing import Any, Final, Protocol

from rxdb.api import AsyncDatabase
from rxdb.errors import LimitError, ProgrammingError, ProtocolError
from rxdb.remote.server.blocks import Blocks
from rxdb.remote.server.limits import RELEASE_HEADROOM, ConnectionLimits
from rxdb.remote.server.operations import Operations
from rxdb.remote.server.subscriptions import Subscriptions
from rxdb.remote.wire.channel import KEEPALIVE, Channel, checked_payload
from rxdb.remote.wire.errors import error_to_wire
from rxdb.remote.wire.frames import DEFAULT_MAX_PAYLOAD, HANDSHAKE_MAX_PAYLOAD, encode_frame
from rxdb.remote.wire.messages import (
    BadRequest,
    Event,
    EventKind,
    Goodbye,
    Hello,
    Message,
    Refused,
    Request,
    UnsupportedVersionError,
    Welcome,
)
from rxdb.remote.wire.operations import End, Interrupt, Unsubscribe
from rxdb.remote.wire.stream import FramedStream

__all__ = ("HANDSHAKE_TIMEOUT", "MAX_BUFFERED", "SHUTDOWN_GRACE", "Host", "Session")

LOG = logging.getLogger("rxdb.remote")

HANDSHAKE_TIMEOUT: Final = 10.0
"""Seconds a new connection has to say hello; a silent stranger must not hold a slot."""
MAX_BUFFERED: Final = 64 * 1024 * 1024
"""Bytes queued for one client before it is dropped as too slow (its watches would otherwise
make the server buffer without bound)."""
SHUTDOWN_GRACE: Final = 5.0
"""Seconds a shutdown lets running statements finish before cancelling them."""


class Host(Protocol):
    """What a session needs of its server."""

    @property
    def db(self) -> AsyncDatabase: ...

    @property
    def epoch(self) -> str: ...

    @property
    def limits(self) -> ConnectionLimits: ...

    def admits(self, token: bytes | None) -> bool:
        """Whether a client presenting ``token`` may connect."""
        ...

    def refused(self, what: str, reason: str) -> None:
        """Warn of a connection refused or closed for misbehaving (rate-limited)."""
        ...

    def state_changed(self) -> None:
        """Wake the server's ``wait_until`` waiters."""
        ...

    async def wait_until(self, predicate: Callable[[], bool]) -> None: ...


class _Abort(Exception):
    """Ends a connection for a reason worth logging at warning level."""


class Session:
    """One client connection: its handshake, requests, open blocks and subscriptions."""

    def __init__(
        self,
        host: Host,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        label: str,
    ) -> None:
        self.host = host
        self.label = label
        stream = FramedStream(
            reader,
            writer,
            label,
            HANDSHAKE_MAX_PAYLOAD,
            log=LOG,
            too_slow="dropping rxdb client connection %s: it reads too slowly (%d bytes queued)",
        )
        self.channel = Channel(stream, max_buffered=MAX_BUFFERED)
        self.blocks = Blocks(host.db, host.state_changed)
        self.subscriptions = Subscriptions(
            self._send_event, host.state_changed, host.limits.max_subscriptions
        )
        self.operations = Operations(host.db, self.blocks, self.subscriptions, self._send_event)
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self._closing: asyncio.Future[None] | None = None

    # -- the connection ---------------------------------------------------------------------

    async def run(self) -> None:
        reason = "the client disconnected"
        try:
            if await self._handshake():
                self.channel.stream.decoder.max_payload = DEFAULT_MAX_PAYLOAD
                try:
                    goodbye = await self.channel.converse(
                        self._dispatch, patience=KEEPALIVE.timeout
                    )
                except TimeoutError:
                    raise _Abort(
                        f"silent for {KEEPALIVE.timeout:g} s (no ping): taken for dead"
                    ) from None
                if goodbye is not None:
                    reason = f"the client said goodbye: {goodbye}"
                    LOG.debug("rxdb client %s says goodbye: %s", self.label, goodbye)
        except (ProtocolError, _Abort) as error:
            reason = f"protocol error: {error}" if isinstance(error, ProtocolError) else str(error)
            self.host.refused(f"closing rxdb client connection {self.label}", str(error))
        except (ConnectionError, OSError) as error:
            reason = f"connection failed: {error}"
            LOG.info("rxdb client connection %s failed: %s", self.label, error)
        except TimeoutError:
            reason = "no hello in time"
            self.host.refused(
                f"closing rxdb client connection {self.label}",
                f"no hello within {HANDSHAKE_TIMEOUT:g} s",
            )
        finally:
            await self.close(reason)

    async def _handshake(self) -> bool:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                message = await self.channel.receive()
        except UnsupportedVersionError as error:
            self._send(Refused(str(error)))
            raise
        if message is None:
            return False
        if not isinstance(message, Hello):
            raise _Abort(f"expected hello, got {type(message).__name__.lower()}")
        if not self.host.admits(message.token):
            self._send(Refused("wrong or missing token"))
            raise _Abort("wrong or missing token")
        self._send(Welcome(os.getpid(), self.host.epoch, without_password(self.host.db.path)))
        LOG.debug("rxdb client %s connected (pid %d)", self.label, message.process_id)
        return True

    def _send(self, message: Message) -> None:
        if self.closed and not isinstance(message, Goodbye | Refused):
            return
        self.channel.send(message)

    def _send_event(self, event: Event) -> None:
        """Send an event; one that cannot be encoded or is too large becomes an error that
        ends its subscription, never a broken connection."""
        if self.closed:
            return
        try:
            payload = checked_payload(event, "result")
        except ProtocolError as error:
            info = error_to_wire(error)
            self._send(Event(event.subscription_id, EventKind.ERROR, None, info))
            self.subscriptions.drop(event.subscription_id)
            return
        self.channel.send_frame(encode_frame(payload))

    async def close(self, reason: str, *, goodbye: bool = False) -> None:
        """End the connection: roll back its blocks, dispose its watches. Idempotent; a
        second caller waits for the first to finish."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closing = asyncio.get_running_loop().create_future()
        try:
            if goodbye:
                with contextlib.suppress(Exception):
                    self._send(Goodbye(reason))
            self.closed = True
            self.channel.stream.writer.close()
            self.subscriptions.dispose_all()
            self.operations.stop_backups("the client disconnected")
            rolled_back = await self.blocks.release(self.host.wait_until)
            if rolled_back:
                LOG.info(
                    "rolled back %d open transaction(s) of rxdb client %s: %s",
                    rolled_back,
                    self.label,
                    reason,
                )
            if goodbye and self.tasks:
                # Statements still running belong to a client that is going away.
                _, late = await asyncio.wait(list(self.tasks), timeout=SHUTDOWN_GRACE)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            await self.channel.stream.wait_closed()
        finally:
            self._closing.set_result(None)

    # -- requests ---------------------------------------------------------------------------

    def _dispatch(self, message: Message, payload: bytes) -> None:
        if isinstance(message, BadRequest):
            # The frame was whole: fail this request alone, as any other bad argument.
            LOG.debug("rxdb client %s: malformed request: %s", self.label, message.reason)
            self.channel.fail(message.id, ProgrammingError(f"malformed request: {message.reason}"))
            return
        if not isinstance(message, Request):
            raise _Abort(f"a client may not send {type(message).__name__.lower()}")
        limit = self.host.limits.max_requests
        if isinstance(message.operation, _RELEASING):
            limit += RELEASE_HEADROOM
        if len(self.tasks) >= limit:
            self.channel.fail(
                message.id,
                LimitError(
                    f"this connection already has {len(self.tasks)} requests running, the "
                    "server's max_requests: wait for some answers before sending more"
                ),
            )
            return
        # A fresh context: nothing of the reader task's scope leaks into the statement.
        task = asyncio.get_running_loop().create_task(
            self._answer(message), context=contextvars.Context()
        )
        self.tasks.add(task)
        task.add_done_callback(self._request_done)
        self.host.state_changed()

    def _request_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.host.state_changed()

    async def _answer(self, request: Request) -> None:
        try:
            result: Any = await self.operations.run(request.operation)
        except Exception as error:
            if not self.closed:
                self.channel.fail(request.id, error)
        else:
            if not self.closed:
                self.channel.answer(request.id, result)


_RELEASING: Final = (End, Unsubscribe, Interrupt)
"""Operations that free what a client holds: allowed a little over ``max_requests``."""


def without_password(path: str) -> str:
    """The database's path as a client may see it: a URL's password (a PostgreSQL database's,
    say) stays on the server; a file path or ``file:`` URI is shown as it is, except that a
    name that is not UTF-8 (decoded with surrogateescape) is shown escaped -- as it is, it
    could not be sent, and every handshake would fail."""
    try:
        path.encode()
    except UnicodeEncodeError:
        path = path.encode("utf-8", "backslashreplace").decode()
    parts = urllib.parse.urlsplit(path)
    if parts.password is None:
        return path
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{name}@{host}"))

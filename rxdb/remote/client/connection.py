"""The client's end of its server connection, and of the next one after a loss.

Every call becomes a request on a :class:`~rxdb.remote.wire.channel.Channel`, answered by a
response or a failure that the channel pairs with the waiting future. With a
:class:`Reconnect` policy, a lost connection is re-established in the background: every
connection has a *generation*, so that what belonged to a lost one (a block held on the
server) is never confused with what the new one holds. What happens to the client's
subscriptions on a loss, a reconnection or the end is its :class:`Listener`'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from rxdb.errors import (
    ClosedError,
    ConnectionLostError,
    ProgrammingError,
    ProtocolError,
    RxdbError,
    ServerRefusedError,
    WrongLoopError,
)
from rxdb.remote.wire.channel import KEEPALIVE, Channel
from rxdb.remote.wire.endpoint import Endpoint, tcp_address, token_bytes
from rxdb.remote.wire.frames import DEFAULT_MAX_PAYLOAD
from rxdb.remote.wire.messages import Event, Goodbye, Hello, Message, Refused, Welcome
from rxdb.remote.wire.operations import Operation
from rxdb.remote.wire.peers import peer_uid, uid_refusal
from rxdb.remote.wire.stream import FramedStream

__all__ = ("CONNECT_TIMEOUT", "Connection", "Listener", "Reconnect", "establish", "policy_of")

LOG = logging.getLogger("rxdb.remote")

CONNECT_TIMEOUT: Final = 10.0
"""Seconds to reach a server and finish the handshake before giving up (a dead server's
socket file may accept nothing; a hung one may never answer)."""


@dataclass(frozen=True, slots=True)
class Reconnect:
    """How a client reconnects after losing its server: ``connect(handle, reconnect=True)``
    uses the defaults, ``reconnect=Reconnect(...)`` others.

    The first attempt is made at once, then after ``first_delay`` seconds, doubling up to
    ``max_delay``. A handle with a ``name`` is looked up again on every attempt, so a named
    server restarted at a new address (and with a new token) is found.

    :ivar first_delay: seconds between the first two attempts.
    :ivar max_delay: the longest pause between two attempts.
    :ivar call_wait: seconds a call made while disconnected waits for the connection to come
        back before it raises :class:`rxdb.ConnectionLostError`.
    :ivar give_up_after: seconds without a connection after which the client stops trying:
        watches end with :class:`rxdb.ConnectionLostError` and calls raise it. ``None`` (the
        default) keeps trying until the database is closed.
    :raises rxdb.ProgrammingError: for delays out of order or negative waits.
    """

    first_delay: float = 0.05
    max_delay: float = 2.0
    call_wait: float = 10.0
    give_up_after: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.first_delay <= self.max_delay:
            raise ProgrammingError("Reconnect needs 0 < first_delay <= max_delay")
        if self.call_wait < 0 or (self.give_up_after is not None and self.give_up_after < 0):
            raise ProgrammingError("Reconnect's call_wait and give_up_after cannot be negative")


def policy_of(reconnect: bool | Reconnect) -> Reconnect | None:
    """The policy ``reconnect=`` asks for.

    :raises rxdb.ProgrammingError: for anything but a bool or a :class:`Reconnect`.
    """
    if reconnect is True:
        return Reconnect()
    if reconnect is False:
        return None
    if isinstance(reconnect, Reconnect):
        return reconnect
    raise ProgrammingError(f"reconnect must be a bool or a Reconnect, not {reconnect!r}")


async def establish(endpoint: Endpoint) -> tuple[Channel, Welcome]:
    """Open a connection to ``endpoint`` and say hello; return it and the server's welcome.

    :raises rxdb.ConnectionLostError: if the server cannot be reached or hangs up.
    :raises rxdb.ServerRefusedError: if it refuses this client, or (on a Unix socket) runs as
        a uid this client does not talk to (see :mod:`rxdb.remote.wire.peers`).
    """
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            if endpoint.kind == "unix":
                reader, writer = await asyncio.open_unix_connection(endpoint.address)
            else:
                host, port = tcp_address(endpoint.address)
                reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as error:
        raise ConnectionLostError(
            f"cannot reach the rxdb server at {endpoint.address}: {error or 'timed out'}"
        ) from error
    if endpoint.kind == "unix":
        allowed = frozenset() if endpoint.uid is None else frozenset({endpoint.uid})
        refusal = uid_refusal(
            peer_uid(writer),
            allowed,
            "server",
            " (a handle the server gave out names the server's uid, which admits it)",
        )
        if refusal is not None:
            # Not a word to it: the socket may have been put there by someone else.
            writer.close()
            raise ServerRefusedError(f"refusing the rxdb server at {endpoint.address}: {refusal}")
    label = f"to the rxdb server at {endpoint.address}"
    channel = Channel(FramedStream(reader, writer, label, DEFAULT_MAX_PAYLOAD))
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            welcome = await _handshake(channel, endpoint)
    except BaseException as error:
        await channel.stream.close()
        if isinstance(error, TimeoutError | OSError) and not isinstance(error, RxdbError):
            raise ConnectionLostError(
                f"the rxdb server at {endpoint.address} did not answer the handshake: "
                f"{error or 'timed out'}"
            ) from error
        raise
    return channel, welcome


async def _handshake(channel: Channel, endpoint: Endpoint) -> Welcome:
    token = None if endpoint.token is None else token_bytes(endpoint.token)
    channel.send(Hello(token, "client", os.getpid(), uuid.uuid4().hex[:16]))
    message = await channel.receive()
    if isinstance(message, Refused):
        raise ServerRefusedError(f"the rxdb server refused the connection: {message.reason}")
    if not isinstance(message, Welcome):
        raise ConnectionLostError(
            f"the rxdb server at {endpoint.address} hung up during the handshake"
        )
    return message


class Listener(Protocol):
    """What a connection tells its owner, on the client's loop."""

    def event_arrived(self, event: Event) -> None:
        """A subscription's event came."""
        ...

    def connection_lost(self, error: ConnectionLostError, *, for_good: bool) -> None:
        """The connection is gone; ``for_good``: no reconnection will follow."""
        ...

    def reconnected(self) -> None:
        """A new connection is up (the old one's blocks are gone)."""
        ...


class Connection:
    """One client's connection to its server, and the next one after a loss (with a
    reconnection policy). Bound to the loop that made it.

    :ivar endpoint: where the server is (a named one's latest address after a reconnection).
    :ivar generation: counts connections; what belongs to an older one is dead.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        channel: Channel,
        welcome: Welcome,
        policy: Reconnect | None,
        listener: Listener,
    ) -> None:
        self.endpoint = endpoint
        self.policy = policy
        self.loop = asyncio.get_running_loop()
        self.generation = 0
        self.closed = False
        self.lost: ConnectionLostError | None = None
        self._listener = listener
        self._channel = channel
        self._reader: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.database = welcome.database
        self.server_pid = welcome.process_id
        self._attach(channel, welcome)

    # -- state ------------------------------------------------------------------------------

    @property
    def reconnecting(self) -> bool:
        return self._reconnecting is not None

    @property
    def gone(self) -> bool:
        """Closed, or disconnected for good (reconnection off, or given up)."""
        return self.closed or (self.lost is not None and self._reconnecting is None)

    def check(self, shape: object) -> None:
        """:raises rxdb.ClosedError: (``ConnectionLostError`` if lost for good) when gone.
        :raises rxdb.WrongLoopError: on another loop than the one that connected."""
        if self.closed:
            raise ClosedError(f"{shape!r} is closed; connect the handle again")
        if self.lost is not None and self._reconnecting is None:
            raise ConnectionLostError(str(self.lost))
        if asyncio.get_running_loop() is not self.loop:
            raise WrongLoopError(
                f"{shape!r} belongs to another event loop; connect the handle on each loop"
            )

    async def wait_connected(self, shape: object) -> None:
        """Return once the connection is up (at once if it is).

        :raises rxdb.ConnectionLostError: if it is lost for good.
        :raises rxdb.ClosedError: once closed.
        """
        while True:
            if self.closed:
                raise ClosedError(f"{shape!r} is closed; connect the handle again")
            if self.lost is None:
                return
            if self._reconnecting is None:
                raise ConnectionLostError(str(self.lost))
            await self._changed.wait()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    def _state_changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- calls ------------------------------------------------------------------------------

    async def ready(self, shape: object) -> None:
        """Wait (at most the policy's ``call_wait``) for a lost connection to come back."""
        self.check(shape)
        if self.lost is None or self.policy is None:
            return
        try:
            async with asyncio.timeout(self.policy.call_wait):
                await self.wait_connected(shape)
        except TimeoutError:
            raise ConnectionLostError(
                f"{self.lost}; not reconnected within {self.policy.call_wait} s"
            ) from None

    def start(self, operation: Operation, shape: object) -> asyncio.Future[Any]:
        """Send ``operation`` now; its answer will settle the returned future.

        :raises rxdb.ProgrammingError: if it cannot be sent.
        :raises rxdb.ConnectionLostError: while disconnected.
        """
        self.check(shape)
        if self.lost is not None:
            raise ConnectionLostError(str(self.lost))
        return self._channel.call(operation)

    def fire(self, operation: Operation, shape: object) -> None:
        """Send ``operation`` without waiting for its answer (a failure is only logged)."""
        try:
            future = self.start(operation, shape)
        except ClosedError:
            return
        future.add_done_callback(_ignore)

    # -- the connection's life -----------------------------------------------------------

    def _attach(self, channel: Channel, welcome: Welcome) -> None:
        """Make ``channel`` (whose handshake is done) the connection."""
        self._channel = channel
        self.lost = None
        self.database = welcome.database
        self.server_pid = welcome.process_id
        # A fresh context: the reader must not carry the connecting task's blocks.
        self._reader = self.loop.create_task(
            self._converse(channel, self.generation), context=contextvars.Context()
        )

    async def _converse(self, channel: Channel, generation: int) -> None:
        reason = "the server closed the connection"

        def handle(message: Message, payload: bytes) -> None:
            if not isinstance(message, Event):
                raise ProtocolError(f"a server may not send {type(message).__name__.lower()}")
            self._listener.event_arrived(message)

        try:
            goodbye = await channel.converse(
                handle, patience=KEEPALIVE.timeout, ping_every=KEEPALIVE.interval
            )
            if goodbye is not None:
                reason = goodbye
        except TimeoutError:
            reason = f"the server has been silent for {KEEPALIVE.timeout:g} s"
            LOG.warning("closing the connection to the rxdb server: %s", reason)
        except ProtocolError as error:
            reason = f"the server sent a malformed message: {error}"
            LOG.warning("closing the connection to the rxdb server: %s", error)
        except (ConnectionError, OSError) as error:
            reason = f"connection failed: {error}"
        finally:
            self._ended(
                generation, ConnectionLostError(f"connection to the rxdb server lost ({reason})")
            )

    def _drop(self, error: ConnectionLostError) -> None:
        """Leave the current connection: a new generation begins (blocks of the old one are
        dead), and the calls in flight fail with ``error``: the server rolls back what was
        not committed, and whether a statement in flight ran is unknown."""
        self.generation += 1
        self.lost = error
        self._channel.stream.writer.close()
        self._channel.fail_calls(error)

    def _ended(self, generation: int, error: ConnectionLostError) -> None:
        if generation != self.generation or self.closed:
            return  # an earlier connection, or close() has dealt with it
        self._drop(error)
        if self.policy is not None:
            LOG.info("%s; reconnecting", error)
            self._reconnecting = self.loop.create_task(
                self._reconnect(self.policy), context=contextvars.Context()
            )
        self._listener.connection_lost(error, for_good=self.policy is None)
        self._state_changed()

    async def _reconnect(self, policy: Reconnect) -> None:
        """Connect again with backoff; then tell the listener."""
        started = self.loop.time()
        delay = policy.first_delay
        while True:
            try:
                endpoint = self.endpoint.located()
                channel, welcome = await establish(endpoint)
                break
            except Exception as error:  # unreachable, refused, no such name (yet)
                last: BaseException = error
            waited = self.loop.time() - started
            if policy.give_up_after is not None and waited + delay > policy.give_up_after:
                self._give_up(policy, last)
                return
            await asyncio.sleep(delay)  # backoff before the next attempt
            delay = min(delay * 2, policy.max_delay)
        if self.closed:  # close() ran while the handshake finished
            await channel.stream.close()
            return
        self.endpoint = endpoint
        self._reconnecting = None
        self._attach(channel, welcome)
        LOG.info("reconnected to the rxdb server at %s", endpoint.address)
        self._listener.reconnected()
        self._state_changed()

    def _give_up(self, policy: Reconnect, last: BaseException) -> None:
        self._reconnecting = None
        self.lost = ConnectionLostError(
            f"connection to the rxdb server lost; no reconnection within "
            f"{policy.give_up_after} s (last attempt: {last})"
        )
        LOG.warning("%s", self.lost)
        self._listener.connection_lost(self.lost, for_good=True)
        self._state_changed()

    def shut(self) -> None:
        """Say goodbye and drop the connection; stop reconnecting. Calls still pending fail
        with :class:`rxdb.ClosedError`, and every later one raises it. Idempotent; then
        await :meth:`release`."""
        if self.closed:
            return
        if self.lost is None:
            with contextlib.suppress(Exception):
                self._channel.send(Goodbye("the client is closing"))
            self._drop(ConnectionLostError("this connection to the rxdb server is closed"))
        self.closed = True
        self._state_changed()

    async def release(self) -> None:
        """After :meth:`shut`: wait until the reader, a reconnection and the socket are gone."""
        tasks = [t for t in (self._reconnecting, self._reader) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._reconnecting = None
        await self._channel.stream.close()


def _ignore(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        LOG.debug("an rxdb request nobody waited for failed: %s", future.exception())

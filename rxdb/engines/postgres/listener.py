"""One listening connection per process and database: the PostgreSQL engine's change source.

Every PostgreSQL engine of a process that opens the same database (the same ``dsn`` and
channel) :func:`join`\\ s one :class:`Membership` of one shared listener: a plain asyncpg
connection, outside any pool, that ``LISTEN``\\ s on the capture channel
(:mod:`rxdb.engines.postgres.capture`). The last :meth:`Membership.leave` closes it.

Every listener of the process runs on one *listener thread*, an event loop of its own
started by the first join and stopped after the last leave (as the SQLite hub does): the
connection does not depend on any application loop staying alive. Callbacks reach each
member on the loop it joined from, through ``call_soon_threadsafe``:

- ``on_change(updates, origin, everything)`` for the notifications that arrived together
  (one call per origin; a malformed payload counts as ``everything``). ``origin`` is the
  writer's ``rxdb.origin`` (``None``: not an rxdb engine). ``everything`` with no updates is
  a schema change: read sets must be resolved again.
- ``on_reset()`` after every reconnect. PostgreSQL does not keep notifications for a
  connection that is gone: whatever was committed meanwhile is unknown, so every watch
  must run again. It comes after the new ``LISTEN`` took effect, so a re-run sees every
  commit that was not notified.

A lost connection is noticed by asyncpg's termination callback, and, for a half-open socket
that nothing will ever close, by a periodic check: a query (:data:`capture.CHECK_SQL`)
every ``check_interval`` seconds that must answer within ``check_timeout``. Then the
listener reconnects with backoff, re-``LISTEN``\\ s, terminates its stale backend (a dead
listener left on the server holds the notification queue's tail), and resets everyone.

Where no event trigger keeps capture in step with other writers' DDL, the same check
returns a fingerprint of the schema: when it changes, the listener puts triggers on new
tables (:func:`capture.ensure_triggers`) and then tells everyone ``everything``.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from rxdb.engines.postgres.capture import CHECK_SQL, decode_payload, ensure_triggers
from rxdb.errors import OperationalError
from rxdb.updates import TableUpdate

__all__ = ("TUNING", "ListenerStatistics", "Membership", "OnChange", "OnReset", "Tuning", "join")

LOG = logging.getLogger("rxdb.engines.postgres.listener")

OnChange = Callable[[frozenset[TableUpdate], str | None, bool], None]
OnReset = Callable[[], None]

# What a lost server, network or connection raises from asyncpg.
_LOST = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Tuning:
    """The listener's timings, in seconds.

    :ivar check_interval: how long the connection may stay silent before it is checked.
    :ivar check_timeout: how long the check (and a connection attempt's LISTEN) may take
        before the connection is declared dead.
    :ivar connect_timeout: how long one connection attempt may take.
    :ivar backoff_initial: the first wait between failed connection attempts; it doubles
        (with jitter) up to ``backoff_max``.
    """

    check_interval: float = 5.0
    check_timeout: float = 5.0
    connect_timeout: float = 10.0
    backoff_initial: float = 0.1
    backoff_max: float = 5.0


TUNING = Tuning()


@dataclass(frozen=True, slots=True)
class ListenerStatistics:
    """A snapshot of one listener, for tests and diagnostics.

    :ivar connected: whether notifications currently flow.
    :ivar backend_pid: the server process of the current connection (``None``: none).
    :ivar connects: connections made (the first one included).
    :ivar notifications: notifications received.
    :ivar malformed: notifications that were not capture payloads (each one "everything").
    :ivar checks: periodic checks that passed.
    :ivar schema_changes: DDL seen by the fingerprint check.
    """

    connected: bool
    backend_pid: int | None
    connects: int
    notifications: int
    malformed: int
    checks: int
    schema_changes: int


_Batch = tuple[tuple[frozenset[TableUpdate], str | None, bool], ...]


class _Member:
    __slots__ = ("left", "loop", "on_change", "on_reset")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_change: OnChange, on_reset: OnReset
    ) -> None:
        self.loop = loop
        self.on_change = on_change
        self.on_reset = on_reset
        self.left = False

    def send(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` on the member's loop (from the listener thread)."""
        if self.left:
            return
        try:
            self.loop.call_soon_threadsafe(self._run, callback, *args)
        except RuntimeError:
            self.left = True  # its loop is closed: it can never hear anything again

    def changed(self, batch: _Batch) -> None:
        for updates, origin, everything in batch:
            self._run(self.on_change, updates, origin, everything)

    def _run(self, callback: Callable[..., None], *args: Any) -> None:
        if self.left:
            return
        try:
            callback(*args)
        except Exception:
            LOG.exception("a listener callback failed")


class _LoopThread:
    """The listener thread: an event loop that runs until :meth:`stop`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, name="rxdb-postgres-listener", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            leftovers = asyncio.all_tasks(self.loop)
            for task in leftovers:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()


@dataclass(slots=True)
class _Link:
    """One connection of a listener: the connection, the event its loss sets, and the
    schema's fingerprint as last seen through it (``None`` under the event trigger)."""

    conn: asyncpg.Connection
    lost: asyncio.Event
    fingerprint: object


class _Listener:
    """One LISTEN connection and its members. Its coroutines run on the listener thread."""

    def __init__(self, dsn: str, channel: str, tuning: Tuning, thread: _LoopThread) -> None:
        self.key = (dsn, channel)
        self.dsn = dsn
        self.channel = channel
        self.tuning = tuning
        self.thread = thread
        self.members: tuple[_Member, ...] = ()  # replaced under _LOCK, read anywhere
        self.first_connect: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[str | None, tuple[set[TableUpdate], bool]] = {}
        self._stale: tuple[int, object] | None = None  # (pid, backend_start) to terminate
        self.connected = False
        self.backend_pid: int | None = None
        self.connects = self.notifications = self.malformed = 0
        self.checks = self.schema_changes = 0

    def start(self) -> None:
        self.thread.loop.call_soon_threadsafe(self._start)

    def _start(self) -> None:
        self._task = self.thread.loop.create_task(self._run())

    async def close(self) -> None:
        """Stop listening and close the connection (on the listener thread, after
        :meth:`start`'s task was made there)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def statistics(self) -> ListenerStatistics:
        return ListenerStatistics(
            self.connected,
            self.backend_pid,
            self.connects,
            self.notifications,
            self.malformed,
            self.checks,
            self.schema_changes,
        )

    # -- the connection's life ------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.tuning.backoff_initial
        outage_logged = False
        while True:
            try:
                link = await self._connect()
            except _LOST as exc:
                if not self.first_connect.done():
                    self.first_connect.set_exception(exc)
                    return
                if not outage_logged:
                    LOG.warning("cannot listen on %s (retrying): %s", self.channel, exc)
                    outage_logged = True
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.tuning.backoff_max)
                continue
            delay = self.tuning.backoff_initial
            outage_logged = False
            self.connects += 1
            self.connected = True
            if self.first_connect.done():
                for member in self.members:
                    member.send(member.on_reset)
            else:
                self.first_connect.set_result(None)
            healthy = True
            try:
                healthy = await self._watch(link)
            finally:
                self.connected = False
                self.backend_pid = None
                await self._disconnect(link.conn, healthy)
            LOG.warning("the connection listening on %s was lost; reconnecting", self.channel)

    async def _connect(self) -> _Link:
        lost = asyncio.Event()
        conn = await asyncpg.connect(
            self.dsn,
            timeout=self.tuning.connect_timeout,
            server_settings={
                "application_name": "rxdb listener",
                # ensure_triggers must not queue behind long write transactions.
                "lock_timeout": str(max(1, int(self.tuning.check_timeout * 500))),
            },
        )
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            async with asyncio.timeout(self.tuning.check_timeout):
                await conn.add_listener(self.channel, self._on_notification)
                started = await conn.fetchval(
                    "SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
                )
                await self._terminate_stale(conn)
                # Taken before anyone is told we listen: DDL after it is seen.
                fingerprint = await conn.fetchval(CHECK_SQL)
        except BaseException:
            conn.terminate()
            raise
        self.backend_pid = conn.get_server_pid()
        self._stale = (self.backend_pid, started)
        return _Link(conn, lost, fingerprint)

    async def _terminate_stale(self, conn: asyncpg.Connection) -> None:
        # The backend of a connection given up as half-open may live on for hours (until
        # the server's TCP keepalive ends it); as a listener it holds the notification
        # queue's tail. The start time makes sure the pid was not reused since.
        if self._stale is None:
            return
        pid, started = self._stale
        self._stale = None
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute(
                "SELECT pg_terminate_backend(pid, $3) FROM pg_stat_activity"
                " WHERE pid = $1 AND backend_start = $2",
                pid,
                started,
                max(1, int(self.tuning.check_timeout * 500)),  # waits (a while) for it to go
            )

    async def _watch(self, link: _Link) -> bool:
        """Return when the connection is lost (``True``) or fails its check (``False``)."""
        tuning = self.tuning
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(tuning.check_interval):
                        await link.lost.wait()
                    return True
                async with asyncio.timeout(tuning.check_timeout):
                    fingerprint = await link.conn.fetchval(CHECK_SQL)
                self.checks += 1
                if fingerprint != link.fingerprint:
                    link.fingerprint = await self._schema_changed(link.conn)
        except _LOST as exc:
            LOG.debug("the listening connection failed its check: %r", exc)
            return False

    async def _schema_changed(self, conn: asyncpg.Connection) -> object:
        self.schema_changes += 1
        try:
            async with asyncio.timeout(self.tuning.check_timeout):
                await ensure_triggers(conn)
        except asyncpg.LockNotAvailableError:
            LOG.info("new tables wait for capture triggers until the next check")
        self._add(frozenset(), None, True)
        async with asyncio.timeout(self.tuning.check_timeout):
            return await conn.fetchval(CHECK_SQL)  # the triggers just made changed it

    async def _disconnect(self, conn: asyncpg.Connection, healthy: bool) -> None:
        # A connection that failed its check would not answer a goodbye either: drop it,
        # and remember its backend for the next connection to terminate.
        if conn.is_closed():
            self._stale = None
            return
        if healthy:
            try:
                async with asyncio.timeout(self.tuning.check_timeout):
                    await conn.close()
                self._stale = None
                return
            except _LOST:
                pass
        conn.terminate()

    # -- notifications --------------------------------------------------------------------

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.notifications += 1
        decoded = decode_payload(payload)
        if decoded is None:
            self.malformed += 1
            self._add(frozenset(), None, True)
        else:
            self._add(*decoded)

    def _add(self, updates: frozenset[TableUpdate], origin: str | None, everything: bool) -> None:
        # asyncpg schedules one callback per notification as it parses a read from the
        # socket: the flush scheduled behind them hands a commit's notifications over in
        # one call, most of the time (a split only costs one more re-run).
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        known, was_everything = self._pending.get(origin, (set(), False))
        known.update(updates)
        self._pending[origin] = (known, was_everything or everything)

    def _flush(self) -> None:
        batch: _Batch = tuple(
            (frozenset(updates), origin, everything)
            for origin, (updates, everything) in self._pending.items()
        )
        self._pending.clear()
        for member in self.members:
            member.send(member.changed, batch)


# ---------------------------------------------------------------------------------------
# The registry: one listener per (dsn, channel) in the process, one thread for them all

_LOCK = threading.Lock()
_REGISTRY: dict[tuple[str, str], _Listener] = {}
_THREAD: _LoopThread | None = None


class Membership:
    """One engine's share of a listener (see :func:`join`)."""

    __slots__ = ("_listener", "_member")

    def __init__(self, listener: _Listener, member: _Member) -> None:
        self._listener = listener
        self._member = member

    @property
    def left(self) -> bool:
        return self._member.left

    def statistics(self) -> ListenerStatistics:
        """A snapshot of the shared listener (safe from any thread)."""
        return self._listener.statistics()

    async def leave(self) -> None:
        """Hear nothing more (not even a callback already on its way); the last member
        closes the connection. Idempotent; call it on the loop that joined."""
        if self._member.left:
            return
        self._member.left = True
        await _release(self._listener, self._member)

    def __repr__(self) -> str:
        state = "left" if self.left else f"connected={self._listener.connected}"
        return f"<Membership {self._listener.channel} {state}>"


async def join(
    dsn: str,
    channel: str,
    on_change: OnChange,
    on_reset: OnReset,
    *,
    tuning: Tuning | None = None,
) -> Membership:
    """Hear every capture notification of ``channel`` on the calling loop, through the
    process's one listener for (``dsn``, ``channel``), connected first if need be.

    From its return on, every commit of the database reaches ``on_change`` (or, after a
    lost connection, ``on_reset``). ``tuning`` applies when this call makes the listener;
    a listener already running keeps its own.

    :raises rxdb.OperationalError: if a new listener cannot connect and ``LISTEN``.
    """
    global _THREAD
    member = _Member(asyncio.get_running_loop(), on_change, on_reset)
    with _LOCK:
        listener = _REGISTRY.get((dsn, channel))
        if listener is None:
            if _THREAD is None:
                _THREAD = _LoopThread()
            listener = _Listener(dsn, channel, tuning or TUNING, _THREAD)
            _REGISTRY[listener.key] = listener
            listener.start()
        listener.members = (*listener.members, member)
    try:
        # Shielded: a cancelled join must not cancel the connect other joiners wait for.
        await asyncio.shield(asyncio.wrap_future(listener.first_connect))
    except BaseException as exc:
        member.left = True
        await _release(listener, member)
        if isinstance(exc, Exception):
            raise OperationalError(f"cannot listen for changes on {channel}: {exc}") from exc
        raise
    return Membership(listener, member)


async def _release(listener: _Listener, member: _Member) -> None:
    global _THREAD
    with _LOCK:
        listener.members = tuple(m for m in listener.members if m is not member)
        if listener.members:
            return
        if _REGISTRY.get(listener.key) is listener:
            del _REGISTRY[listener.key]
    loop = listener.thread.loop
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(listener.close(), loop))
    with _LOCK:
        thread = _THREAD if not _REGISTRY and _THREAD is listener.thread else None
        if thread is not None:
            _THREAD = None
    if thread is not None:
        thread.stop()

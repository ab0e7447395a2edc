"""The client side of server mode: the async database contract over one connection.

:class:`RemoteDatabase` is an :class:`rxdb.api.AsyncDatabase`: every call becomes a typed
operation sent to the server (:mod:`rxdb.remote.client.connection`), watches are
subscriptions the server pushes events for (:mod:`rxdb.remote.client.subscriptions`), and
transaction and read blocks are held on the server for the task that opened them
(:mod:`rxdb.remote.client.blocks`). Everything is delivered on the loop that connected.

With :class:`~rxdb.remote.client.connection.Reconnect`, a lost connection is re-established
in the background; blocks of the lost connection fail, watches are subscribed again.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from reactivex import Observable, Observer

from rxdb._types import Params, ProgressCallback, TransactionMode
from rxdb.api import Queries
from rxdb.arguments import (
    check_backup,
    check_flags,
    check_parameter_sets,
    check_sql,
    check_table_names,
    check_text,
    check_update_kinds,
    check_watch,
    check_watch_many,
)
from rxdb.errors import ConnectionLostError, ProgrammingError
from rxdb.remote.client import answers
from rxdb.remote.client.blocks import Blocks, RemoteReadSession
from rxdb.remote.client.connection import Connection, Reconnect, establish, policy_of
from rxdb.remote.client.subscriptions import (
    RemoteObservable,
    Request,
    Subscriptions,
    states_of,
)
from rxdb.remote.wire.channel import Channel
from rxdb.remote.wire.endpoint import Endpoint
from rxdb.remote.wire.messages import Event, Welcome
from rxdb.remote.wire.operations import (
    Backup,
    Begin,
    Execute,
    ExecuteMany,
    ExecuteScript,
    FetchAll,
    FetchOne,
    Interrupt,
    NotifyUpdates,
    OpenRead,
    Operation,
    TableUpdates,
    TrackForeignWrites,
    UntrackForeignWrites,
    Watch,
    WatchMany,
)
from rxdb.rows import ExecuteResult, Row, Rows
from rxdb.streams import AsyncFetches, AsyncWatches, QueryStream, Stream
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind

__all__ = ("RemoteDatabase", "connect")


async def connect(endpoint: Endpoint, *, reconnect: bool | Reconnect = False) -> RemoteDatabase:
    """Connect to the server ``endpoint`` names; the database is bound to the running loop.

    :param reconnect: re-establish the connection automatically if it is lost (``True``
        for the default :class:`~rxdb.Reconnect` policy). The first connection must succeed.
    :raises rxdb.ConnectionLostError: if the server cannot be reached or hangs up.
    :raises rxdb.ServerRefusedError: if it refuses this client.
    :raises rxdb.ProgrammingError: for a ``reconnect`` that is not a bool or a policy.
    """
    policy = policy_of(reconnect)
    channel, welcome = await establish(endpoint)
    return RemoteDatabase(endpoint, channel, welcome, policy)


class RemoteDatabase(AsyncFetches, AsyncWatches):
    """A database served by another process (or this one), used over one connection.

    Bound to the event loop that connected it. :meth:`close` closes the connection only;
    the database stays open on the server. Made by :func:`connect` (``handle.connect()``).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        channel: Channel,
        welcome: Welcome,
        reconnect: Reconnect | None = None,
    ) -> None:
        self._thread = threading.get_ident()
        self._connection = Connection(endpoint, channel, welcome, reconnect, self)
        self._subscriptions = Subscriptions(self._connection, self)
        self._blocks = Blocks(self._connection, self)

    # -- the connection ---------------------------------------------------------------------

    @property
    def handle(self) -> Endpoint:
        """Where the server is (for a named one, where it was found last)."""
        return self._connection.endpoint

    @property
    def path(self) -> str:
        """The served database's path, as the server gave it."""
        return self._connection.database

    @property
    def server_pid(self) -> int:
        """The process id of the server the client is (or was last) connected to."""
        return self._connection.server_pid

    @property
    def closed(self) -> bool:
        """Closed, or disconnected for good (reconnection off, or given up)."""
        return self._connection.gone

    @property
    def connected(self) -> bool:
        """Whether the connection is up now (``False`` while reconnecting)."""
        return not self._connection.closed and self._connection.lost is None

    async def wait_connected(self) -> None:
        """Return once the connection is up: at once if it is, else when a reconnection
        succeeds. Waits as long as that takes: wrap it in ``asyncio.timeout``.

        :raises rxdb.ConnectionLostError: if the connection is lost for good (no
            reconnection, or it gave up).
        :raises rxdb.ClosedError: after :meth:`close`.
        """
        await self._connection.wait_connected(self)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` is true, checked now and after every change of the
        connection's state (lost, reconnected, given up, closed); for diagnostics and tests.
        Wrap it in ``asyncio.timeout``."""
        await self._connection.wait_until(predicate)

    def __repr__(self) -> str:
        return f"<rxdb.RemoteDatabase {self.handle.kind}:{self.handle.address}>"

    async def __aenter__(self) -> RemoteDatabase:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection (idempotent), and stop reconnecting. Watches complete; calls
        still pending fail with :class:`rxdb.ClosedError`; an open transaction or read block
        of this client is rolled back by the server. Afterwards every call raises
        :class:`rxdb.ClosedError`."""
        if self._connection.closed:
            return
        self._connection.shut()
        self._subscriptions.end_all(None)
        await self._connection.release()

    # What the connection tells us (its Listener).

    def event_arrived(self, event: Event) -> None:
        self._subscriptions.deliver(event)

    def connection_lost(self, error: ConnectionLostError, *, for_good: bool) -> None:
        if for_good:
            self._subscriptions.end_all(error)
        else:
            self._subscriptions.drop_calls()  # watches outlive it; a backup's progress not

    def reconnected(self) -> None:
        self._subscriptions.ask_again()

    # -- calls ------------------------------------------------------------------------------

    async def _call(self, operation: Operation) -> Any:
        connection = self._connection
        if connection.lost is not None:
            await connection.ready(self)
        return await connection.start(operation, self)

    async def _call_in_block(self, make: Callable[[int | None], Operation]) -> Any:
        """A call that runs in the calling task's innermost block, chosen after any wait for
        a reconnection."""
        connection = self._connection
        if connection.lost is not None:
            await connection.ready(self)
        return await connection.start(make(self._blocks.current()), self)

    async def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        """As :meth:`rxdb.Database.execute`, on the server."""
        sql, wire = check_sql(sql), answers.wire_params(params)
        return answers.execute_result(
            await self._call_in_block(lambda block: Execute(sql, wire, block))
        )

    async def execute_many(self, sql: str, seq_of_params: Iterable[Params]) -> int:
        """As :meth:`rxdb.Database.execute_many`: one request for the whole batch."""
        check_parameter_sets(seq_of_params, check_sql(sql))
        sets = [answers.wire_params(p) for p in seq_of_params]
        return answers.count(await self._call_in_block(lambda block: ExecuteMany(sql, sets, block)))

    async def execute_script(self, script: str) -> None:
        """As :meth:`rxdb.Database.execute_script`, on the server."""
        script = check_text(script)
        answers.nothing(await self._call_in_block(lambda block: ExecuteScript(script, block)))

    async def _fetch_rows(self, sql: str, params: Params) -> Rows:
        """The rows of ``fetch_all``, from the server (converted to a ``row_type`` here)."""
        sql, wire = check_sql(sql), answers.wire_params(params)
        return answers.rows(await self._call_in_block(lambda block: FetchAll(sql, wire, block)))

    async def _fetch_first(self, sql: str, params: Params) -> Row | None:
        """The row of ``fetch_one`` and ``fetch_value``: the server sends only that one."""
        sql, wire = check_sql(sql), answers.wire_params(params)
        found = await self._call_in_block(lambda block: FetchOne(sql, wire, block))
        return answers.row_or_none(found)

    @asynccontextmanager
    async def transaction(self, mode: TransactionMode = "immediate") -> AsyncIterator[None]:
        """As :meth:`rxdb.Database.transaction`, held on the server for this client.

        Statements of this task (and tasks it starts) inside the block run in it; a nested
        block is a savepoint; an exception rolls the block back. If this process dies inside
        the block, the server rolls it back as soon as the connection drops. If the
        connection is lost inside the block, its statements and its end raise
        :class:`rxdb.ConnectionLostError` (the server rolled it back), even once reconnected.

        :raises rxdb.ProgrammingError: for an unknown mode.
        """
        if mode not in ("deferred", "immediate", "exclusive"):
            raise ProgrammingError(f"unknown transaction mode {mode!r}")
        async with self._blocks.hold("transaction", lambda parent: Begin(mode, parent)):
            yield

    def read(self) -> AbstractAsyncContextManager[RemoteReadSession]:
        """As :meth:`rxdb.Database.read`: ``async with remote.read() as r:`` reserves one
        connection on the server for this client; every statement through ``r`` (or through
        this database by this task) inside the block sees one snapshot. Writes inside raise
        :class:`rxdb.ReadOnlyError`. The server gives the connection back when the block
        ends, or at once if this client disconnects or dies inside it.

        :raises rxdb.ReentrancyError: inside another ``read`` or a transaction.
        """
        return self._read_block(isolated=True)

    def unsafe_read(self) -> AbstractAsyncContextManager[RemoteReadSession]:
        """As :meth:`rxdb.Database.unsafe_read`: :meth:`read` without the snapshot."""
        return self._read_block(isolated=False)

    @asynccontextmanager
    async def _read_block(self, *, isolated: bool) -> AsyncIterator[RemoteReadSession]:
        async with self._blocks.hold("read", lambda parent: OpenRead(isolated, parent)) as block:
            session = RemoteReadSession(self._blocks, block, isolated=isolated)
            try:
                yield session
            finally:
                session.end()

    async def interrupt(self) -> None:
        """Interrupt this client's statements running on the server now: the interrupted
        statement raises :class:`rxdb.InterruptError`; inside a transaction block the
        transaction is rolled back and the block's further statements raise
        :class:`rxdb.TransactionAbortedError`; a backup of this client stops. With nothing
        running, nothing happens; nor when closed or disconnected (nothing of this client
        then runs there).

        What else it touches depends on where the statement runs (see ``docs/server.md``):
        nothing else for statements in read and transaction blocks; the shared writer for a
        write outside blocks; every connection (as :meth:`rxdb.Database.interrupt`) for a
        query outside blocks. The request overtakes the calls in flight: it is answered as
        soon as the server has interrupted.
        """
        if self.connected:
            answers.nothing(await self._connection.start(Interrupt(), self))

    def interrupt_threadsafe(self) -> None:
        """:meth:`interrupt` for any thread (e.g. a UI thread's "Cancel" button); the
        request is sent from the client's loop, and nobody waits for its answer."""

        def send() -> None:
            if self.connected:
                self._connection.fire(Interrupt(), self)

        if threading.get_ident() == self._thread:
            send()
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs
            self._connection.loop.call_soon_threadsafe(send)

    async def backup(
        self,
        target: str | os.PathLike[str],
        *,
        pages_per_step: int = 256,
        progress: ProgressCallback | None = None,
    ) -> None:
        """As :meth:`rxdb.Database.backup`, into a file **on the server's machine**:
        ``target`` must be an absolute path there (the server's working directory is not
        this process's). Writes may continue meanwhile.

        ``progress`` is called on this client's loop with a :class:`rxdb.BackupProgress`
        after each step the server reports. Raising from it stops the backup at the
        server's next step, and ``backup`` raises that exception (the file may be complete
        if the server finished first). :meth:`interrupt` stops it too
        (:class:`rxdb.InterruptError`).

        :raises rxdb.ProgrammingError: for a target that is not a text path (an open
            database cannot be sent to the server), a relative path, or a bad
            ``pages_per_step`` or ``progress``.
        :raises rxdb.ReentrancyError: inside a read or transaction block.
        """
        path = os.fspath(target) if isinstance(target, str | os.PathLike) else None
        if not isinstance(path, str):
            raise ProgrammingError(
                "a remote backup writes into a file on the server's machine: pass its "
                f"absolute path, not {type(target).__name__}"
            )
        check_backup(pages_per_step, progress)
        self._connection.check(self)
        subscriptions = self._subscriptions
        progress_id: int | None = None
        raised: list[Exception] = []
        if progress is not None:
            reported = progress

            def on_next(step: Any) -> None:
                try:
                    reported(step)
                except Exception as error:
                    raised.append(error)
                    if progress_id is not None:
                        subscriptions.unsubscribe(progress_id)

            progress_id = subscriptions.track(Observer(on_next), answers.backup_progress)
        steps = progress_id
        try:
            answers.nothing(
                await self._call_in_block(lambda block: Backup(path, pages_per_step, steps, block))
            )
        except Exception:
            if raised:
                raise raised[0] from None
            raise
        finally:
            if progress_id is not None:
                subscriptions.forget(progress_id)
        if raised:
            raise raised[0]

    async def notify_updates(self, *updates: str | TableUpdate) -> None:
        """As :meth:`rxdb.Database.notify_updates`: the server's watchers (and every other
        client's) hear of it."""
        named = check_table_names(updates, also=TableUpdate)
        wire = [u if isinstance(u, TableUpdate) else TableUpdate(u) for u in named]
        answers.nothing(await self._call(NotifyUpdates(wire)))

    async def track_foreign_writes(self) -> None:
        """As :meth:`rxdb.Database.track_foreign_writes`, on the server's database."""
        answers.nothing(await self._call(TrackForeignWrites()))

    async def untrack_foreign_writes(self) -> None:
        """As :meth:`rxdb.Database.untrack_foreign_writes`, on the server's database."""
        answers.nothing(await self._call(UntrackForeignWrites()))

    # -- observation ------------------------------------------------------------------------

    def _watch_rows(
        self, sql: str, params: Params, *, distinct: bool, recover: bool
    ) -> QueryStream[Row]:
        """The watch behind ``watch``, ``watch_one`` and ``watch_value``: the query runs on
        the server, which pushes each new result; values are delivered on this client's loop
        (``row_type`` and ``throttle`` are applied here). Disposing the subscription (or
        leaving ``async for``) tells the server to stop. With reconnection, the watch
        survives a lost connection: it is subscribed again, and re-emits the current result
        once the connection is back (a value equal to the last one included). Its
        ``statistics()`` count this client's subscribers only. ``states()`` is a
        subscription of its own to the same watch on the server, its events in order with
        the results'."""
        self._connection.check(self)
        check_watch(sql, params)
        wire = answers.wire_params(params)

        def ask(states: bool) -> Request:
            return lambda sub_id: Watch(sub_id, sql, wire, distinct, recover, states)

        return QueryStream(
            RemoteObservable(self._subscriptions, ask(False), answers.rows),
            None,
            lambda: RemoteObservable(self._subscriptions, ask(True), states_of(answers.rows)),
        )

    def watch_many(
        self, queries: Queries, *, distinct: bool = True, recover: bool = False
    ) -> Stream[dict[str, Rows]]:
        """As :meth:`rxdb.Database.watch_many`: the group runs on the server, on one snapshot
        there; values and states are delivered on this client's loop (reconnection as for
        ``watch``)."""
        self._connection.check(self)
        wire = [
            (name, sql, answers.wire_params(params))
            for name, (sql, params) in check_watch_many(queries).items()
        ]
        check_flags(distinct=distinct, recover=recover)

        def ask(states: bool) -> Request:
            return lambda sub_id: WatchMany(sub_id, wire, distinct, recover, states)

        return Stream(
            RemoteObservable(self._subscriptions, ask(False), answers.group),
            None,
            lambda: RemoteObservable(self._subscriptions, ask(True), states_of(answers.group)),
        )

    def table_updates(
        self,
        tables: Iterable[str] | None = None,
        kinds: Iterable[UpdateKind] | None = None,
    ) -> Observable[NotifyTablesUpdated]:
        """As :meth:`rxdb.Database.table_updates`, delivered on this client's loop. With
        reconnection it survives a lost connection, but commits made while disconnected are
        not reported."""
        self._connection.check(self)
        wanted = None if tables is None else list(check_table_names(tables))
        wanted_kinds = None if kinds is None else list(check_update_kinds(kinds))
        return RemoteObservable(
            self._subscriptions,
            lambda sub_id: TableUpdates(sub_id, wanted, wanted_kinds),
            answers.table_updates,
        )

"""One client connection of a database server: its handshake, its requests, the transaction
and read blocks it holds and the watches it subscribed to.

:mod:`rxdb.remote.server` listens and hands each accepted connection to a :class:`Session`.
A session runs every operation on the served database itself, holds the client's blocks as
:class:`~rxdb.boundary.blocks.ThreadBlock` tasks, and when the connection ends for any reason
interrupts the statements still running in those blocks, rolls the blocks back (a read block
gives its connection back) and disposes the watches, so a dead client leaves no trace.

It also knows which connection each of the client's statements occupies, as far as rxdb lets
anyone know, so that ``interrupt`` stops this client's work and, wherever that is possible,
nobody else's (see :meth:`Session.op_interrupt`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import os
import sqlite3
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from reactivex import abc

from parser import StatementKind, Unanalyzable, analyze
from rxdb._types import BackupProgress
from rxdb.boundary.blocks import Enter, ThreadBlock, closing, inside, opening
from rxdb.engines.sqlite.sessions import ReadSession
from rxdb.errors import ClosedError, InterruptError, ProgrammingError, from_sqlite
from rxdb.remote.wire.frames import (
    DEFAULT_MAX_PAYLOAD,
    HANDSHAKE_MAX_PAYLOAD,
    ProtocolError,
    encode_frame,
)
from rxdb.remote.wire.messages import (
    Event,
    EventKind,
    Failure,
    Goodbye,
    Hello,
    Message,
    Ping,
    Pong,
    Refused,
    Request,
    Response,
    UnsupportedVersionError,
    Welcome,
    encode_message,
    error_to_wire,
    tokens_match,
)
from rxdb.remote.wire.stream import KEEPALIVE, FramedStream
from rxdb.remote.wire.values import notify_to_wire, update_from_wire
from rxdb.updates import UpdateKind

if TYPE_CHECKING:
    from rxdb.database import Database
    from rxdb.engines.sqlite.workers import Worker
    from rxdb.remote.server import Server

__all__ = ("HANDSHAKE_TIMEOUT", "MAX_BUFFERED", "SHUTDOWN_GRACE", "Session")

LOG = logging.getLogger("rxdb.remote")

HANDSHAKE_TIMEOUT: Final = 10.0
"""Seconds a new connection has to say hello; a silent stranger must not hold a slot."""
MAX_BUFFERED: Final = 64 * 1024 * 1024
"""Bytes queued for one client before it is dropped as too slow (its watches would otherwise
make the server buffer without bound)."""
SHUTDOWN_GRACE: Final = 5.0
"""Seconds :meth:`Server.shutdown_all` lets running statements finish before cancelling them."""
INTERRUPT_REPEAT: Final = 0.1
"""Seconds between interrupts of a gone client's block statement that is still running (an
interrupt that lands just before SQLite starts the statement has no effect)."""
_C_INT = 2**31


@dataclass
class _Held:
    """One client's open block: a transaction (with ``depth`` levels: savepoints) or a read
    block (``read`` is its session), and how many of its statements run now."""

    block: ThreadBlock
    depth: int
    read: ReadSession | None = None
    running: int = 0


class _Backup(abc.DisposableBase):
    """A backup of this client in flight. Stopping it (the client's progress callback
    raised, or the client interrupted) makes the next progress step raise, which aborts the
    backup; the flag is read on the worker thread that copies."""

    def __init__(self) -> None:
        self.stopped: str | None = None

    def stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason

    def dispose(self) -> None:
        self.stop("the client stopped the backup")


class _Abort(Exception):
    """Ends a connection for a reason worth logging at warning level."""


class Session:
    """One client connection: its handshake, requests, open blocks and subscriptions."""

    def __init__(
        self,
        server: Server,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        label: str,
    ) -> None:
        self.server = server
        self.db = server.db
        self.label = label
        self.stream = FramedStream(
            reader,
            writer,
            label,
            HANDSHAKE_MAX_PAYLOAD,
            log=LOG,
            too_slow="dropping rxdb client connection %s: it reads too slowly (%d bytes queued)",
        )
        self.blocks: dict[int, _Held] = {}
        self.block_ids = itertools.count(1)
        self.subscriptions: dict[int, abc.DisposableBase] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.loose_reads = 0  # statements outside blocks in flight: fetch_all, fetch_one
        self.loose_writes = 0  # execute, execute_many, execute_script
        self.backups: set[_Backup] = set()
        self.closed = False
        self.closing: asyncio.Future[None] | None = None

    # -- the connection ---------------------------------------------------------------------

    async def run(self) -> None:
        reason = "the client disconnected"
        try:
            if await self._handshake():
                self.stream.decoder.max_payload = DEFAULT_MAX_PAYLOAD
                while not self.closed:
                    try:
                        message = await self.stream.receive(KEEPALIVE.timeout)
                    except TimeoutError:
                        raise _Abort(
                            f"silent for {KEEPALIVE.timeout:g} s (no ping): taken for dead"
                        ) from None
                    if message is None:
                        break
                    self._dispatch(message)
        except ProtocolError as error:
            reason = f"protocol error: {error}"
            LOG.warning("closing rxdb client connection %s: %s", self.label, error)
        except _Abort as error:
            reason = str(error)
            LOG.warning("closing rxdb client connection %s: %s", self.label, error)
        except (ConnectionError, OSError) as error:
            reason = f"connection failed: {error}"
            LOG.info("rxdb client connection %s failed: %s", self.label, error)
        except TimeoutError:
            reason = "no hello in time"
            LOG.warning(
                "closing rxdb client connection %s: no hello within %s s",
                self.label,
                HANDSHAKE_TIMEOUT,
            )
        finally:
            await self.close(reason)

    async def _handshake(self) -> bool:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                message = await self.stream.receive()
        except UnsupportedVersionError as error:
            self._send(Refused(str(error)))
            raise
        if message is None:
            return False
        if not isinstance(message, Hello):
            raise _Abort(f"expected hello, got {type(message).__name__.lower()}")
        expected = self.server._token
        if expected is not None and not tokens_match(expected, message.token):
            self._send(Refused("wrong or missing token"))
            raise _Abort("wrong or missing token")
        self._send(Welcome(os.getpid(), self.server.epoch, self.db.path))
        LOG.debug("rxdb client %s connected (pid %d)", self.label, message.process_id)
        return True

    def _send(self, message: Message) -> None:
        if self.closed and not isinstance(message, Goodbye | Refused):
            return
        if self.stream.is_closing():
            return
        self.stream.send_frame(encode_frame(encode_message(message)), MAX_BUFFERED)

    def _send_checked(self, message: Response | Event) -> None:
        """Send a result or event; one that cannot be encoded or is too large becomes an
        error for that request or subscription, never a broken connection."""
        try:
            payload = encode_message(message)
            if len(payload) > DEFAULT_MAX_PAYLOAD:
                raise ProtocolError(
                    f"the result is {len(payload)} bytes, over the frame limit of "
                    f"{DEFAULT_MAX_PAYLOAD}; fetch it in smaller parts"
                )
        except ProtocolError as error:
            if isinstance(message, Response):
                self._send(Failure(message.id, error_to_wire(error)))
            else:
                self._send(
                    Event(message.subscription_id, EventKind.ERROR, None, error_to_wire(error))
                )
                self._drop_subscription(message.subscription_id)
            return
        self._send(message)

    async def close(self, reason: str, *, goodbye: bool = False) -> None:
        """End the connection: roll back its blocks, dispose its watches. Idempotent; a
        second caller waits for the first to finish."""
        if self.closing is not None:
            await asyncio.shield(self.closing)
            return
        self.closing = asyncio.get_running_loop().create_future()
        try:
            if goodbye:
                with contextlib.suppress(Exception):
                    self._send(Goodbye(reason))
            self.closed = True
            self.stream.writer.close()
            for subscription in list(self.subscriptions.values()):
                with contextlib.suppress(Exception):
                    subscription.dispose()
            self.subscriptions.clear()
            self.server._state_changed()
            for backup in self.backups:
                backup.stop("the client disconnected")
            held, self.blocks = list(self.blocks.values()), {}
            # Nobody waits for what still runs in the blocks: stop it, so that the rollback
            # (and the write lock, or the reserved reader) does not wait for an endless query.
            await asyncio.gather(*(self._stop_running(one) for one in held))
            for one in held:
                await _roll_back(one)
            if held:
                LOG.info(
                    "rolled back %d open transaction(s) of rxdb client %s: %s",
                    len(held),
                    self.label,
                    reason,
                )
            if goodbye and self.tasks:
                # Statements still running belong to a client that is going away.
                _, late = await asyncio.wait(list(self.tasks), timeout=SHUTDOWN_GRACE)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            await self.stream.wait_closed()
        finally:
            self.closing.set_result(None)

    # -- requests ---------------------------------------------------------------------------

    def _dispatch(self, message: Message) -> None:
        if isinstance(message, Request):
            # A fresh context: nothing of the reader task's scope leaks into the statement.
            task = asyncio.get_running_loop().create_task(
                self._answer(message), context=contextvars.Context()
            )
            self.tasks.add(task)
            task.add_done_callback(self._request_done)
            self.server._state_changed()
        elif isinstance(message, Ping):
            self._send(Pong(message.nonce))
        elif isinstance(message, Goodbye):
            LOG.debug("rxdb client %s says goodbye: %s", self.label, message.reason)
        elif isinstance(message, Pong):
            pass
        else:
            raise _Abort(f"a client may not send {type(message).__name__.lower()}")

    def _request_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.server._state_changed()

    async def _answer(self, request: Request) -> None:
        try:
            handler = _OPS.get(request.op)
            if handler is None:
                raise ProgrammingError(f"unknown operation {request.op!r}")
            args = request.args
            if not isinstance(args, list):
                raise ProgrammingError(f"{request.op!r} takes an array of arguments")
            result = await handler(self, args)
        except Exception as error:
            self._send(Failure(request.id, error_to_wire(error)))
        else:
            self._send_checked(Response(request.id, result))

    def _in_block(
        self,
        block_id: Any,
        operation: Callable[[], Coroutine[Any, Any, Any]],
        *,
        kind: Literal["read", "write"] | None,
    ) -> Callable[[], Coroutine[Any, Any, Any]]:
        """Route ``operation`` into the client's block ``block_id`` (or run it outside
        blocks), counting it as running on that block's connection (or, by ``kind``, as a
        loose read or write) while it runs, for :meth:`op_interrupt`."""
        if block_id is None:
            return operation if kind is None else self._loose(operation, reads=kind == "read")
        held = self.blocks.get(_int(block_id, "block"))
        if held is None:
            raise ProgrammingError(
                f"no open block {block_id} on this connection (it ended or was rolled back)"
            )

        async def counted() -> Any:
            if self.closed:  # queued in the block when the client went away: never run
                raise ClosedError("the client disconnected")
            held.running += 1
            self.server._state_changed()
            try:
                return await operation()
            finally:
                held.running -= 1
                self.server._state_changed()

        return inside([held.block], counted)

    def _loose(
        self, operation: Callable[[], Coroutine[Any, Any, Any]], *, reads: bool
    ) -> Callable[[], Coroutine[Any, Any, Any]]:
        async def counted() -> Any:
            if reads:
                self.loose_reads += 1
            else:
                self.loose_writes += 1
            try:
                return await operation()
            finally:
                if reads:
                    self.loose_reads -= 1
                else:
                    self.loose_writes -= 1

        return counted

    async def _statement(
        self, op: str, args: list[Any], run: Callable[[str, Any], Coroutine[Any, Any, Any]]
    ) -> Any:
        """One statement with its parameters (``execute``, ``fetch_all``, ``fetch_one``)."""
        sql, params, block = _unpack(args, 3, op)
        sql, params = _str(sql, "sql"), _params(params)
        if block is None and _controls_transactions(sql):
            # Each request runs in a task of its own: a transaction it opened would be
            # rolled back as that task ends, and the client's next statement autocommit.
            raise ProgrammingError(
                "BEGIN/COMMIT/ROLLBACK/SAVEPOINT sent on their own do not span requests to "
                "a server; use 'async with db.transaction():' on the client"
            )
        kind: Literal["read", "write"] = "write" if op == "execute" else "read"
        return await self._in_block(block, lambda: run(sql, params), kind=kind)()

    async def op_execute(self, args: list[Any]) -> Any:
        return await self._statement("execute", args, self.db.execute)

    async def op_execute_many(self, args: list[Any]) -> Any:
        sql, seq, block = _unpack(args, 3, "execute_many")
        sql = _str(sql, "sql")
        if not isinstance(seq, list):
            raise ProgrammingError("execute_many takes a list of parameter sets")
        rows = [_params(p) for p in seq]
        return await self._in_block(block, lambda: self.db.execute_many(sql, rows), kind="write")()

    async def op_execute_script(self, args: list[Any]) -> Any:
        script, block = _unpack(args, 2, "execute_script")
        script = _str(script, "script")
        return await self._in_block(block, lambda: self.db.execute_script(script), kind="write")()

    async def op_fetch_all(self, args: list[Any]) -> Any:
        return await self._statement("fetch_all", args, self.db.fetch_all)

    async def op_fetch_one(self, args: list[Any]) -> Any:
        return await self._statement("fetch_one", args, self.db.fetch_one)

    async def op_begin(self, args: list[Any]) -> Any:
        mode, parent = _unpack(args, 2, "begin")
        if mode not in ("deferred", "immediate", "exclusive"):
            raise ProgrammingError(f"unknown transaction mode {mode!r}")
        db = self.db
        return await self._open_block(parent, lambda: db.transaction(mode))

    async def op_read(self, args: list[Any]) -> Any:
        """Open a read block (``isolated``: one snapshot, as ``db.read()``; else as
        ``db.unsafe_read()``) that holds one connection for this client until ``end``."""
        isolated, parent = _unpack(args, 2, "read")
        if type(isolated) is not bool:
            raise ProgrammingError("read takes a bool 'isolated'")
        db = self.db
        return await self._open_block(parent, db.read if isolated else db.unsafe_read)

    async def _open_block(self, parent: Any, enter: Enter) -> int:
        """Open a block, or a nested level of the block ``parent``: the engine's own rules
        apply in the block's task (a savepoint, or a ReentrancyError for a read inside a
        transaction, a transaction inside a read, a read inside a read)."""
        if parent is None:
            held = None
            stack: list[ThreadBlock] = []
        else:
            held = self.blocks.get(_int(parent, "block"))
            if held is None:
                raise ProgrammingError(f"no open block {parent} on this connection")
            stack = [held.block]
        block, begin = opening(stack, enter)
        if held is not None:
            held.depth += 1  # counted before the await: a close meanwhile must undo it too
            try:
                await begin()
            except BaseException:
                held.depth -= 1
                raise
            return _int(parent, "block")
        value = await begin()
        fresh = _Held(block, 1, value if isinstance(value, ReadSession) else None)
        if self.closed:  # the client went away while waiting for the lock or a reader
            await _roll_back(fresh)
            raise ClosedError("the connection closed while the block began")
        block_id = next(self.block_ids)
        self.blocks[block_id] = fresh
        self.server._state_changed()
        return block_id

    async def op_end(self, args: list[Any]) -> Any:
        block_id, failed = _unpack(args, 2, "end")
        block_id = _int(block_id, "block")
        if type(failed) is not bool:
            raise ProgrammingError("end takes a bool 'failed'")
        held = self.blocks.get(block_id)
        if held is None:
            raise ProgrammingError(f"no open transaction {block_id} on this connection")
        held.depth -= 1
        if held.depth == 0:
            del self.blocks[block_id]
            self.server._state_changed()
        await closing(held.block, failed=failed)()
        return None

    async def op_interrupt(self, args: list[Any]) -> Any:
        """Interrupt this client's statements running now, touching as little else as rxdb
        allows (a no-op with nothing running):

        - in a read block: that block's connection, which the block holds alone;
        - in a transaction block: the writer, which the block holds alone;
        - outside blocks, a write: the writer, shared (if the write still waits for the
          write lock, the statement that holds it is the one interrupted);
        - outside blocks, a query: every connection, as :meth:`rxdb.Database.interrupt`
          does (pooled readers are shared with other clients' queries and watch runs).

        A backup of this client in flight stops after its current step.
        """
        _unpack(args, 0, "interrupt")
        for backup in self.backups:
            backup.stop("interrupted")
        if self.loose_reads:
            self.db.interrupt_threadsafe()
            return None
        targets = [self._connection_of(h) for h in self.blocks.values() if h.running]
        if self.loose_writes:
            targets.append(_writer_of(self.db))
        for worker in targets:
            if worker is not None:
                worker.interrupt()
        return None

    def _connection_of(self, held: _Held) -> Worker[sqlite3.Connection] | None:
        if held.read is not None:
            try:
                return held.read.worker
            except ClosedError:  # the block ended meanwhile
                return None
        return _writer_of(self.db)

    async def _stop_running(self, held: _Held) -> None:
        """Interrupt the statements running in a gone client's block until none does."""
        while held.running:
            worker = self._connection_of(held)
            if worker is not None:
                worker.interrupt()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(INTERRUPT_REPEAT):
                    await self.server.wait_until(lambda: not held.running)

    async def op_backup(self, args: list[Any]) -> Any:
        """Back the database up into a file on the server's machine (an absolute path),
        from one snapshot. With a subscription id, each step's progress is pushed as an event
        ``[remaining, total]``; unsubscribing it stops the backup at the next step."""
        target, pages_per_step, progress_id, block = _unpack(args, 4, "backup")
        target = _str(target, "backup target")
        if not target or "\x00" in target or not os.path.isabs(target):
            raise ProgrammingError(
                f"a backup target must be an absolute path on the server's machine, not {target!r}"
            )
        if type(pages_per_step) is not int or not -_C_INT <= pages_per_step < _C_INT:
            raise ProgrammingError("pages_per_step must be a 32-bit integer")
        backup = _Backup()
        if progress_id is not None:
            progress_id = self._new_subscription_id(progress_id)
        loop = asyncio.get_running_loop()

        def progress(step: BackupProgress) -> None:  # on the worker thread that copies
            if backup.stopped is not None:
                raise InterruptError(f"the backup was stopped: {backup.stopped}")
            if progress_id is not None:
                event = Event(progress_id, EventKind.NEXT, [step.remaining, step.total])
                loop.call_soon_threadsafe(self._send, event)

        self.backups.add(backup)
        if progress_id is not None:
            self.subscriptions[progress_id] = backup
        self.server._state_changed()

        async def run() -> None:
            try:
                await self.db.backup(target, pages_per_step=pages_per_step, progress=progress)
            except sqlite3.Error as error:  # opening the target file failed
                raise from_sqlite(error, None, f"cannot back up into {target!r}") from error

        try:
            # In a block only to fail as locally (ReentrancyError); never a loose statement:
            # interrupting it stops this backup alone.
            await self._in_block(block, run, kind=None)()
        finally:
            self.backups.discard(backup)
            if progress_id is not None and self.subscriptions.get(progress_id) is backup:
                del self.subscriptions[progress_id]
            self.server._state_changed()
        return None

    async def op_watch(self, args: list[Any]) -> Any:
        sub_id, sql, params, distinct = _unpack(args, 4, "watch")
        sub_id = self._new_subscription_id(sub_id)
        stream = self.db.watch(_str(sql, "sql"), _params(params), distinct=distinct is not False)
        self._subscribe(sub_id, stream, list)
        return None

    async def op_table_updates(self, args: list[Any]) -> Any:
        sub_id, tables, kinds = _unpack(args, 3, "table_updates")
        sub_id = self._new_subscription_id(sub_id)
        wanted = None if tables is None else [_str(t, "table") for t in _list(tables, "tables")]
        wanted_kinds = None
        if kinds is not None:
            try:
                wanted_kinds = [UpdateKind(k) for k in _list(kinds, "kinds")]
            except ValueError as error:
                raise ProgrammingError(f"unknown update kind: {error}") from None
        self._subscribe(sub_id, self.db.table_updates(wanted, wanted_kinds), notify_to_wire)
        return None

    async def op_unsubscribe(self, args: list[Any]) -> Any:
        (sub_id,) = _unpack(args, 1, "unsubscribe")
        self._drop_subscription(_int(sub_id, "subscription"))
        return None

    async def op_notify_updates(self, args: list[Any]) -> Any:
        (updates,) = _unpack(args, 1, "notify_updates")
        await self.db.notify_updates(*(update_from_wire(u) for u in _list(updates, "updates")))
        return None

    async def op_track_foreign_writes(self, args: list[Any]) -> Any:
        _unpack(args, 0, "track_foreign_writes")
        await self.db.track_foreign_writes()

    async def op_untrack_foreign_writes(self, args: list[Any]) -> Any:
        _unpack(args, 0, "untrack_foreign_writes")
        await self.db.untrack_foreign_writes()

    def _new_subscription_id(self, value: Any) -> int:
        sub_id = _int(value, "subscription")
        if sub_id in self.subscriptions:
            raise ProgrammingError(f"subscription {sub_id} already exists on this connection")
        return sub_id

    def _subscribe(self, sub_id: int, stream: Any, convert: Callable[[Any], Any]) -> None:
        def on_next(value: Any) -> None:
            if sub_id in self.subscriptions:
                self._send_checked(Event(sub_id, EventKind.NEXT, convert(value)))

        def on_error(error: Exception) -> None:
            if self.subscriptions.pop(sub_id, None) is not None:
                self.server._state_changed()
                self._send(Event(sub_id, EventKind.ERROR, None, error_to_wire(error)))

        def on_completed() -> None:
            if self.subscriptions.pop(sub_id, None) is not None:
                self.server._state_changed()
                self._send(Event(sub_id, EventKind.COMPLETE))

        # Registered first: the first value may be delivered during subscribe().
        self.subscriptions[sub_id] = _Pending()
        self.server._state_changed()
        try:
            disposable = stream.subscribe(on_next, on_error, on_completed)
        except BaseException:
            if self.subscriptions.pop(sub_id, None) is not None:
                self.server._state_changed()
            raise
        if sub_id in self.subscriptions and not self.closed:
            self.subscriptions[sub_id] = disposable
        else:
            disposable.dispose()

    def _drop_subscription(self, sub_id: int) -> None:
        subscription = self.subscriptions.pop(sub_id, None)
        if subscription is not None:
            self.server._state_changed()
            subscription.dispose()


class _Pending(abc.DisposableBase):
    """Stands in for a subscription while ``subscribe()`` runs."""

    def dispose(self) -> None:
        pass


async def _roll_back(held: _Held) -> None:
    """Undo every open level of a client's block, innermost first (the outermost rollback
    undoes the whole transaction and ends the block's task)."""
    depth, held.depth = held.depth, 0
    for _ in range(depth):
        try:
            await closing(held.block, failed=True)()
        except Exception:
            LOG.exception("rolling back a client's transaction failed")


_OPS: Final[dict[str, Callable[[Session, list[Any]], Coroutine[Any, Any, Any]]]] = {
    "execute": Session.op_execute,
    "execute_many": Session.op_execute_many,
    "execute_script": Session.op_execute_script,
    "fetch_all": Session.op_fetch_all,
    "fetch_one": Session.op_fetch_one,
    "begin": Session.op_begin,
    "read": Session.op_read,
    "end": Session.op_end,
    "interrupt": Session.op_interrupt,
    "backup": Session.op_backup,
    "watch": Session.op_watch,
    "table_updates": Session.op_table_updates,
    "unsubscribe": Session.op_unsubscribe,
    "notify_updates": Session.op_notify_updates,
    "track_foreign_writes": Session.op_track_foreign_writes,
    "untrack_foreign_writes": Session.op_untrack_foreign_writes,
}


def _writer_of(db: Database) -> Worker[sqlite3.Connection] | None:
    """The served database's writer connection, for interrupting it alone. rxdb has no
    public way to interrupt one connection (``Database.interrupt`` stops them all), so this
    reaches into the engine; the interrupt rules in :meth:`Session.op_interrupt` need it."""
    writer = db._engine._writer
    return None if writer is None else writer.worker


# -- argument checks (a request is well-formed msgpack; its arguments may still be wrong) --


def _controls_transactions(sql: str) -> bool:
    try:
        return analyze(sql).kind is StatementKind.TRANSACTION
    except Unanalyzable:
        return False  # SQLite will say what is wrong with it


def _unpack(args: list[Any], count: int, op: str) -> list[Any]:
    if len(args) != count:
        raise ProgrammingError(f"{op!r} takes {count} arguments, got {len(args)}")
    return args


def _str(value: Any, what: str) -> str:
    if type(value) is not str:
        raise ProgrammingError(f"{what} must be a string, not {type(value).__name__}")
    return value


def _int(value: Any, what: str) -> int:
    if type(value) is not int:
        raise ProgrammingError(f"{what} id must be an integer, not {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProgrammingError(f"{what} must be an array")
    return value


def _params(value: Any) -> Any:
    if not isinstance(value, list | tuple | dict):
        raise ProgrammingError("parameters must be an array or a map")
    return value

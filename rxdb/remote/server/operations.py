"""What a server does for each operation a client asks of it, on the served database.

One method per operation class of :mod:`rxdb.remote.wire.operations` (whose fields the wire
has already checked). The meaning is checked here: a block this connection does not hold, a
backup target that is not an absolute path, a BEGIN sent outside a block. Such a mistake
fails only its request, as the same call would fail locally.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, Final, Literal

from reactivex import abc

from parser import StatementKind, Unanalyzable, analyze
from rxdb._types import BackupProgress
from rxdb.api import AsyncDatabase
from rxdb.errors import InterruptError, ProgrammingError
from rxdb.remote.server.blocks import Blocks
from rxdb.remote.server.served import TracksForeignWrites
from rxdb.remote.server.subscriptions import Subscriptions
from rxdb.remote.wire.messages import Event, EventKind
from rxdb.remote.wire.operations import (
    Backup,
    Begin,
    End,
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
    Unsubscribe,
    UntrackForeignWrites,
    Watch,
    WatchMany,
)
from rxdb.remote.wire.states import state_to_wire
from rxdb.rows import Rows
from rxdb.watch.states import WatchState

__all__ = ("Operations",)


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


class Operations:
    """Runs one client's operations on the served database."""

    def __init__(
        self,
        db: AsyncDatabase,
        blocks: Blocks,
        subscriptions: Subscriptions,
        send: Callable[[Event], None],
    ) -> None:
        self.db = db
        self.blocks = blocks
        self.subscriptions = subscriptions
        self.backups: set[_Backup] = set()
        self._send = send

    async def run(self, operation: Operation) -> Any:
        """Run ``operation``; its result is the answer.

        :raises rxdb.ProgrammingError: for an operation a server does not take.
        :raises rxdb.RxdbError: whatever the database raises.
        """
        handler = _HANDLERS.get(type(operation))
        if handler is None:
            raise ProgrammingError(f"a server does not take {type(operation).__name__}")
        return await handler(self, operation)

    # -- statements -------------------------------------------------------------------------

    async def _statement(
        self,
        sql: str,
        block: int | None,
        run: Callable[[], Coroutine[Any, Any, Any]],
        kind: Literal["read", "write"],
    ) -> Any:
        if block is None and _controls_transactions(sql):
            # Each request runs in a task of its own: a transaction it opened would be
            # rolled back as that task ends, and the client's next statement autocommit.
            raise ProgrammingError(
                "BEGIN/COMMIT/ROLLBACK/SAVEPOINT sent on their own do not span requests to "
                "a server; use 'async with db.transaction():' on the client"
            )
        return await self.blocks.route(block, run, kind=kind)()

    async def execute(self, op: Execute) -> Any:
        return await self._statement(
            op.sql, op.block, lambda: self.db.execute(op.sql, op.params), "write"
        )

    async def fetch_all(self, op: FetchAll) -> Any:
        return await self._statement(
            op.sql, op.block, lambda: self.db.fetch_all(op.sql, op.params), "read"
        )

    async def fetch_one(self, op: FetchOne) -> Any:
        return await self._statement(
            op.sql, op.block, lambda: self.db.fetch_one(op.sql, op.params), "read"
        )

    async def execute_many(self, op: ExecuteMany) -> Any:
        run = self.blocks.route(
            op.block, lambda: self.db.execute_many(op.sql, op.param_sets), kind="write"
        )
        return await run()

    async def execute_script(self, op: ExecuteScript) -> Any:
        run = self.blocks.route(op.block, lambda: self.db.execute_script(op.script), kind="write")
        return await run()

    # -- blocks -----------------------------------------------------------------------------

    async def begin(self, op: Begin) -> int:
        db, mode = self.db, op.mode
        return await self.blocks.open(op.parent, lambda: db.transaction(mode))

    async def open_read(self, op: OpenRead) -> int:
        """A read block (``isolated``: one snapshot, as ``db.read()``; else as
        ``db.unsafe_read()``) that holds one connection for this client until ``end``."""
        return await self.blocks.open(
            op.parent, self.db.read if op.isolated else self.db.unsafe_read
        )

    async def end(self, op: End) -> None:
        await self.blocks.end(op.block, failed=op.failed)

    async def interrupt(self, op: Interrupt) -> None:
        """Interrupt this client's statements (see :meth:`Blocks.interrupt`); a backup of
        this client in flight stops after its current step."""
        self.stop_backups("interrupted")
        self.blocks.interrupt()

    def stop_backups(self, reason: str) -> None:
        for backup in self.backups:
            backup.stop(reason)

    # -- backup -----------------------------------------------------------------------------

    async def backup(self, op: Backup) -> None:
        """Back the database up into a file on the server's machine (an absolute path),
        from one snapshot. With a subscription id, each step's progress is pushed as an
        event; unsubscribing it stops the backup at the next step."""
        target = op.target
        if not target or "\x00" in target or not os.path.isabs(target):
            raise ProgrammingError(
                f"a backup target must be an absolute path on the server's machine, not {target!r}"
            )
        backup = _Backup()
        progress_id = None if op.progress is None else self.subscriptions.new_id(op.progress)
        loop = asyncio.get_running_loop()
        send = self._send

        def progress(step: BackupProgress) -> None:  # on the worker thread that copies
            if backup.stopped is not None:
                raise InterruptError(f"the backup was stopped: {backup.stopped}")
            if progress_id is not None:
                loop.call_soon_threadsafe(send, Event(progress_id, EventKind.NEXT, step))

        self.backups.add(backup)
        if progress_id is not None:
            self.subscriptions.add(progress_id, backup)

        async def run() -> None:
            await self.db.backup(target, pages_per_step=op.pages_per_step, progress=progress)

        try:
            # In a block only to fail as locally (ReentrancyError); never a loose statement:
            # interrupting it stops this backup alone.
            await self.blocks.route(op.block, run, kind=None)()
        finally:
            self.backups.discard(backup)
            if progress_id is not None:
                self.subscriptions.drop_if(progress_id, backup)

    # -- subscriptions and the rest -------------------------------------------------------

    async def watch(self, op: Watch) -> None:
        sub_id = self.subscriptions.new_id(op.subscription)
        stream = self.db.watch(op.sql, op.params, distinct=op.distinct, recover=op.recover)
        if op.states:
            self.subscriptions.subscribe(sub_id, stream.states(), _state_of(list))
        else:
            self.subscriptions.subscribe(sub_id, stream, list)

    async def watch_many(self, op: WatchMany) -> None:
        sub_id = self.subscriptions.new_id(op.subscription)
        queries = {name: (sql, params) for name, sql, params in op.queries}
        stream = self.db.watch_many(queries, distinct=op.distinct, recover=op.recover)
        if op.states:
            self.subscriptions.subscribe(sub_id, stream.states(), _state_of(_group))
        else:
            self.subscriptions.subscribe(sub_id, stream, _group)

    async def table_updates(self, op: TableUpdates) -> None:
        sub_id = self.subscriptions.new_id(op.subscription)
        self.subscriptions.subscribe(sub_id, self.db.table_updates(op.tables, op.kinds), _same)

    async def unsubscribe(self, op: Unsubscribe) -> None:
        self.subscriptions.drop(op.subscription)

    async def notify_updates(self, op: NotifyUpdates) -> None:
        await self.db.notify_updates(*op.updates)

    async def track_foreign_writes(self, op: TrackForeignWrites) -> None:
        await self._tracker().track_foreign_writes()

    async def untrack_foreign_writes(self, op: UntrackForeignWrites) -> None:
        await self._tracker().untrack_foreign_writes()

    def _tracker(self) -> TracksForeignWrites:
        if not isinstance(self.db, TracksForeignWrites):
            raise ProgrammingError("the served database does not track foreign writes")
        return self.db


def _same(value: Any) -> Any:
    return value


def _group(results: dict[str, Rows]) -> dict[str, list[Any]]:
    return {name: list(rows) for name, rows in results.items()}


def _state_of(value_out: Callable[[Any], Any]) -> Callable[[WatchState[Any]], list[Any]]:
    return lambda state: state_to_wire(state, value_out)


def _controls_transactions(sql: str) -> bool:
    try:
        return analyze(sql).kind is StatementKind.TRANSACTION
    except Unanalyzable:
        return False  # the database will say what is wrong with it


_HANDLERS: Final[dict[type[Any], Callable[[Operations, Any], Coroutine[Any, Any, Any]]]] = {
    Execute: Operations.execute,
    ExecuteMany: Operations.execute_many,
    ExecuteScript: Operations.execute_script,
    FetchAll: Operations.fetch_all,
    FetchOne: Operations.fetch_one,
    Begin: Operations.begin,
    OpenRead: Operations.open_read,
    End: Operations.end,
    Interrupt: Operations.interrupt,
    Backup: Operations.backup,
    Watch: Operations.watch,
    WatchMany: Operations.watch_many,
    TableUpdates: Operations.table_updates,
    Unsubscribe: Operations.unsubscribe,
    NotifyUpdates: Operations.notify_updates,
    TrackForeignWrites: Operations.track_foreign_writes,
    UntrackForeignWrites: Operations.untrack_foreign_writes,
}

"""Where a PostgreSQL engine's change messages come from, and how they are spelled.

At open the engine installs capture (:mod:`~rxdb.engines.postgres.capture`: triggers that
``pg_notify`` every writer's commits) and joins the process's listener for the database
(:mod:`~rxdb.engines.postgres.listener`). Then it runs in one of two modes:

- **capture** (the triggers are there): every commit, this engine's included, reaches the
  bus through the listener, naming the tables and kinds it wrote. Where no event trigger
  keeps the triggers in step with the schema (a role that is not a superuser), the engine
  puts triggers on new tables right after its own DDL, in the same transaction, and
  announces its DDL as "anything may have changed"; other writers' DDL is found by the
  listener's periodic check.
- **announce** (rxdb may not create the triggers, or is told not to, and nobody else did):
  the engine announces each of its own commits as "anything may have changed", on the bus
  and, through ``pg_notify``, to every other process (inside a ``transaction()`` block, so
  the notification commits with it; right after the commit for a statement on its own);
  other programs' writes are not seen (announce them with ``notify_updates``).

``install`` (the database's ``track_foreign_writes`` option) decides: ``None`` installs
capture where rxdb may and falls back on announce mode where it may not; ``True`` installs
it or fails; ``False`` never installs it (it is used if someone else did).

After every reconnect of the listener (notifications sent meanwhile are lost for good) and
for every schema change, the message is "anything may have changed".

Names: the capture names a table ``schema.table`` as the catalog stores it
(``public.orders``). A table whose schema is on the writer's ``search_path`` is announced
under its bare name too (``orders``), and a bare name announced with ``notify_updates`` is
announced qualified with each schema of the path too, so that ``table_updates(["orders"])``
and ``notify_updates("orders")`` mean what they mean on SQLite. A name too many only costs a
re-run.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Iterable
from typing import Literal

import asyncpg

from rxdb.bus import Bus
from rxdb.engines.postgres import capture, listener
from rxdb.engines.postgres.connections import Connection
from rxdb.engines.postgres.dsn import Dsn
from rxdb.engines.postgres.failures import DRIVER_ERRORS, translate
from rxdb.updates import NotifyTablesUpdated, TableUpdate

__all__ = ("Changes", "Mode")

LOG = logging.getLogger("rxdb.engine")

Mode = Literal["capture", "announce"]

FOREIGN = "postgresql"
"""The origin of messages about commits no rxdb engine made (``psql``, a cron job)."""

# Statuses of statements that change rows only: the triggers see those. Any other statement
# may change the schema (CREATE, ALTER, DROP, REFRESH...).
_ROW_STATUSES = frozenset(
    {"INSERT", "UPDATE", "DELETE", "MERGE", "SELECT", "COPY", "TRUNCATE", "FETCH", "MOVE"}
)
_NOTIFY = "SELECT pg_catalog.pg_notify($1, $2)"
_NOT_PERMITTED = (asyncpg.InsufficientPrivilegeError, asyncpg.ReadOnlySQLTransactionError)


class Changes:
    """The change messages of one engine (``key``, ``origin``) on ``bus``."""

    def __init__(self, *, dsn: Dsn, key: str, origin: str, bus: Bus, install: bool | None) -> None:
        self._dsn = dsn
        self._install = install
        self._key = key
        self._origin = origin
        self._bus = bus
        self.channel = capture.channel_for(dsn.database)
        self.mode: Mode = "announce"
        self.event_trigger = False
        self._search_path: tuple[str, ...] = ()
        self._sequences: collections.Counter[str] = collections.Counter()
        self._schema_changed = False  # by this engine's statements since its last commit
        self._membership: listener.Membership | None = None
        # What announce mode tells other processes after a commit: capture's payload for a
        # schema change, "anything may have changed", under this engine's origin.
        self._everything = json.dumps([capture.PAYLOAD_VERSION, "DDL", None, None, origin])

    async def start(self, conn: Connection) -> None:
        """Install capture through ``conn`` (the writer, outside a transaction) where rxdb
        may, learn the writer's ``search_path``, and join the listener: from here on every
        commit reaches the bus.

        :raises rxdb.DatabaseError: (a subclass) if the server fails otherwise.
        """
        try:
            if self._install is False:
                await self._use_installed(conn)
            else:
                await self.install(conn, required=self._install is True)
            path = await conn.fetchval("SELECT pg_catalog.current_schemas(false)")
        except DRIVER_ERRORS as error:
            raise translate(error, None, "starting change capture") from error
        self._search_path = tuple(path or ())
        self._membership = await listener.join(
            self._dsn.url, self.channel, self._changed, self._reset
        )

    async def install(self, conn: Connection, *, required: bool = True) -> None:
        """Install capture: capture mode. Where rxdb may not, raise if ``required``, else
        use capture if someone else installed it, or announce mode.

        :raises rxdb.OperationalError: (``required``) if the role may not install it
            (SQLSTATE 42501) or the database is read-only (25006).
        """
        try:
            installed = await capture.install_capture(conn, self.channel)
        except _NOT_PERMITTED as error:
            if required:
                raise translate(error, None, "installing change capture") from error
            await self._use_installed(conn)
            LOG.info("rxdb may not install its capture triggers (%s): %s mode", error, self.mode)
            return
        self.mode = "capture"
        self.event_trigger = installed.event_trigger

    async def _use_installed(self, conn: Connection) -> None:
        installed = await capture.capture_installed(conn, self.channel)
        self.mode = "capture" if installed else "announce"
        self.event_trigger = False  # if there is one, capture works the same without knowing

    async def uninstall(self, conn: Connection) -> None:
        """Remove capture from the database (for every process): announce mode."""
        try:
            await capture.uninstall_capture(conn)
        except DRIVER_ERRORS as error:
            raise translate(error, None, "removing change capture") from error
        self.mode = "announce"
        self.event_trigger = False

    async def stop(self) -> None:
        if self._membership is not None:
            await self._membership.leave()

    # -- this engine's statements and commits -------------------------------------------------

    async def after_statement(self, conn: Connection, status: str | None) -> None:
        """Note a statement the writer ran (``status``: its command status; ``None`` for a
        script); after one that may have changed the schema where no event trigger
        instruments new tables, put triggers on them now, in the statement's transaction,
        before anything can write to them."""
        if status is not None and status.partition(" ")[0] in _ROW_STATUSES:
            return
        self._schema_changed = True
        if self.mode == "capture" and not self.event_trigger:
            try:
                await capture.ensure_triggers(conn)
            except DRIVER_ERRORS as error:
                raise translate(error, None, "instrumenting new tables") from error

    async def before_commit(self, conn: Connection) -> None:
        """Before the COMMIT of a ``transaction()`` block: in announce mode, tell the other
        processes inside the transaction (the notification commits with it, or not at all)."""
        if self.mode == "announce":
            try:
                await conn.execute(_NOTIFY, self.channel, self._everything)
            except DRIVER_ERRORS as error:
                raise translate(error, _NOTIFY, "announcing the commit") from error

    async def committed(self, conn: Connection, *, notified: bool) -> None:
        """After a commit of the writer (``conn``, outside a transaction now); ``notified``:
        :meth:`before_commit` ran inside it."""
        schema_changed, self._schema_changed = self._schema_changed, False
        if self.mode == "capture":
            if schema_changed and not self.event_trigger:
                self._publish(self._origin, frozenset(), everything=True)
            return  # the listener brings the rest
        self._publish(self._origin, frozenset(), everything=True)
        if notified:
            return
        try:
            await conn.execute(_NOTIFY, self.channel, self._everything)
        except DRIVER_ERRORS:
            # The commit stands; only other processes miss this one message (the window
            # between a statement's own commit and this notification).
            LOG.warning("telling other processes of a commit failed", exc_info=True)

    def announce(self, updates: frozenset[TableUpdate], *, everything: bool) -> None:
        """Publish what ``notify_updates`` (or a restore) says changed, under this engine's
        origin; bare names also as each schema of the path has them."""
        qualified = {
            TableUpdate(f"{schema}.{u.table}", u.kind)
            for u in updates
            if "." not in u.table
            for schema in self._search_path
        }
        self._publish(self._origin, updates | qualified, everything=everything)

    # -- the listener's --------------------------------------------------------------------

    def _changed(
        self, updates: frozenset[TableUpdate], origin: str | None, everything: bool
    ) -> None:
        if self.mode == "announce" and origin == self._origin:
            return  # published at the commit already
        self._publish(origin or FOREIGN, updates | self._bare(updates), everything=everything)

    def _reset(self) -> None:
        self._publish(FOREIGN, frozenset(), everything=True)

    def _bare(self, updates: Iterable[TableUpdate]) -> frozenset[TableUpdate]:
        bare = set()
        for update in updates:
            schema, _, table = update.table.partition(".")
            if schema in self._search_path:
                bare.add(TableUpdate(table, update.kind))
        return frozenset(bare)

    def _publish(self, origin: str, updates: frozenset[TableUpdate], *, everything: bool) -> None:
        self._sequences[origin] += 1
        self._bus.publish(
            NotifyTablesUpdated(self._key, origin, self._sequences[origin], updates, everything)
        )

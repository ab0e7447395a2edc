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
  the engine announces its own commits with what each statement may have written, on the
  bus and, through ``pg_notify`` in the capture's payload, to every other process
  (:mod:`~rxdb.engines.postgres.announcer`); other programs' writes are not seen (announce
  them with ``notify_updates``).

``install`` (the database's ``track_foreign_writes`` option) decides: ``None`` installs
capture where rxdb may and falls back on announce mode where it may not; ``True`` installs
it or fails; ``False`` never installs it (it is used if someone else did).

After every reconnect of the listener (notifications sent meanwhile are lost for good) and
for every schema change, the message is "anything may have changed".

One message per commit per process: every engine of one database on one bus in this
process hears every notification through the shared listener, but only the first of them
(the *leader*) publishes what it hears; when it leaves, the next one leads and first
announces "anything may have changed" (what the old leader had not published yet when it
left is gone with it).

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
import logging
import threading
import weakref
from collections.abc import Iterable
from typing import Literal

import asyncpg

from rxdb.bus import Bus
from rxdb.engines.postgres import capture, listener
from rxdb.engines.postgres.announcer import Announcer
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
_NOT_PERMITTED = (asyncpg.InsufficientPrivilegeError, asyncpg.ReadOnlySQLTransactionError)


class Changes:
    """The change messages of one engine (``key``, ``origin``) on ``bus``."""

    def __init__(self, *, dsn: Dsn, key: str, origin: str, bus: Bus, install: bool | None) -> None:
        self._dsn = dsn
        self._install = install
        self._key = key
        self.origin = origin
        self.channel = capture.channel_for(dsn.database)
        self.mode: Mode = "announce"
        self.event_trigger = False
        self.search_path: tuple[str, ...] = ()
        self._group = _group(bus, key)
        self._schema_changed = False  # by this engine's statements since its last commit
        self._membership: listener.Membership | None = None
        self._announcer = Announcer(self.channel, origin)

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
        self.search_path = tuple(path or ())
        self._group.join(self)  # before the listener: a leader must hear from the start
        try:
            self._membership = await listener.join(
                self._dsn.url, self.channel, self._changed, self._reset
            )
        except BaseException:
            self._group.leave(self)
            raise

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
        self._announcer.everything()

    async def stop(self) -> None:
        if self._membership is not None:
            self._group.leave(self)
            await self._membership.leave()

    def schema_may_have_changed(self) -> None:
        """Forget the catalog write sets come from: the next statement reads it again."""
        self._announcer.schema_may_have_changed()

    # -- this engine's statements and commits -------------------------------------------------

    def began(self) -> None:
        """The writer starts a transaction (or a statement on its own): whatever an earlier
        one that rolled back may have written is not to be announced."""
        self._announcer.began()

    async def before_statement(self, conn: Connection, sql: str) -> None:
        """In announce mode, add what ``sql`` may write to the transaction's write set,
        before it runs (a statement that fails may still have committed)."""
        if self.mode == "announce":
            await self._announcer.before_statement(conn, sql)

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
        processes inside the transaction (the notifications commit with it, or not at all)."""
        if self.mode == "announce":
            try:
                await self._announcer.send(conn, after_commit=False)
            except DRIVER_ERRORS as error:
                raise translate(error, None, "announcing the commit") from error

    async def committed(self, conn: Connection, *, notified: bool) -> None:
        """After a commit of the writer (``conn``, outside a transaction now); ``notified``:
        :meth:`before_commit` ran inside it."""
        schema_changed, self._schema_changed = self._schema_changed, False
        if self.mode == "capture":
            self._announcer.began()
            if schema_changed and not self.event_trigger:
                self._publish(self.origin, frozenset(), everything=True)
            return  # the listener brings the rest
        if not notified:
            try:
                await self._announcer.send(conn, after_commit=True)
            except DRIVER_ERRORS:
                # The commit stands; only other processes miss this one message (the window
                # between a statement's own commit and this notification).
                LOG.warning("telling other processes of a commit failed", exc_info=True)
        writes = self._announcer.committed()
        if writes is None:
            self._publish(self.origin, frozenset(), everything=True)
        elif writes:
            updates = frozenset(TableUpdate(f"{w.schema}.{w.name}", w.kind) for w in writes)
            self._publish(self.origin, updates | _bare(updates, self.search_path), everything=False)

    def announce(self, updates: frozenset[TableUpdate], *, everything: bool) -> None:
        """Publish what ``notify_updates`` (or a restore) says changed, under this engine's
        origin; bare names also as each schema of the path has them."""
        qualified = {
            TableUpdate(f"{schema}.{u.table}", u.kind)
            for u in updates
            if "." not in u.table
            for schema in self.search_path
        }
        self._publish(self.origin, updates | qualified, everything=everything)

    # -- the listener's --------------------------------------------------------------------

    def _changed(
        self, updates: frozenset[TableUpdate], origin: str | None, everything: bool
    ) -> None:
        group = self._group
        if not group.leads(self) or (origin is not None and group.announces(origin)):
            return  # another engine publishes it (an announcing one did at its commit)
        bare = _bare(updates, group.search_paths())
        self._publish(origin or FOREIGN, updates | bare, everything=everything)

    def _reset(self) -> None:
        if self._group.leads(self):
            self._publish(FOREIGN, frozenset(), everything=True)

    def _publish(self, origin: str, updates: frozenset[TableUpdate], *, everything: bool) -> None:
        self._group.publish(origin, updates, everything=everything)


def _bare(updates: Iterable[TableUpdate], path: Iterable[str]) -> frozenset[TableUpdate]:
    """``updates`` of tables of the schemas of ``path``, under their bare names."""
    schemas = frozenset(path)
    bare = set()
    for update in updates:
        schema, _, table = update.table.partition(".")
        if schema in schemas:
            bare.add(TableUpdate(table, update.kind))
    return frozenset(bare)


class _Group:
    """The engines of one database on one bus in this process, and the sequence numbers of
    the messages they publish there.

    Each of them hears every notification of the shared listener; had each published them,
    the bus would carry every commit once per engine. The oldest member leads: it alone
    publishes what the listener hears (see the module's docstring). Safe from any thread.
    """

    def __init__(self, bus: Bus, key: str) -> None:
        self._bus = bus
        self._key = key
        self._lock = threading.Lock()
        self._sequences: collections.Counter[str] = collections.Counter()
        self.members: tuple[Changes, ...] = ()  # replaced under the lock, read anywhere

    def join(self, member: Changes) -> None:
        with self._lock:
            self.members = (*self.members, member)

    def leave(self, member: Changes) -> None:
        with self._lock:
            led = self.leads(member)
            self.members = tuple(m for m in self.members if m is not member)
            handed_over = led and bool(self.members)
        if handed_over:
            # What the old leader's loop had not published yet is lost: resynchronise.
            self.publish(FOREIGN, frozenset(), everything=True)

    def leads(self, member: Changes) -> bool:
        members = self.members
        return bool(members) and members[0] is member

    def announces(self, origin: str) -> bool:
        """Whether ``origin`` is a member that publishes its own commits (announce mode)."""
        return any(m.origin == origin and m.mode == "announce" for m in self.members)

    def search_paths(self) -> frozenset[str]:
        return frozenset(schema for m in self.members for schema in m.search_path)

    def publish(self, origin: str, updates: frozenset[TableUpdate], *, everything: bool) -> None:
        with self._lock:  # one origin's messages reach the bus in the order of their numbers
            self._sequences[origin] += 1
            self._bus.publish(
                NotifyTablesUpdated(self._key, origin, self._sequences[origin], updates, everything)
            )


_GROUPS: weakref.WeakValueDictionary[tuple[Bus, str], _Group] = weakref.WeakValueDictionary()
_GROUPS_LOCK = threading.Lock()


def _group(bus: Bus, key: str) -> _Group:
    """The group of ``key`` on ``bus``: one while any engine of it exists."""
    with _GROUPS_LOCK:
        group = _GROUPS.get((bus, key))
        if group is None:
            group = _GROUPS[bus, key] = _Group(bus, key)
        return group

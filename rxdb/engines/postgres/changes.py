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
  the engine announces its own commits, on the bus and, through ``pg_notify`` in the
  capture's payload, to every other process (inside a ``transaction()`` block, so the
  notifications commit with it; right after the commit for a statement on its own). Before
  each statement runs, its write set comes from the text and the catalog the writer sees
  (:mod:`~rxdb.engines.postgres.write_sets`: targets, foreign-key actions, ancestors; or
  "anything may have changed" where it may run code the text does not show); a transaction's
  sets are announced together after its outermost commit, and a rollback drops them (a
  savepoint rolled back keeps them: a spare re-run, never a missed one). The catalog is read
  on the writer, kept until a schema change, and checked where the notifications are sent:
  one statement compares its :data:`~parser.postgres.catalog.FINGERPRINT_SQL` digest with
  the one read with the catalog, so a trigger or foreign key another session added in
  between makes the commit "anything may have changed" rather than a precise, wrong
  message (PostgreSQL's locks keep the digest and the facts that acted on the written
  tables in step until the commit; a REPEATABLE READ or SERIALIZABLE transaction sees an
  old catalog, so its commits announce everything). Other programs' writes are not seen
  (announce them with ``notify_updates``).

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
import json
import logging
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import asyncpg

from parser.postgres import CATALOG_QUERY, PgCatalog
from parser.postgres.catalog import FINGERPRINT_SQL
from rxdb.bus import Bus
from rxdb.engines.postgres import capture, listener
from rxdb.engines.postgres.connections import Connection
from rxdb.engines.postgres.dsn import Dsn
from rxdb.engines.postgres.failures import DRIVER_ERRORS, translate
from rxdb.engines.postgres.write_sets import Write, classify, needs_catalog, write_set
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind

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
_NOTIFY = "SELECT pg_catalog.pg_notify($1, $2)"
_CATALOG = f"SELECT pg_catalog.row_to_json(c)::text FROM ({CATALOG_QUERY}) c"
_FORGET_SAVEPOINT = "ROLLBACK TO SAVEPOINT rxdb_catalog; RELEASE SAVEPOINT rxdb_catalog"
# Sends the write set's payloads ($3) if the catalog it came from still holds (its digest is
# $2, and the transaction sees the latest catalog: after the commit ($5), or READ
# COMMITTED), else "anything may have changed" ($4); answers which.
_ANNOUNCE = f"""
WITH fresh AS (
    SELECT ($5 OR pg_catalog.current_setting('transaction_isolation') = 'read committed')
           AND {FINGERPRINT_SQL} = $2 AS precise
)
SELECT precise,
       (SELECT count(*) FROM (
            SELECT pg_catalog.pg_notify($1, payload) FROM pg_catalog.unnest(
                CASE WHEN precise THEN $3::text[] ELSE ARRAY[$4::text] END) payload) sent)
FROM fresh
"""
_OPS = {UpdateKind.INSERT: "INSERT", UpdateKind.UPDATE: "UPDATE", UpdateKind.DELETE: "DELETE"}


@dataclass(slots=True)
class _Pending:
    """What the writer's transaction may have written so far (announce mode)."""

    writes: set[Write] = field(default_factory=set)
    everything: bool = False
    fingerprints: set[str | None] = field(default_factory=set)  # of the catalogs used


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
        # Announce mode: this transaction's writes, the catalog they come from (read on the
        # writer, kept until a schema change), and whether before_commit sent them precisely.
        self._pending = _Pending()
        self._catalog: PgCatalog | None = None
        self._precise = False
        # What announce mode tells other processes where it cannot be precise: capture's
        # payload for a schema change, "anything may have changed", under this origin.
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
        self._pending.everything = True

    async def stop(self) -> None:
        if self._membership is not None:
            self._group.leave(self)
            await self._membership.leave()

    def schema_may_have_changed(self) -> None:
        """Forget the catalog write sets come from: the next statement reads it again."""
        self._catalog = None

    # -- this engine's statements and commits -------------------------------------------------

    def began(self) -> None:
        """The writer starts a transaction (or a statement on its own): whatever an earlier
        one that rolled back may have written is not to be announced."""
        self._pending = _Pending()

    async def before_statement(self, conn: Connection, sql: str) -> None:
        """In announce mode, add what ``sql`` may write to the transaction's write set,
        before it runs (a statement that fails may still have committed)."""
        pending = self._pending
        if self.mode != "announce" or pending.everything:
            return
        analysis = classify(sql)
        if analysis is None:
            pending.everything = True
            return
        if not needs_catalog(analysis):
            return
        catalog = await self._writer_catalog(conn)
        writes = None if catalog is None else write_set(analysis, sql, catalog)
        if catalog is None or writes is None:
            pending.everything = True
            return
        pending.writes |= writes
        pending.fingerprints.add(catalog.fingerprint)

    async def _writer_catalog(self, conn: Connection) -> PgCatalog | None:
        """The catalog as the writer sees it (its search path, its temporary tables), read
        once and kept until a schema change; ``None`` if it cannot be read.

        Inside a transaction it is read in a savepoint rolled back at once: a failure does
        not fail the transaction, and the locks ``pg_get_viewdef`` takes on every view and
        the tables it reads are not held until the commit."""
        if self._catalog is not None:
            return self._catalog
        inside = conn.is_in_transaction()
        try:
            if inside:
                await conn.execute("SAVEPOINT rxdb_catalog")
            try:
                text = await conn.fetchval(_CATALOG)
            except DRIVER_ERRORS:
                if inside:
                    await conn.execute(_FORGET_SAVEPOINT)
                raise
            if inside:
                await conn.execute(_FORGET_SAVEPOINT)
        except DRIVER_ERRORS:
            LOG.warning("reading the catalog failed; announcing everything", exc_info=True)
            return None
        self._catalog = PgCatalog.from_row(json.loads(text))
        return self._catalog

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
                self._precise = await self._notify(conn, self._pending, after_commit=False)
            except DRIVER_ERRORS as error:
                raise translate(error, _ANNOUNCE, "announcing the commit") from error

    async def committed(self, conn: Connection, *, notified: bool) -> None:
        """After a commit of the writer (``conn``, outside a transaction now); ``notified``:
        :meth:`before_commit` ran inside it."""
        schema_changed, self._schema_changed = self._schema_changed, False
        pending, self._pending = self._pending, _Pending()
        if self.mode == "capture":
            if schema_changed and not self.event_trigger:
                self._publish(self.origin, frozenset(), everything=True)
            return  # the listener brings the rest
        if notified:
            precise = self._precise
        else:
            try:
                precise = await self._notify(conn, pending, after_commit=True)
            except DRIVER_ERRORS:
                # The commit stands; only other processes miss this one message (the window
                # between a statement's own commit and this notification).
                LOG.warning("telling other processes of a commit failed", exc_info=True)
                precise = False
        if not precise:
            self._catalog = None
            self._publish(self.origin, frozenset(), everything=True)
        elif pending.writes:
            updates = frozenset(TableUpdate(f"{w.schema}.{w.name}", w.kind) for w in pending.writes)
            self._publish(self.origin, updates | _bare(updates, self.search_path), everything=False)

    async def _notify(self, conn: Connection, pending: _Pending, *, after_commit: bool) -> bool:
        """Send the notifications of ``pending``; whether they name its write set (``False``:
        "anything may have changed")."""
        if pending.everything or len(pending.fingerprints) > 1:
            await conn.execute(_NOTIFY, self.channel, self._everything)
            return False
        if not pending.fingerprints:
            return True  # no statement that may write: nothing to tell
        [fingerprint] = pending.fingerprints
        payloads = [
            json.dumps([capture.PAYLOAD_VERSION, op, write.schema, write.name, self.origin])
            for write in pending.writes
            for op in ((_OPS[write.kind],) if write.kind is not None else _OPS.values())
        ]
        return bool(
            await conn.fetchval(
                _ANNOUNCE, self.channel, fingerprint, payloads, self._everything, after_commit
            )
        )

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

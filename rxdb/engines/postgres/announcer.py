"""Announce mode's side of the writer: what its transactions wrote, told to everyone.

Without the capture triggers (:mod:`~rxdb.engines.postgres.changes`), an engine announces its
own commits. Before each statement runs (a statement that fails may still have committed)
:class:`Announcer` adds what it may write (:mod:`~rxdb.engines.postgres.write_sets`) to the
transaction's pending set; after the outermost commit the engine publishes that set on the
bus, and other processes hear it through ``pg_notify`` in the capture triggers' payload
(inside a ``transaction()`` block, so the notifications commit with it; right after the
commit for a statement on its own). A rollback drops the set (the writer's ``began()``); a
savepoint rolled back keeps it: a spare re-run, never a missed one.

Write sets come from the catalog as the writer sees it (its search path, its temporary
tables), read once and kept until a schema change. Another session may change the facts a
set rests on meanwhile (a trigger, a foreign key, a view, a name), and nobody may tell this
process for a while (a program that is not rxdb: the listener's periodic check). So the
statement that sends the notifications first reads the catalog entries of the relations the
sets rest on again (:func:`parser.postgres.catalog.relation_entries`), with the names'
resolution and the called functions, and sends "anything may have changed" instead if any
of it differs. PostgreSQL's locks keep those facts as they were when the statements ran
until the commit (DDL on a table waits for the transaction that wrote it), so the check is
sound inside a READ COMMITTED transaction and after a commit; a REPEATABLE READ or
SERIALIZABLE transaction reads an old catalog, so its commits announce everything. The check
costs one catalog lookup per relation written, not one per relation of the database.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from parser.postgres import CATALOG_QUERY, PgCatalog, RelationName
from parser.postgres.catalog import relation_entries
from rxdb.engines.postgres import capture
from rxdb.engines.postgres.connections import Connection
from rxdb.engines.postgres.failures import DRIVER_ERRORS
from rxdb.engines.postgres.write_sets import Write, WriteSet, classify, needs_catalog, write_set
from rxdb.updates import UpdateKind

__all__ = ("Announcer",)

LOG = logging.getLogger("rxdb.engine")

_CATALOG = f"SELECT pg_catalog.row_to_json(c)::text FROM ({CATALOG_QUERY}) c"
_FORGET_SAVEPOINT = "ROLLBACK TO SAVEPOINT rxdb_catalog; RELEASE SAVEPOINT rxdb_catalog"
_NOTIFY = "SELECT pg_catalog.pg_notify($1, $2)"
# The facts the pending write sets rest on, as they are now: the search path, the catalog
# entries of the relations ($6), their children, what the statements' names ($7) mean, and
# whether a function of the names they call ($8) may write.
_FACTS = f"""pg_catalog.jsonb_build_object(
    'path', pg_catalog.to_jsonb(pg_catalog.current_schemas(true)),
    'relations', {relation_entries("$6::oid[]")},
    'children', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                        i.inhparent::bigint, i.inhrelid::bigint)
                        ORDER BY i.inhparent, i.inhrelid), '[]')
                   FROM pg_catalog.pg_inherits i
                   JOIN pg_catalog.pg_class ic ON ic.oid = i.inhrelid
                  WHERE i.inhparent = ANY($6::oid[])
                    AND (ic.relpersistence <> 't'
                         OR ic.relnamespace = pg_catalog.pg_my_temp_schema())),
    'names', (SELECT coalesce(pg_catalog.jsonb_agg(
                        pg_catalog.to_regclass(u.name)::oid::bigint ORDER BY u.ord), '[]')
                FROM pg_catalog.unnest($7::text[]) WITH ORDINALITY u(name, ord)),
    'calls', EXISTS (SELECT FROM pg_catalog.pg_proc p
                       JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
                      WHERE p.proname = ANY($8::text[]) AND p.provolatile <> 'i'
                        AND pn.nspname NOT IN ('pg_catalog', 'information_schema')))"""
# Sends the write sets' payloads ($3) if the facts are still those expected ($2) and the
# transaction sees the latest catalog (after the commit, $5, or READ COMMITTED), else
# "anything may have changed" ($4); answers which.
_ANNOUNCE = f"""
WITH fresh AS MATERIALIZED (
    SELECT ($5 OR pg_catalog.current_setting('transaction_isolation') = 'read committed')
           AND {_FACTS} = $2::jsonb AS precise
)
SELECT precise,
       (SELECT count(*) FROM (
            SELECT pg_catalog.pg_notify($1, payload) FROM pg_catalog.unnest(
                CASE WHEN precise THEN $3::text[] ELSE ARRAY[$4::text] END) payload) sent)
FROM fresh
"""
_OPS = {UpdateKind.INSERT: "INSERT", UpdateKind.UPDATE: "UPDATE", UpdateKind.DELETE: "DELETE"}


@dataclass(frozen=True, slots=True)
class _WriterCatalog:
    """The catalog as the writer read it, with each relation's entry as read (by schema and
    name) and the children of each relation (by oid), to check it against later."""

    catalog: PgCatalog
    entries: dict[tuple[str, str], list[Any]]
    children: dict[int, list[int]]

    @classmethod
    def from_text(cls, text: str) -> _WriterCatalog:
        row = json.loads(text)
        entries = json.loads(row["relations"])
        children: dict[int, list[int]] = {}
        for oid, _schema, _name, _kind, _definition, parents, *_ in entries:
            for parent in parents:
                children.setdefault(parent, []).append(oid)
        return cls(
            PgCatalog.from_row(row),
            {(entry[1], entry[2]): entry for entry in entries},
            children,
        )


@dataclass(slots=True)
class _Pending:
    """What the writer's transaction may have written so far, and what that rests on."""

    writes: set[Write] = field(default_factory=set)
    everything: bool = False
    catalogs: list[_WriterCatalog] = field(default_factory=list)  # used; one, or everything
    relations: set[tuple[str, str]] = field(default_factory=set)
    names: dict[RelationName, tuple[str, str]] = field(default_factory=dict)
    calls: set[str] = field(default_factory=set)

    def add(self, found: WriteSet, catalog: _WriterCatalog) -> None:
        if not any(used is catalog for used in self.catalogs):
            self.catalogs.append(catalog)
        self.writes |= found.writes
        self.relations.update((r.schema, r.name) for r in found.relations)
        self.names.update((name, (r.schema, r.name)) for name, r in found.names)
        self.calls |= found.calls


class Announcer:
    """Announce mode's pending writes and notifications for one engine's writer (``origin``,
    notifying ``channel``). Use from the engine's loop, under the writer's lock."""

    def __init__(self, channel: str, origin: str) -> None:
        self._channel = channel
        self._origin = origin
        self._pending = _Pending()
        self._catalog: _WriterCatalog | None = None
        self._sent: bool | None = None  # the pending set went out (precise) or everything
        # Capture's payload for a schema change: "anything may have changed", under origin.
        self._everything = json.dumps([capture.PAYLOAD_VERSION, "DDL", None, None, origin])

    def began(self) -> None:
        """A new transaction: what an earlier one that rolled back wrote is not announced."""
        self._pending = _Pending()
        self._sent = None

    def everything(self) -> None:
        """Announce "anything may have changed" for this transaction."""
        self._pending.everything = True

    def schema_may_have_changed(self) -> None:
        """Forget the catalog: the next statement that needs it reads it again."""
        self._catalog = None

    async def before_statement(self, conn: Connection, sql: str) -> None:
        """Add what ``sql`` may write to the transaction's pending set."""
        pending = self._pending
        if pending.everything:
            return
        analysis = classify(sql)
        if analysis is None:
            pending.everything = True
            return
        if not needs_catalog(analysis):
            return
        catalog = await self._writer_catalog(conn)
        found = None if catalog is None else write_set(analysis, sql, catalog.catalog)
        if catalog is None or found is None:
            pending.everything = True
            return
        pending.add(found, catalog)

    async def _writer_catalog(self, conn: Connection) -> _WriterCatalog | None:
        """The writer's catalog; ``None`` if it cannot be read. Inside a transaction it is
        read in a savepoint rolled back at once: a failure does not fail the transaction,
        and the locks ``pg_get_viewdef`` takes on every view and the tables it reads are
        not held until the commit."""
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
        self._catalog = _WriterCatalog.from_text(text)
        return self._catalog

    async def send(self, conn: Connection, *, after_commit: bool) -> None:
        """Notify the other processes of the pending writes: inside the transaction, just
        before its COMMIT, or right after it (``after_commit``).

        :raises asyncpg.PostgresError: (or another driver error) if the server fails.
        """
        pending = self._pending
        if pending.everything or len(pending.catalogs) > 1:
            await conn.execute(_NOTIFY, self._channel, self._everything)
            self._sent = False
            return
        if not pending.catalogs:
            self._sent = True  # no statement that may write: nothing to tell
            return
        [catalog] = pending.catalogs
        relations = sorted(pending.relations, key=lambda key: catalog.entries[key][0])
        oids = [catalog.entries[key][0] for key in relations]
        names = list(pending.names.items())
        expected = {
            "path": list(catalog.catalog.search_path),
            "relations": [catalog.entries[key] for key in relations],
            "children": sorted([p, c] for p in oids for c in catalog.children.get(p, ())),
            "names": [catalog.entries[key][0] for _, key in names],
            "calls": False,
        }
        payloads = [
            json.dumps([capture.PAYLOAD_VERSION, op, write.schema, write.name, self._origin])
            for write in pending.writes
            for op in ((_OPS[write.kind],) if write.kind is not None else _OPS.values())
        ]
        self._sent = bool(
            await conn.fetchval(
                _ANNOUNCE,
                self._channel,
                json.dumps(expected),
                payloads,
                self._everything,
                after_commit,
                oids,
                [_regclass_text(name) for name, _ in names],
                sorted(pending.calls),
            )
        )

    def committed(self) -> frozenset[Write] | None:
        """What the committed transaction wrote, to publish on the bus (``None``: anything
        may have changed, also if :meth:`send` did not get through); the pending set is
        emptied."""
        pending, sent = self._pending, self._sent
        self.began()
        if not sent:
            self._catalog = None  # it may be what no longer holds
            return None
        return frozenset(pending.writes)


def _regclass_text(name: RelationName) -> str:
    """``name`` as ``to_regclass`` reads it: quoted, so it means exactly these names."""
    parts = (name.name,) if name.schema is None else (name.schema, name.name)
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)

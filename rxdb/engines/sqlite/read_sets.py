"""The tables a watched query depends on: :class:`ReadSets`.

The parser says what the text names; :func:`parser.dependencies` resolves those names in the
schemas of the connection that runs the watch (every schema it has: temp, main, attached) and
replaces views, virtual tables, ``sqlite_sequence`` and pragma functions by the tables whose
announced writes move them. As a safety net for the parser's blind spots, SQLite's own
authorizer is asked once per query and schema what preparing the query reads, and that is added
(never subtracted: the authorizer alone misses tables, see NOTES.md). The same reports name the
columns read, from which :mod:`~rxdb.engines.sqlite.read_columns` tells, with facts from the
schema, which columns of each table a result depends on: the answer is a
:class:`~rxdb.updates.Reads`. All of it runs when a watch analyses its query (at its start,
after a schema change), never on a re-run.

This module knows nothing of :class:`rxdb.Database`: it is given the two reads it needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence

from parser import Catalog, StatementKind, Unanalyzable, analyze, dependencies
from parser.names import qualified_name
from rxdb._types import Params
from rxdb.engines.schema_cache import SchemaCache
from rxdb.engines.sqlite.read_columns import (
    ColumnFacts,
    Report,
    facts_sql,
    parse_facts,
    read_columns,
)
from rxdb.errors import BusyError, DatabaseError, ProgrammingError
from rxdb.rows import Row
from rxdb.updates import Reads

__all__ = ("ReadSets",)

Fetch = Callable[[str, Params], Awaitable[list[Row]]]
"""Run a query on a connection that runs watches; its rows."""
Probe = Callable[[str], Awaitable[Iterable[Report]]]
"""Prepare a query there and return the ``(schema, table, column)`` reads the authorizer
reports (column ``""``: the table, no column of it)."""

# Bounds the memo of authorizer reports: one entry per distinct watched text.
_PROBED_SIZE = 4096


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _catalog_sql(schemas: Sequence[str]) -> str:
    # One hop for every schema; names come from PRAGMA database_list, quoted as identifiers.
    return " UNION ALL ".join(
        f"SELECT {index}, type, name, sql FROM {_quoted(schema)}.sqlite_schema "
        "WHERE type IN ('table', 'view')"
        for index, schema in enumerate(schemas)
    )


class ReadSets:
    """Read sets of one database's watches, with what they are resolved in cached until the
    next :meth:`schema_may_have_changed`.

    Use from the database's event loop only.

    :param fetch: runs a query where watches run (a reader, or the one connection).
    :param probe: prepares a query there under an authorizer (``Engine.probe_reads``).
    """

    def __init__(self, fetch: Fetch, probe: Probe) -> None:
        self._fetch = fetch
        self._probe = probe
        self._catalog = SchemaCache(self._load)
        self._facts = SchemaCache(self._load_facts)
        self._probed: dict[str, asyncio.Future[frozenset[Report]]] = {}
        self._probed_in: Catalog | None = None

    def schema_may_have_changed(self) -> None:
        """Forget the schemas: the next analysis reads them again."""
        self._catalog.forget()
        self._facts.forget()  # indexes and triggers change no catalog

    async def read_set(self, sql: str) -> frozenset[str] | None:
        """The tables a watch of ``sql`` depends on; ``None`` means "all of them". A
        :class:`~rxdb.updates.Reads` when the query could be probed: then with the columns
        of those tables that can be told.

        :raises rxdb.ProgrammingError: if ``sql`` is not a query.
        :raises rxdb.DatabaseError: if SQLite cannot prepare it where watches run (a TEMP
            object or an attached schema that only the writer has, for one).
        """
        try:
            analysis = analyze(sql)
        except Unanalyzable:
            return None
        if analysis.kind is not StatementKind.QUERY:
            raise ProgrammingError(
                f"only queries can be watched, not a {analysis.kind.name}", sql=sql
            )
        catalog = await self._catalog.get()
        names = analysis.reads | analysis.functions
        if analysis.multiple:  # several statements cannot run as a watch anyway
            return dependencies(names, catalog)
        reports = await self._probed_reads(sql, catalog)
        if reports is None:
            return None
        names |= {qualified_name(table, schema or "") for schema, table, _ in reports}
        tables = dependencies(names, catalog)
        if tables is None:
            return None
        try:
            facts = await self._facts.get()
        except DatabaseError:
            return tables  # no facts (a table SQLite cannot describe): every column
        return Reads(tables, read_columns(sql, tables, reports, catalog, facts))

    async def _probed_reads(self, sql: str, catalog: Catalog) -> frozenset[Report] | None:
        # Memoised per catalog (an equal catalog means SQLite prepares the query the same way),
        # and shared by the watches of one text that start together.
        if self._probed_in != catalog:
            self._probed, self._probed_in = {}, catalog
        probing = self._probed.get(sql)
        if probing is None:
            if len(self._probed) >= _PROBED_SIZE:
                self._probed.clear()
            probing = self._probed[sql] = asyncio.ensure_future(self._probe_once(sql))
        try:
            return await asyncio.shield(probing)
        except BusyError:
            return None  # could not look: depend on everything this time
        finally:
            failed = probing.done() and (probing.cancelled() or probing.exception() is not None)
            if failed and self._probed.get(sql) is probing:
                del self._probed[sql]  # the next analysis looks again

    async def _probe_once(self, sql: str) -> frozenset[Report]:
        return frozenset(await self._probe(sql))

    async def _load(self) -> Catalog:
        # Only the names: the file column is text SQLite may fail to decode (a file name
        # that is not UTF-8), and nothing here needs it.
        listed = await self._fetch("SELECT name FROM pragma_database_list ORDER BY seq", ())
        schemas = [row[0] for row in listed]
        rows: dict[str, list[tuple[str, str, str | None]]] = {schema: [] for schema in schemas}
        for index, kind, name, sql in await self._fetch(_catalog_sql(schemas), ()):
            rows[schemas[index]].append((kind, name, sql))
        return Catalog(rows)

    async def _load_facts(self) -> ColumnFacts:
        catalog = await self._catalog.get()
        schemas = catalog.schemas
        return parse_facts(schemas, await self._fetch(facts_sql(schemas), ()))

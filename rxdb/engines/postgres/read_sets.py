"""The relations a watched PostgreSQL query depends on: :class:`ReadSets`.

:mod:`parser.postgres` says what the text names; :func:`parser.postgres.dependencies` resolves
the names in a :class:`~parser.postgres.PgCatalog` (the search path, views and their
definitions, inheritance, materialized views, functions) and answers ``schema.table`` names,
spelled as the capture triggers announce them, or ``None`` ("every relation") where it cannot
be sure. The catalog is read on a reader (where watches run) with the parser's
:data:`~parser.postgres.CATALOG_QUERY`, once, and again after every schema change.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from parser import StatementKind, Unanalyzable
from parser.postgres import CATALOG_QUERY, PgCatalog, analyze, dependencies
from rxdb.engines.schema_cache import SchemaCache
from rxdb.errors import ProgrammingError
from rxdb.rows import Row

__all__ = ("ReadSets",)

Fetch = Callable[[str], Awaitable[list[Row]]]
"""Run a query without parameters where watches run; its rows."""


class ReadSets:
    """Read sets of one database's watches, with the catalog they are resolved in cached
    until the next :meth:`schema_may_have_changed`. Use from the engine's loop only."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._catalog = SchemaCache(self._load)

    def schema_may_have_changed(self) -> None:
        """Forget the catalog: the next analysis reads it again."""
        self._catalog.forget()

    async def read_set(self, sql: str) -> frozenset[str] | None:
        """The relations a watch of ``sql`` depends on; ``None`` means "all of them".

        :raises rxdb.ProgrammingError: if ``sql`` is not a query.
        :raises rxdb.DatabaseError: if the catalog cannot be read.
        """
        try:
            analysis = analyze(sql)
        except Unanalyzable:
            return None
        if analysis.kind is not StatementKind.QUERY:
            raise ProgrammingError(
                f"only queries can be watched, not a {analysis.kind.name}", sql=sql
            )
        return dependencies(analysis, await self._catalog.get())

    async def _load(self) -> PgCatalog:
        [row] = await self._fetch(CATALOG_QUERY)
        return PgCatalog.from_row(dict(zip(row.keys(), row, strict=True)))

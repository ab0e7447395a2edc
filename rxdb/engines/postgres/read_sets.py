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

import asyncio
from collections.abc import Awaitable, Callable

from parser import StatementKind, Unanalyzable
from parser.postgres import CATALOG_QUERY, PgCatalog, analyze, dependencies
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
        self._catalog: PgCatalog | None = None
        self._generation = 0
        self._loading: asyncio.Future[PgCatalog] | None = None

    def schema_may_have_changed(self) -> None:
        """Forget the catalog: the next analysis reads it again."""
        self._catalog = None
        self._loading = None
        self._generation += 1

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
        return dependencies(analysis, await self._current_catalog())

    async def _current_catalog(self) -> PgCatalog:
        if self._catalog is not None:
            return self._catalog
        loading = self._loading
        if loading is None:
            loading = self._loading = asyncio.ensure_future(self._load(self._generation))
        try:
            # Shared by the analyses that start together; one cancelled caller does not
            # cancel the others' read.
            return await asyncio.shield(loading)
        finally:
            failed = loading.done() and (loading.cancelled() or loading.exception() is not None)
            if failed and self._loading is loading:
                self._loading = None  # the next analysis reads it again

    async def _load(self, generation: int) -> PgCatalog:
        [row] = await self._fetch(CATALOG_QUERY)
        catalog = PgCatalog.from_row(dict(zip(row.keys(), row, strict=True)))
        if generation == self._generation:  # no schema change meanwhile
            self._catalog = catalog
        return catalog

"""``fetch_all``, ``fetch_one`` and ``fetch_value`` with ``row_type=``, written once for every
shape and read session: :class:`AsyncFetches` and :class:`BlockingFetches`.

A class supplies how it fetches a result's rows (and, where it can do better than taking
the first of them, the first row: a remote client asks the server for one row only); the
options and their typing are here, so every shape offers the same ones the same way.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar, overload

from rxdb._types import Params
from rxdb.rows import Row, Rows
from rxdb.streams.conversion import (
    OFF_LOOP_ROWS,
    check_row_type,
    converted_row,
    converted_rows,
    first_value,
)

__all__ = ("AsyncFetches", "BlockingFetches")

T = TypeVar("T")


class AsyncFetches(ABC):
    """The fetches of an async shape or read session, over :meth:`_fetch_rows`."""

    @abstractmethod
    async def _fetch_rows(self, sql: str, params: Params) -> Rows:
        """Every row of the query ``sql``."""

    async def _fetch_first(self, sql: str, params: Params) -> Row | None:
        """The first row of the query ``sql``, or ``None``."""
        rows = await self._fetch_rows(sql, params)
        return rows[0] if rows else None

    @overload
    async def fetch_all(self, sql: str, params: Params = (), *, row_type: None = None) -> Rows: ...
    @overload
    async def fetch_all(
        self, sql: str, params: Params = (), *, row_type: type[dict[Any, Any]]
    ) -> list[dict[str, Any]]: ...
    @overload
    async def fetch_all(
        self, sql: str, params: Params = (), *, row_type: Callable[..., T]
    ) -> list[T]: ...
    async def fetch_all(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> list[Any]:
        """Every row of a query; each as ``row_type`` if given (a dataclass, NamedTuple,
        TypedDict, pydantic model, msgspec Struct, ``dict``, or any callable taking the
        columns as keyword arguments).

        :raises rxdb.RowTypeError: when the columns do not fit ``row_type``.
        """
        check_row_type(row_type)
        rows = await self._fetch_rows(sql, params)
        if row_type is not None and len(rows) >= OFF_LOOP_ROWS:  # not on the loop: ~1 µs a row
            return await asyncio.get_running_loop().run_in_executor(
                None, converted_rows, rows, row_type
            )
        return converted_rows(rows, row_type)

    @overload
    async def fetch_one(
        self, sql: str, params: Params = (), *, row_type: None = None
    ) -> Row | None: ...
    @overload
    async def fetch_one(
        self, sql: str, params: Params = (), *, row_type: type[dict[Any, Any]]
    ) -> dict[str, Any] | None: ...
    @overload
    async def fetch_one(
        self, sql: str, params: Params = (), *, row_type: Callable[..., T]
    ) -> T | None: ...
    async def fetch_one(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> Any:
        """The first row of a query (as ``row_type`` if given), or ``None``."""
        check_row_type(row_type)
        return converted_row(await self._fetch_first(sql, params), row_type)

    async def fetch_value(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row of a query, or ``None`` (no row):
        ``await db.fetch_value("SELECT count(*) FROM t")``."""
        return first_value(await self._fetch_first(sql, params))


class BlockingFetches(ABC):
    """:class:`AsyncFetches` for a blocking shape or read session."""

    @abstractmethod
    def _fetch_rows(self, sql: str, params: Params) -> Rows:
        """Every row of the query ``sql``."""

    def _fetch_first(self, sql: str, params: Params) -> Row | None:
        """The first row of the query ``sql``, or ``None``."""
        rows = self._fetch_rows(sql, params)
        return rows[0] if rows else None

    @overload
    def fetch_all(self, sql: str, params: Params = (), *, row_type: None = None) -> Rows: ...
    @overload
    def fetch_all(
        self, sql: str, params: Params = (), *, row_type: type[dict[Any, Any]]
    ) -> list[dict[str, Any]]: ...
    @overload
    def fetch_all(
        self, sql: str, params: Params = (), *, row_type: Callable[..., T]
    ) -> list[T]: ...
    def fetch_all(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> list[Any]:
        """As :meth:`AsyncFetches.fetch_all`."""
        check_row_type(row_type)
        return converted_rows(self._fetch_rows(sql, params), row_type)

    @overload
    def fetch_one(self, sql: str, params: Params = (), *, row_type: None = None) -> Row | None: ...
    @overload
    def fetch_one(
        self, sql: str, params: Params = (), *, row_type: type[dict[Any, Any]]
    ) -> dict[str, Any] | None: ...
    @overload
    def fetch_one(
        self, sql: str, params: Params = (), *, row_type: Callable[..., T]
    ) -> T | None: ...
    def fetch_one(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> Any:
        """As :meth:`AsyncFetches.fetch_one`."""
        check_row_type(row_type)
        return converted_row(self._fetch_first(sql, params), row_type)

    def fetch_value(self, sql: str, params: Params = ()) -> Any:
        """As :meth:`AsyncFetches.fetch_value`."""
        return first_value(self._fetch_first(sql, params))

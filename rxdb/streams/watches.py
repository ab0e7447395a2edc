"""``watch``, ``watch_one`` and ``watch_value`` with their options, written once for every
async shape: :class:`AsyncWatches`.

A shape supplies its raw watch (a :class:`~rxdb.streams.QueryStream` of :class:`rxdb.Row`
lists, delivered on its loop); ``row_type``, ``throttle`` and the one-row and one-value
forms are applied here, on the shape's side, so that the shared execution underneath stays
one per query whatever the options.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from rxdb._types import Params
from rxdb.arguments import check_flags
from rxdb.rows import Row

if TYPE_CHECKING:
    from rxdb.streams.stream import QueryStream, Stream

__all__ = ("AsyncWatches",)

T = TypeVar("T")


class AsyncWatches(ABC):
    """The watches of an async shape, over :meth:`_watch_rows`."""

    @abstractmethod
    def _watch_rows(
        self, sql: str, params: Params, *, distinct: bool, recover: bool
    ) -> QueryStream[Row]:
        """The query's results as rows, delivered on this shape's loop.

        :raises rxdb.ProgrammingError: for a watch no database could run (or, on a shape
            without it, ``recover=True``).
        """

    @overload
    def watch(
        self,
        sql: str,
        params: Params = (),
        *,
        distinct: bool = True,
        recover: bool = False,
        row_type: None = None,
        throttle: float | None = None,
    ) -> QueryStream[Row]: ...
    @overload
    def watch(
        self,
        sql: str,
        params: Params = (),
        *,
        distinct: bool = True,
        recover: bool = False,
        row_type: type[dict[Any, Any]],
        throttle: float | None = None,
    ) -> QueryStream[dict[str, Any]]: ...
    @overload
    def watch(
        self,
        sql: str,
        params: Params = (),
        *,
        distinct: bool = True,
        recover: bool = False,
        row_type: Callable[..., T],
        throttle: float | None = None,
    ) -> QueryStream[T]: ...
    def watch(
        self,
        sql: str,
        params: Params = (),
        *,
        distinct: bool = True,
        recover: bool = False,
        row_type: Callable[..., Any] | None = None,
        throttle: float | None = None,
    ) -> QueryStream[Any]:
        """Observe a query: its result now, then after every commit to a table it reads.

        :param distinct: emit only results that differ from the last one emitted; with
            ``False``, every re-run is emitted.
        :param recover: a failing run (a migration dropped the table) does not end the
            subscription: it shows as an ``error`` state (``stream.states()``), and a later
            commit the watch hears runs it again; once it works, the new result is emitted
            and the state is ``live``.
        :param row_type: rows as this type (as ``fetch_all``), converted once per result for
            all subscribers of the returned stream; rows that do not fit end the stream
            with :class:`rxdb.RowTypeError`.
        :param throttle: seconds: the first result at once, then at most one per interval
            (the newest), and the last one always (:meth:`rxdb.QueryStream.throttle`).
        :returns: a reactivex Observable of lists of rows, also usable with ``async for``.
            Subscribe on the database's event loop: values are delivered there.
        :raises rxdb.ProgrammingError: at once, for SQL that holds no statement, parameters
            no database takes, a ``row_type`` that is not callable or a ``throttle`` that is
            not a positive number (errors of the query itself come through the stream).
        """
        from rxdb.streams.stream import shaped  # on first use: see rxdb.streams

        check_flags(distinct=distinct, recover=recover)
        rows = self._watch_rows(sql, params, distinct=distinct, recover=recover)
        return shaped(rows, row_type, throttle)

    @overload
    def watch_one(
        self, sql: str, params: Params = (), *, row_type: None = None, throttle: float | None = None
    ) -> Stream[Row | None]: ...
    @overload
    def watch_one(
        self,
        sql: str,
        params: Params = (),
        *,
        row_type: type[dict[Any, Any]],
        throttle: float | None = None,
    ) -> Stream[dict[str, Any] | None]: ...
    @overload
    def watch_one(
        self,
        sql: str,
        params: Params = (),
        *,
        row_type: Callable[..., T],
        throttle: float | None = None,
    ) -> Stream[T | None]: ...
    def watch_one(
        self,
        sql: str,
        params: Params = (),
        *,
        row_type: Callable[..., Any] | None = None,
        throttle: float | None = None,
    ) -> Stream[Any]:
        """As :meth:`watch`, each value the first row of the result (``None`` for none),
        emitted when that row changes."""
        from rxdb.streams.stream import first_rows

        return first_rows(
            self._watch_rows(sql, params, distinct=True, recover=False), row_type, throttle
        )

    def watch_value(
        self, sql: str, params: Params = (), *, throttle: float | None = None
    ) -> Stream[Any]:
        """As :meth:`watch`, each value the first column of the first row (``None`` for no
        row), emitted when it changes: ``db.watch_value("SELECT count(*) FROM t")``."""
        from rxdb.streams.stream import first_values

        return first_values(self._watch_rows(sql, params, distinct=True, recover=False), throttle)

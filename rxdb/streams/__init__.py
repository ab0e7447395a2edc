"""What a UI does with a watch's results, independent of any engine or shape: rows as the
caller's type (:mod:`~rxdb.streams.conversion`), what changed between results
(:mod:`~rxdb.streams.diffs`), pacing (:mod:`~rxdb.streams.pacing`), and the stream classes
that keep ``async for`` and ``statistics()`` through all of it (:mod:`~rxdb.streams.stream`).

Pure: it knows rows, errors and reactivex, never an engine, a database shape or a loop of its
own (a subscription's running loop is the one it times on).
"""

from __future__ import annotations

from rxdb.streams.conversion import (
    RowConverter,
    check_row_type,
    converted_row,
    converted_rows,
    converter_for,
    first_value,
)
from rxdb.streams.diffs import Key, RowDiff
from rxdb.streams.fetches import AsyncFetches, BlockingFetches
from rxdb.streams.iteration import QueryIterator
from rxdb.streams.pacing import check_interval
from rxdb.streams.statistics import WatchStatistics
from rxdb.streams.stream import (
    DiffStream,
    QueryStream,
    Stream,
    first_rows,
    first_values,
    shaped,
)
from rxdb.streams.watches import AsyncWatches

__all__ = (
    "AsyncFetches",
    "AsyncWatches",
    "BlockingFetches",
    "DiffStream",
    "Key",
    "QueryIterator",
    "QueryStream",
    "RowConverter",
    "RowDiff",
    "Stream",
    "WatchStatistics",
    "check_interval",
    "check_row_type",
    "converted_row",
    "converted_rows",
    "converter_for",
    "first_rows",
    "first_value",
    "first_values",
    "shaped",
)

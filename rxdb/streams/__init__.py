"""What a UI does with a watch's results, independent of any engine or shape: rows as the
caller's type (:mod:`~rxdb.streams.conversion`), what changed between results
(:mod:`~rxdb.streams.diffs`), pacing (:mod:`~rxdb.streams.pacing`), and the stream classes
that keep ``async for`` and ``statistics()`` through all of it (:mod:`~rxdb.streams.stream`).

Pure: it knows rows, errors and reactivex, never an engine, a database shape or a loop of its
own (a subscription's running loop is the one it times on).

Its names are imported on first use (PEP 562): opening a database and running statements
needs only :mod:`~rxdb.streams.fetches` and :mod:`~rxdb.streams.watches`, so a program that
never watches (a script, a background writer) never loads the stream classes, diffs or
pacing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rxdb.streams.conversion import RowConverter as RowConverter
    from rxdb.streams.conversion import check_row_type as check_row_type
    from rxdb.streams.conversion import converted_row as converted_row
    from rxdb.streams.conversion import converted_rows as converted_rows
    from rxdb.streams.conversion import converter_for as converter_for
    from rxdb.streams.conversion import first_value as first_value
    from rxdb.streams.diffs import Key as Key
    from rxdb.streams.diffs import RowDiff as RowDiff
    from rxdb.streams.fetches import AsyncFetches as AsyncFetches
    from rxdb.streams.fetches import BlockingFetches as BlockingFetches
    from rxdb.streams.iteration import QueryIterator as QueryIterator
    from rxdb.streams.pacing import check_interval as check_interval
    from rxdb.streams.statistics import WatchStatistics as WatchStatistics
    from rxdb.streams.stream import DiffStream as DiffStream
    from rxdb.streams.stream import QueryStream as QueryStream
    from rxdb.streams.stream import Stream as Stream
    from rxdb.streams.stream import first_rows as first_rows
    from rxdb.streams.stream import first_values as first_values
    from rxdb.streams.stream import shaped as shaped
    from rxdb.streams.watches import AsyncWatches as AsyncWatches

# Where each name lives: imported on first use (PEP 562).
_LAZY: dict[str, str] = {
    "AsyncFetches": "rxdb.streams.fetches",
    "AsyncWatches": "rxdb.streams.watches",
    "BlockingFetches": "rxdb.streams.fetches",
    "DiffStream": "rxdb.streams.stream",
    "Key": "rxdb.streams.diffs",
    "QueryIterator": "rxdb.streams.iteration",
    "QueryStream": "rxdb.streams.stream",
    "RowConverter": "rxdb.streams.conversion",
    "RowDiff": "rxdb.streams.diffs",
    "Stream": "rxdb.streams.stream",
    "WatchStatistics": "rxdb.streams.statistics",
    "check_interval": "rxdb.streams.pacing",
    "check_row_type": "rxdb.streams.conversion",
    "converted_row": "rxdb.streams.conversion",
    "converted_rows": "rxdb.streams.conversion",
    "converter_for": "rxdb.streams.conversion",
    "first_rows": "rxdb.streams.stream",
    "first_value": "rxdb.streams.conversion",
    "first_values": "rxdb.streams.stream",
    "shaped": "rxdb.streams.stream",
}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rxdb.streams' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""Consistent groups: what ``db.watch_many({...})`` returns, and the execution behind it.

A UI that shows a list and its total side by side must never show them disagreeing. Two
watches cannot promise that (each runs on the latest commit when its turn comes); a group
runs all its queries in one hop on ONE read snapshot (the engine's
``fetch_many_committed(..., snapshot=True)``) and emits their results together, as a dict by
name. Everything else is a single watch's: one shared execution per (queries, distinct,
recover), the same scheduler and pacing, the same states, the same shutdown.
"""

from __future__ import annotations

from typing import Any

from rxdb.rows import FrozenRows, Rows, same_rows
from rxdb.watch.stream import ResultStream, SharedQuery

__all__ = ("GroupStream", "SharedGroup")

Results = dict[str, Rows]


class SharedGroup(SharedQuery[Results]):
    """The shared execution of one group; its runs yield every member's rows in order.

    Members are compared on the loop (a group of very large results holds it for the
    comparison; a single watch moves that to a thread).
    """

    def __init__(self, names: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._names = names
        self._latest: tuple[FrozenRows, ...] | None = None

    def _latest_value(self) -> Results | None:
        if self._latest is None:
            return None
        return {name: rows.thaw() for name, rows in zip(self._names, self._latest, strict=True)}

    def _compare(self, result: tuple[Rows, ...]) -> None:
        latest = self._latest if self._distinct else None
        if latest is not None and all(
            same_rows(rows, old) for rows, old in zip(result, latest, strict=True)
        ):
            self._settled(None)
            return
        self._latest = tuple(FrozenRows(rows) for rows in result)
        self._settled(dict(zip(self._names, result, strict=True)))


class GroupStream(ResultStream[Results]):
    """The result of ``db.watch_many({...})``: an Observable of ``{name: rows}`` dicts, all
    from one snapshot, and an async iterable; :meth:`states` as for a single watch.

    Subscribe on the database's event loop. Subscribers share the dicts' lists: copy before
    changing them.
    """

"""What a watch reports about itself: :class:`WatchStatistics`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("WatchStatistics",)


@dataclass(frozen=True, slots=True)
class WatchStatistics:
    """A snapshot of one shared query, for tests and diagnostics (no timing needed).

    :ivar subscribers: observers attached now.
    :ivar runs: query executions so far (the first one included).
    :ivar emissions: results handed to subscribers (a run whose result equals the last one
        emitted is not handed on, unless the watch was made with ``distinct=False``).
    :ivar running: a run is in flight.
    :ivar pending: another run will follow the one in flight.
    :ivar patched: results made by patching the last one with the rows a commit changed,
        without a run (a maintained query, docs/guide.md); not counted in ``runs``.
    """

    subscribers: int = 0
    runs: int = 0
    emissions: int = 0
    running: bool = False
    pending: bool = False
    patched: int = 0

"""The state of a watch, for a UI: :class:`WatchState`.

A UI shows more than results: a spinner while the first result or a re-run is on its way, an
error banner when a run fails. ``stream.states()`` emits one :class:`WatchState` per change of
phase, from the same shared query as the results (it adds no runs), and always after the
result it refers to: a subscriber never sees ``live`` before that run's value arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

__all__ = ("Phase", "WatchState")

V = TypeVar("V")

Phase = Literal["loading", "live", "refreshing", "error"]
"""``loading``: no result yet; ``live``: the last run succeeded and nothing is due;
``refreshing``: a re-run is due or in flight after a result (or an error); ``error``: the
last run failed."""


@dataclass(frozen=True, slots=True)
class WatchState(Generic[V]):
    """One state of a watch.

    :ivar phase: see :data:`Phase`.
    :ivar value: the latest result emitted (the same object the result stream delivered),
        ``None`` before the first; kept through ``refreshing`` and ``error``, so a UI can go
        on showing it under a spinner or a banner.
    :ivar error: the error of the last failed run: set in ``error``, and kept in
        ``refreshing`` while a retry runs (a recovering watch); ``None`` once a run succeeds.
    """

    phase: Phase
    value: V | None = None
    error: Exception | None = None

    @property
    def busy(self) -> bool:
        """A run is due or in flight: show a spinner."""
        return self.phase in ("loading", "refreshing")

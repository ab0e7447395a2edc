"""Warnings about refused and broken connections, at a rate a flood of them cannot raise.

Every connection a hub or server refuses (a wrong token, another uid, garbage bytes, no hello)
deserves a warning, but a peer that opens thousands of bad connections must not write
thousands of lines, nor choose what they say: the reason often quotes what the peer sent.
So the first few refusals of a window are logged, escaped and cut short; the rest are
counted, and one line at the window's end says how many more there were.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Final

__all__ = ("MAX_SHOWN", "RefusalLog", "shown")

MAX_SHOWN: Final = 160
"""Characters of a refusal's reason written to the log (the peer may have chosen them)."""


def shown(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` safe for one log line: control characters escaped, at most ``limit``
    characters (the cut is marked)."""
    escaped = repr(text)[1:-1]
    if len(escaped) <= limit:
        return escaped
    return f"{escaped[:limit]}... ({len(escaped) - limit} more characters)"


class RefusalLog:
    """Logs at most ``burst`` refusals per ``window`` seconds, then counts.

    Thread-safe: the hub thread and any server loop may share one.
    """

    def __init__(
        self,
        log: logging.Logger,
        *,
        burst: int = 10,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.burst = burst
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._ends = float("-inf")  # the current window's end
        self._logged = 0
        self._suppressed = 0

    def warn(self, what: str, reason: str) -> None:
        """Log ``what`` (our words: which connection) and ``reason`` (which may quote the peer:
        escaped and cut short), or count them if this window had enough."""
        now = self._clock()
        with self._lock:
            if now >= self._ends:
                self._flush_locked()
                self._ends = now + self.window
                self._logged = 0
            if self._logged < self.burst:
                self._logged += 1
                log = True
            else:
                self._suppressed += 1
                log = False
                if self._suppressed == 1:
                    self._flush_later(self._ends - now)
        if log:
            self.log.warning("%s: %s", what, shown(reason))

    def flush(self) -> None:
        """Say how many refusals were counted and not logged, if any."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        count, self._suppressed = self._suppressed, 0
        if count:
            self.log.warning(
                "%d more connection(s) refused or closed in the last %g s (not logged one by one)",
                count,
                self.window,
            )

    def _flush_later(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # the next refusal after the window says it instead
        loop.call_later(max(0.0, delay), self.flush)

"""The hub's timings and limits.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ("LOG", "MEMBER_ROLE", "TUNING", "Role", "Tuning")

LOG: Final = logging.getLogger("rxdb.remote.hub")

Role = Literal["hub", "member"]

MEMBER_ROLE: Final = "member"
"""The role a member says in its Hello."""


@dataclass(slots=True)
class Tuning:
    """Timings and limits of every link in this process (mutable, for tests and tuning)."""

    ping_interval: float = 5.0
    """Seconds between a member's pings; a hub answers each with a pong."""
    peer_timeout: float = 15.0
    """Seconds of silence after which a peer (either side) is taken for dead."""
    handshake_timeout: float = 5.0
    """Seconds a new connection has to complete Hello/Welcome."""
    join_timeout: float = 2.0
    """Seconds :func:`~rxdb.remote.hub.join` waits for the first connection before returning
    anyway (the link keeps trying in the background and resyncs when it gets through)."""
    backoff_min: float = 0.005
    backoff_max: float = 0.25
    max_payload: int = 1 << 20
    """Largest Notify accepted after the handshake (a commit naming ~30 000 tables fits)."""
    max_buffered: int = 8 << 20
    """Bytes queued for one peer before it is dropped as too slow (it resyncs on return)."""
    resync_interval: float = 0.05
    """Seconds between two resyncs (``everything=True``) published here, from other processes
    or our own; those in between are merged into the next one (see ``Link._publish_here``)."""


TUNING: Final = Tuning()

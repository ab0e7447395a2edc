"""The hub's timings and limits, and how one of its connections is made.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final, Literal

from rxdb.remote.hub.sending import AnyThreadStream
from rxdb.remote.wire.channel import Channel
from rxdb.remote.wire.frames import HANDSHAKE_MAX_PAYLOAD

__all__ = ("LOG", "MEMBER_ROLE", "TUNING", "Role", "Tuning", "hub_channel")

LOG: Final = logging.getLogger("rxdb.remote.hub")

Role = Literal["hub", "member"]

MEMBER_ROLE: Final = "member"
"""The role a member says in its Hello."""

_READ_CHUNK: Final = 64 * 1024


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


def hub_channel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, label: str) -> Channel:
    """A connection between a hub and a member (either end), before its handshake; any
    thread may send on it (:mod:`rxdb.remote.hub.sending`). Call on the hub thread."""
    stream = AnyThreadStream(
        reader,
        writer,
        label,
        HANDSHAKE_MAX_PAYLOAD,
        read_chunk=_READ_CHUNK,
        log=LOG,
        too_slow="dropping the connection %s: it reads too slowly (%d bytes queued); it "
        "will resync when it reconnects",
    )
    return Channel(stream, max_buffered=TUNING.max_buffered)

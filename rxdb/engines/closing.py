"""close() never waits for ever: the grace both engines give work in flight.

close() waits for a transaction another task holds and for reads in flight, since cutting
them short loses their work. But a task may hold a transaction or a read block while it
waits on something else for ever, and a query may run for minutes: close() gives such work
:data:`CLOSE_GRACE` seconds, then interrupts it, and closes anyway (what was cut short gets
:class:`rxdb.InterruptError` or :class:`rxdb.ClosedError`). docs/lifecycle.md documents it.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ("CLOSE_GRACE", "within")

CLOSE_GRACE = 2.0
"""Seconds close() waits for work in flight before it interrupts it (and as much again, after
the interrupt, for what it interrupted to end)."""


async def within(future: asyncio.Future[Any], seconds: float) -> bool:
    """Whether ``future`` is done within ``seconds`` (it is left running otherwise)."""
    done, _ = await asyncio.wait({future}, timeout=seconds)
    return bool(done)

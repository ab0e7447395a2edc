"""What one client connection may hold on a server at once, so that one client (buggy or
hostile) cannot make the server allocate without bound.

Measured before these limits existed: one connection opened 5,000 watches (+36 MB, about
7 KB each) or pipelined 20,000 requests it never read the answers of (+47 MB). A request
over a limit fails alone with :class:`rxdb.LimitError`; the connection stays up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from rxdb.errors import ProgrammingError

__all__ = ("DEFAULT_CONNECTION_LIMITS", "RELEASE_HEADROOM", "ConnectionLimits")

RELEASE_HEADROOM: Final = 16
"""Requests that free something (``end``, ``unsubscribe``, ``interrupt``) may run this many
over ``max_requests``: a client at its limit can always get out of it."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Per client connection: ``max_subscriptions`` open at once (watches, table updates, a
    backup's progress), ``max_requests`` running at once (answered or failed ends one).

    :raises rxdb.ProgrammingError: for a limit that is not a positive ``int``.
    """

    max_subscriptions: int = 1000
    max_requests: int = 1000

    def __post_init__(self) -> None:
        for name in ("max_subscriptions", "max_requests"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ProgrammingError(f"{name} must be a positive int, not {value!r}")


DEFAULT_CONNECTION_LIMITS: Final = ConnectionLimits()

"""Errors raised by the parser package.

The package has its own root so that it never imports ``rxdb``; callers that want to catch every
parser failure catch :class:`ParserError`.
"""

from __future__ import annotations

__all__ = ("ParserError", "Unanalyzable")

# Long statements are cut in messages so that a log line stays readable.
_MAX_SQL_IN_MESSAGE = 200


class ParserError(Exception):
    """Root of the errors raised by the parser package."""


class Unanalyzable(ParserError, ValueError):
    """Raised when the tables a statement reads cannot be determined with confidence.

    sqlglot does not fail loudly on everything it misunderstands, so this is also raised when it
    "succeeds" with a tree that is not the statement SQLite would run. Callers should treat the
    statement as depending on every table.

    :ivar sql: the statement text that was given.
    :ivar reason: what was not understood.
    """

    sql: str
    reason: str

    def __init__(self, sql: str, reason: str) -> None:
        shown = sql if len(sql) <= _MAX_SQL_IN_MESSAGE else sql[:_MAX_SQL_IN_MESSAGE] + "..."
        super().__init__(
            f"cannot tell which tables {shown!r} reads: {reason}; "
            "treat it as depending on every table"
        )
        self.sql = sql
        self.reason = reason

    def __reduce__(self) -> tuple[type[Unanalyzable], tuple[str, str]]:
        # The default reduction would call __init__ with the formatted message only.
        return (type(self), (self.sql, self.reason))

"""Which PostgreSQL database a ``postgresql://`` URL names, without connecting.

The façade checks options and makes the engine before anything connects, so the engine's
identity on the bus (:attr:`Dsn.key`) and the name it shows in messages (:attr:`Dsn.shown`,
never with the password) come from the URL alone. asyncpg is not imported here: a program
that only uses SQLite never needs it.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from rxdb.engines.postgres.scheme import SCHEMES, is_postgres_url
from rxdb.errors import ProgrammingError

__all__ = ("SCHEMES", "Dsn", "is_postgres_url", "parse_dsn")

_DEFAULT_PORT = 5432


@dataclass(frozen=True, slots=True)
class Dsn:
    """A PostgreSQL URL, taken apart.

    :ivar url: the URL as given (with its password, if any): what connections use.
    :ivar host: the server's host (``PGHOST`` or ``localhost`` when the URL has none).
    :ivar port: the server's port.
    :ivar database: the database's name.
    :ivar user: the role to connect as.
    :ivar settings: the URL's query parameters (asyncpg sends those that are not connection
        parameters as server settings: ``?search_path=app&statement_timeout=5000``).
    """

    url: str
    host: str
    port: int
    database: str
    user: str
    password: str | None = field(repr=False)
    settings: dict[str, str] = field(hash=False)

    @property
    def key(self) -> str:
        """The database's identity on the bus: one spelling per server and database."""
        return f"postgresql://{self.host}:{self.port}/{self.database}"

    @property
    def shown(self) -> str:
        """The URL for messages and logs: user, host, port and database, no password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


def parse_dsn(url: str) -> Dsn:
    """Take a ``postgresql://`` URL apart; what the URL leaves out comes from libpq's
    environment variables (``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGDATABASE``), then from
    libpq's defaults.

    :raises rxdb.ProgrammingError: for a URL that is not one (a bad port, say).
    """
    parts = urlsplit(url)
    settings = dict(parse_qsl(parts.query, keep_blank_values=True))
    try:
        port = int(parts.port or settings.get("port") or os.environ.get("PGPORT") or _DEFAULT_PORT)
    except ValueError:
        raise ProgrammingError(
            f"the PostgreSQL URL has a port that is not a number: {_without_password(url)!r}"
        ) from None
    host = parts.hostname or settings.get("host") or os.environ.get("PGHOST") or "localhost"
    user = unquote(parts.username or "") or os.environ.get("PGUSER") or _login_name()
    database = unquote(parts.path.lstrip("/")) or os.environ.get("PGDATABASE") or user
    return Dsn(
        url=url,
        host=host.lower(),
        port=port,
        database=database,
        user=user,
        password=unquote(parts.password) if parts.password is not None else None,
        settings=settings,
    )


def _login_name() -> str:
    """libpq's default user. ``getpass`` (with ``termios`` under it) loads here, for a URL
    that names no user, not for every program that opens a SQLite file."""
    import getpass

    return getpass.getuser()


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()

"""Where a database lives: a path or a ``file:`` URI, as SQLite is asked to open it.

Every connection is opened with ``uri=True``, so a ``file:`` URI means what SQLite's URI
syntax says (``mode=ro``, ``immutable=1``, ...), and a read-only database is a plain path
turned into such a URI. Commits of one file travel under one identity however it was named:
the real path of the file, which a URI must therefore be resolved to as well.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import os
import sqlite3
from typing import NamedTuple
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from rxdb.errors import DatabaseError, ProgrammingError, from_sqlite

__all__ = ("Location", "locate", "opening_error")

_MEMORY = (":memory:", "")
_TRUE = ("1", "yes", "true", "on")  # SQLite's sqlite3_uri_boolean


class Location(NamedTuple):
    """A database as SQLite opens it.

    :ivar target: what ``sqlite3.connect(..., uri=True)`` is given.
    :ivar file: the database file's real path (the identity its commits travel under), or
        ``None`` for a private in-memory database.
    :ivar read_only: every connection is opened read-only (``mode=ro`` or ``immutable=1``).
    """

    target: str
    file: str | None
    read_only: bool

    @property
    def memory(self) -> bool:
        return self.file is None


def locate(path: str, *, read_only: bool = False) -> Location:
    """Resolve a path or ``file:`` URI; with ``read_only``, make it open read-only.

    :raises rxdb.ProgrammingError: for an in-memory URI (use ``":memory:"``), a URI naming
        another host, ``read_only`` with ``":memory:"``, or ``read_only`` with a URI whose
        ``mode`` asks for writing.
    """
    if path in _MEMORY:
        if read_only:
            raise ProgrammingError(
                "read_only=True with ':memory:': a new in-memory database is empty, there is "
                "nothing to read; open a file read-only instead"
            )
        return Location(":memory:", None, False)
    if not path.startswith("file:"):
        file = os.path.realpath(path)
        if read_only:
            return Location(f"file:{quote(os.path.abspath(path))}?mode=ro", file, True)
        return Location(path, file, False)
    return _locate_uri(path, read_only)


def _locate_uri(uri: str, read_only: bool) -> Location:
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    name = unquote(parts.path)
    mode = query.get("mode")
    if mode == "memory" or name in _MEMORY:
        raise ProgrammingError(
            f"{uri!r} names an in-memory database; rxdb opens those as ':memory:' only"
        )
    if parts.netloc not in ("", "localhost"):
        raise ProgrammingError(f"{uri!r} names a file on another host; SQLite opens local files")
    immutable = query.get("immutable", "").lower() in _TRUE
    if read_only and mode not in (None, "ro") and not immutable:
        raise ProgrammingError(
            f"read_only=True contradicts mode={mode} in {uri!r}; drop one of them"
        )
    if read_only and mode is None and not immutable:
        mode = "ro"
        head, hash_sign, fragment = uri.partition("#")
        uri = f"{head}{'&' if '?' in head else '?'}mode=ro{hash_sign}{fragment}"
    return Location(uri, os.path.realpath(name), mode == "ro" or immutable)


def opening_error(error: sqlite3.Error, path: str, location: Location) -> DatabaseError:
    """rxdb's error for a database SQLite would not open, saying what to do about it."""
    name = getattr(error, "sqlite_errorname", None) or ""
    hint = ""
    if name.startswith("SQLITE_READONLY") and not location.read_only:
        hint = (
            "the file or its directory is not writable by this process: open it with "
            "rxdb.open(path, read_only=True) to read and watch it"
        )
    elif location.read_only and name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
        hint = (
            "a file in WAL mode can be read only beside its -shm file, which SQLite cannot "
            "create here: open it while a writer holds it open (or give this process write "
            "access to the directory), or, if nothing ever writes it, open "
            "'file:<path>?immutable=1'"
        )
    translated = from_sqlite(error, None, f"cannot open {path!r}")
    if hint:
        translated.args = (f"{translated.args[0]}; {hint}",)
    return translated

"""The options of :class:`rxdb.Database` and :func:`rxdb.open`, checked where they are given.

A wrong option fails at construction, with :class:`rxdb.ProgrammingError` naming the option
and what it accepts, instead of as a ``TypeError`` deep inside ``connect`` (or never: a
negative timeout or a zero poll interval would just misbehave).

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeGuard

from rxdb.arguments import check_file_name, check_flags
from rxdb.bus import Bus
from rxdb.engines.postgres.scheme import is_postgres_url
from rxdb.engines.sqlite.location import Location, locate
from rxdb.errors import ProgrammingError

if TYPE_CHECKING:
    from rxdb.engines.postgres.dsn import Dsn

__all__ = ("OPTION_NAMES", "SYNCHRONOUS", "check_option_names", "check_options")

OPTION_NAMES = (
    "readers",
    "busy_timeout",
    "foreign_keys",
    "synchronous",
    "foreign_poll",
    "share_across_processes",
    "track_foreign_writes",
    "read_only",
    "bus",
)
"""The keywords of :class:`rxdb.Database` (a test holds the two in step)."""

SYNCHRONOUS = ("off", "normal", "full", "extra")


def check_option_names(names: Iterable[str], where: str) -> None:
    """:raises rxdb.ProgrammingError: for a keyword that is not an option of ``where``."""
    for name in names:
        if name not in OPTION_NAMES:
            close = difflib.get_close_matches(name, OPTION_NAMES, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ProgrammingError(
                f"{where} has no option {name!r}; {hint}its options are {', '.join(OPTION_NAMES)}"
            )


def check_options(
    path: object,
    *,
    readers: object,
    busy_timeout: object,
    foreign_keys: object,
    synchronous: object,
    foreign_poll: object,
    share_across_processes: object,
    track_foreign_writes: object,
    read_only: object,
    bus: object,
) -> tuple[str, Location | Dsn]:
    """Check every option of a database; return its path as a ``str`` and where it lives: a
    SQLite :class:`Location`, or the :class:`Dsn` of a ``postgresql://`` URL.

    :raises rxdb.ProgrammingError: naming the first wrong option and what it accepts.
    """
    if not isinstance(path, str | os.PathLike) or not isinstance(os.fspath(path), str):
        raise ProgrammingError(
            f"path must be a str or an os.PathLike of str (a file, a 'file:' URI, "
            f"':memory:' or a 'postgresql://' URL), not {path!r}"
        )
    check_file_name(os.fspath(path), "path")
    if not _is_int(readers) or readers < 1:
        raise ProgrammingError(f"readers must be an int of at least 1, not {readers!r}")
    if not _is_number(busy_timeout) or not 0 <= busy_timeout < math.inf:
        raise ProgrammingError(
            f"busy_timeout must be a number of seconds, 0 or more, not {busy_timeout!r}"
        )
    if foreign_poll is not None and (
        not _is_number(foreign_poll) or not 0 < foreign_poll < math.inf
    ):
        raise ProgrammingError(
            f"foreign_poll must be a number of seconds above 0, or None to turn polling "
            f"off, not {foreign_poll!r}"
        )
    if synchronous is not None and synchronous not in SYNCHRONOUS:
        raise ProgrammingError(
            f"synchronous must be one of {', '.join(map(repr, SYNCHRONOUS))} or None, "
            f"not {synchronous!r}"
        )
    check_flags(
        foreign_keys=foreign_keys,
        share_across_processes=share_across_processes,
        read_only=read_only,
    )
    if track_foreign_writes is not None and not isinstance(track_foreign_writes, bool):
        raise ProgrammingError(
            f"track_foreign_writes must be True, False or None, not {track_foreign_writes!r}"
        )
    if bus is not None and not isinstance(bus, Bus):
        raise ProgrammingError(f"bus must be an rxdb.Bus or None, not {bus!r}")
    text = os.fspath(path)
    if is_postgres_url(text):
        return text, _check_postgres(
            text,
            foreign_keys=foreign_keys,
            synchronous=synchronous,
            track_foreign_writes=track_foreign_writes,
            read_only=read_only,
        )
    location = locate(text, read_only=bool(read_only))
    if track_foreign_writes is True and (location.memory or foreign_poll is None):
        raise ProgrammingError(
            "track_foreign_writes=True needs a file database with foreign_poll enabled "
            "(the journal tells the poller which tables another program wrote)"
        )
    if track_foreign_writes is True and location.read_only:
        raise ProgrammingError(
            "track_foreign_writes=True installs triggers in the file, which a read-only "
            "database cannot; leave it None (the journal is used if the file has one)"
        )
    return text, location


def _check_postgres(
    url: str,
    *,
    foreign_keys: object,
    synchronous: object,
    track_foreign_writes: object,
    read_only: object,
) -> Dsn:
    """The options that mean nothing on PostgreSQL when asked for: refused, with what to do
    instead. (``foreign_poll`` and ``share_across_processes`` do nothing there: the server
    tells every process of every commit. ``track_foreign_writes`` says whether to install
    the capture triggers.)"""
    if foreign_keys is False:
        raise ProgrammingError(
            "PostgreSQL always enforces foreign keys; foreign_keys=False is SQLite's option "
            "(to defer checks, declare the constraint DEFERRABLE)"
        )
    if synchronous is not None:
        raise ProgrammingError(
            "synchronous is SQLite's option; on PostgreSQL set synchronous_commit in the URL "
            "(e.g. postgresql://host/db?synchronous_commit=off)"
        )
    if track_foreign_writes is True and read_only:
        raise ProgrammingError(
            "track_foreign_writes=True installs triggers, which a read-only database cannot; "
            "leave it None (the triggers are used if someone installed them)"
        )
    from rxdb.engines.postgres.dsn import parse_dsn  # only for PostgreSQL: see its scheme

    return parse_dsn(url)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)

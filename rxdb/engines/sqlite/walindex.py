"""Counting commits to a WAL database, whoever made them: the WAL-index change counter.

Every connection to a WAL database shares the *wal-index*, the ``-shm`` file beside it. Its
header (SQLite's walformat document) holds ``iChange``, a 32-bit counter that goes up by one
with each committed transaction, by any connection in any process. A writer that reads it
before and after its own commit can *claim* the values its commit produced; a poller that
reads it can then tell whether every commit it sees was claimed by some rxdb writer, or
whether someone else wrote (see :mod:`rxdb.engines.sqlite.foreign`). ``PRAGMA data_version``
cannot do this: it says *that* another connection committed, not how many times nor who.

The ``-shm`` file is opened read-only, once per file per process, and not closed while
SQLite may use it: POSIX drops *every* fcntl lock a process holds on a file when any one of
its descriptors for that file is closed, which would silently release SQLite's own
shared-memory locks. A descriptor is closed only once SQLite has deleted the file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
import threading
from collections.abc import Callable

__all__ = (
    "CommitStamper",
    "StateReadings",
    "WalIndex",
    "commit_state",
    "counter_span",
    "data_version",
)

_HEADER = struct.Struct("=I4xI")  # iVersion, (unused), iChange: native byte order
_HEADER_SIZE = 48  # one copy; SQLite writes two and a reader compares them
_VERSION = 3007000
_MAX_SPAN = 1 << 20
"""More counter values than this between two readings is not believed (a file replaced, a
counter wrapped in a way that cannot be told apart): the reader treats it as unknown."""


def counter_span(before: int, after: int) -> int | None:
    """How many commits moved the counter from ``before`` to ``after`` (it wraps at 2**32);
    ``None`` if that cannot be believed."""
    span = (after - before) & 0xFFFFFFFF
    return span if span <= _MAX_SPAN else None


class _Shared:
    __slots__ = ("fd", "refs")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.refs = 0


_OPEN: dict[tuple[int, int], _Shared] = {}
_OPEN_LOCK = threading.Lock()
_PARKED: list[int] = []


class WalIndex:
    """Read access to one database's ``-shm`` header, opened on first use (SQLite creates
    the file only once a connection uses the database in WAL mode)."""

    __slots__ = ("_path", "_shared")

    def __init__(self, database_path: str) -> None:
        # SQLite names the file after the database's resolved path (symbolic links followed).
        self._path = os.path.realpath(database_path) + "-shm"
        self._shared: _Shared | None = None

    def read(self) -> int | None:
        """The change counter, or ``None`` if there is no header that can be read (not in
        WAL mode, exclusive locking, no permission, or a writer kept rewriting it)."""
        shared = self._shared or self._attach()
        if shared is None:
            return None
        for _ in range(4):  # a writer may be rewriting the header right now
            try:
                data = os.pread(shared.fd, 2 * _HEADER_SIZE, 0)
            except OSError:
                return None
            if len(data) < 2 * _HEADER_SIZE:
                return None
            if data[:_HEADER_SIZE] == data[_HEADER_SIZE:]:
                version, change = _HEADER.unpack_from(data)
                return change if version == _VERSION else None
        return None

    def release(self) -> None:
        """Done with this index (call after the database's own connections are closed)."""
        with _OPEN_LOCK:
            if self._shared is not None:
                self._shared.refs -= 1
                self._shared = None
            _close_deleted()

    def _attach(self) -> _Shared | None:
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        stat = os.fstat(fd)
        key = (stat.st_dev, stat.st_ino)
        with _OPEN_LOCK:
            _close_deleted()
            shared = _OPEN.get(key)
            if shared is None:
                shared = _OPEN[key] = _Shared(fd)
            else:
                # Closing this second descriptor would drop SQLite's locks on the file: keep
                # it until the file is deleted.
                _PARKED.append(fd)
            if self._shared is None:
                shared.refs += 1
                self._shared = shared
        return self._shared


def _close_deleted() -> None:
    # Called with _OPEN_LOCK held. A file SQLite has unlinked has no connection left in this
    # process (SQLite deletes it only as the last one closes), so no lock to lose.
    for key, shared in list(_OPEN.items()):
        if shared.refs == 0 and _deleted(shared.fd):
            del _OPEN[key]
            with contextlib.suppress(OSError):
                os.close(shared.fd)
    for fd in list(_PARKED):
        if _deleted(fd):
            _PARKED.remove(fd)
            with contextlib.suppress(OSError):
                os.close(fd)


def _deleted(fd: int) -> bool:
    try:
        return os.fstat(fd).st_nlink == 0
    except OSError:
        return True


def data_version(connection: sqlite3.Connection) -> int:
    """``PRAGMA data_version`` of ``connection``, past any statement tracking of its class."""
    row = sqlite3.Connection.execute(connection, "PRAGMA data_version").fetchone()
    return int(row[0])


def commit_state(connection: sqlite3.Connection, index: WalIndex | None) -> tuple[int, int | None]:
    """``PRAGMA data_version`` of ``connection``, and the counter value it covers exactly
    (``None`` if unknown).

    The counter is read before and after the version: a commit that lands in between moves
    it, and the pair is read again. A counter read only after the version could count a
    commit the version did not see, and a poller using that pair as its baseline would take
    the commit for seen, and never announce it.
    """
    if index is None:
        return data_version(connection), None
    version = 0
    for _ in range(4):
        before = index.read()
        version = data_version(connection)
        after = index.read()
        if before is None or before == after:
            return version, before
    return version, None  # commits keep landing: the next poll looks again


class CommitStamper:
    """Proves which counter values a writer's own commit produced.

    :meth:`begin` (as a transaction starts) reads the writer's ``PRAGMA data_version`` and
    the counter; :meth:`end` (right after the commit) reads both again. ``data_version``
    changes only when *another* connection's commit becomes visible to this one, and every
    commit between the two readings would become visible at the second. So if it did not
    change, every value between the two counter readings is this transaction's own. That
    costs two ``PRAGMA`` statements and two ``pread`` calls (~15 µs) per transaction, paid
    only while ``enabled()`` says someone listens (another rxdb writer on the file).
    """

    __slots__ = ("_enabled", "_index", "_start")

    def __init__(self, index: WalIndex, enabled: Callable[[], bool]) -> None:
        self._index = index
        self._enabled = enabled
        self._start: tuple[int, int] | None = None

    def begin(self, connection: sqlite3.Connection) -> None:
        self._start = None
        if not self._enabled():
            return
        try:
            version = data_version(connection)
        except sqlite3.Error:
            return
        counter = self._index.read()
        if counter is not None:
            self._start = (version, counter)

    def end(self, connection: sqlite3.Connection) -> tuple[int, int] | None:
        """The ``(before, after)`` counter values the commit just made produced, or ``None``
        when that cannot be proven."""
        start, self._start = self._start, None
        if start is None:
            return None
        after = self._index.read()
        if after is None:
            return None
        try:
            if data_version(connection) != start[0]:
                return None  # someone else committed meanwhile: which values are ours?
        except sqlite3.Error:
            return None
        span = counter_span(start[1], after)
        return None if not span else (start[1], after)


class StateReadings:
    """The writer's :func:`commit_state` readings, handed to the poller without a hop where
    an earlier one will do.

    Readings are taken on the writer's thread, so they come in order; each is handed out at
    most once as news (a poller must never go back to an older reading), and a reading
    stays good while the counter keeps its value (every commit moves it, so
    ``data_version`` cannot have moved either). With :attr:`after_commits`, the writer
    takes one after a call that committed when :attr:`wanted` (~9 µs, once the call's
    result is on its way to the loop): a watch on the file's writes asks after every
    commit, this database's own included, and finds the answer ready.
    """

    __slots__ = ("_handed", "_index", "_latest", "_taken", "after_commits", "wanted")

    def __init__(self, index: WalIndex | None) -> None:
        self._index = index
        self._latest: tuple[int, tuple[int, int | None]] | None = None
        self._taken = 0  # written on the writer's thread only
        self._handed = 0  # read and written on the loop only
        self.after_commits = False
        self.wanted = False
        """Set on the loop: the writer takes a reading after its next commit."""

    def take(self, connection: sqlite3.Connection) -> None:
        """Read the state now (on the writer's thread)."""
        state = commit_state(connection, self._index)
        self._taken += 1
        self._latest = (self._taken, state)

    def after_commit(self, connection: sqlite3.Connection) -> None:
        if self.wanted:
            self.wanted = False
            with contextlib.suppress(sqlite3.Error):  # the poller asks with a hop instead
                self.take(connection)

    def fresh(self) -> tuple[int, int | None] | None:
        """A reading newer than any handed out, or the last one if it is still good;
        ``None`` if there is neither."""
        latest = self._latest
        if latest is None:
            return None
        taken, state = latest
        if taken > self._handed:
            self._handed = taken
            self.wanted = True  # the poller will want the next one too
            return state
        counter = state[1]
        if counter is not None and self._index is not None and counter == self._index.read():
            return state
        return None

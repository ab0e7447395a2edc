"""Told instead of polling: Linux inotify on a database's files, read by the event loop.

Every commit to a WAL database writes its pages to the ``-wal`` file (a checkpoint, or a
commit in rollback-journal mode, writes the main file), whoever makes it. The kernel reports
each such write to an inotify descriptor, which the event loop watches like a socket
(``add_reader``): no thread, no timer, and nothing to do while nobody writes. The stdlib has
no inotify binding, so it is reached through ``ctypes`` on the C library, which has had it
since glibc 2.4 and musl 0.9.

An event says "a file was written", not "a commit is visible": SQLite writes a commit's pages,
syncs the file, and only then bumps the WAL-index commit counter (one ``pread``, see
:mod:`rxdb.engines.sqlite.walindex`). So the poller (:mod:`rxdb.engines.sqlite.foreign`) takes
an event as a cue to look at the counter, and to look again shortly if it has not moved yet.

Where the kernel cannot tell (not Linux, no inotify in the C library, the per-user limit of
inotify instances reached, a network filesystem whose other hosts' writes raise no event),
:meth:`FileWatch.start` returns ``None`` and the poller keeps polling at ``foreign_poll``.
A watch follows the file, not the name: a renamed file is still the one rxdb's connections
write to. A deleted file loses its watch once nobody holds it open; :meth:`FileWatch.refresh`
watches whatever file has the name by then, and until there is one :attr:`FileWatch.complete`
is false and the poller polls as if there were no watch.

Closing an inotify instance that had watches makes the kernel wait for a grace period (7-16
ms, one close in two here), which ``db.close()`` would wait for. Removing a watch does not
wait. So a closed watch removes its watches and leaves its instance, emptied, for the next
watch of the process (:data:`IDLE_LIMIT` of them at most; the rest are closed on a thread of
their own); a forked child does not inherit them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import functools
import logging
import os
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Sequence

__all__ = ("FileWatch", "filesystem_type")

LOG = logging.getLogger("rxdb.foreign")

IDLE_LIMIT = 1
"""Emptied inotify instances kept open for the next watch. Each counts against the user's
``fs.inotify.max_user_instances`` (128 by default) as an open database's does; one serves a
process that opens and closes its databases one after the other."""

_IN_MODIFY = 0x002
_IN_IGNORED = 0x8000  # the kernel dropped the watch: its file was deleted (and closed)
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)
_READ_SIZE = 4096

_REMOTE_FILESYSTEMS = frozenset(
    {
        0x6969,  # NFS
        0x517B,  # SMB
        0xFE534D42,  # SMB2
        0xFF534D42,  # CIFS
        0x01021997,  # 9P (also WSL's and some VMs' shared folders)
        0x00C36400,  # Ceph
        0x5346414F,  # AFS
        0x65735546,  # FUSE (sshfs and other remote ones among them)
        0x47504653,  # GPFS
        0x0BD00BD0,  # Lustre
        0x73757245,  # Coda
        0x19830326,  # BeeGFS
    }
)
"""``statfs`` magic numbers of filesystems where a write made on another host raises no event
here."""


class FileWatch:
    """One inotify instance watching a database's files for writes.

    ``on_change`` is called on the loop at the first write, once: then the watch stops
    listening, so that a burst of writes (a commit writes several times; a long transaction
    many) costs one call, and the events pile up in the kernel (merged) until
    :meth:`drain` reads them. :meth:`listen` starts listening again.
    """

    __slots__ = (
        "_closed", "_closer", "_fd", "_libc", "_listening", "_loop", "_on_change", "_paths",
        "_watches",
    )  # fmt: skip

    def __init__(
        self,
        fd: int,
        libc: ctypes.CDLL,
        paths: Sequence[str],
        on_change: Callable[[], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._fd = fd
        self._libc = libc
        self._paths = tuple(paths)
        self._on_change = on_change
        self._loop = loop
        self._watches: dict[int, str] = {}  # watch descriptor -> path
        self._listening = False
        self._closer: threading.Thread | None = None
        self._closed: asyncio.Future[None] = loop.create_future()

    @classmethod
    def start(cls, paths: Sequence[str], on_change: Callable[[], None]) -> FileWatch | None:
        """Watch ``paths`` from the running loop, or ``None`` where no event can be relied on
        (see the module docstring). Paths that do not exist yet are added by :meth:`refresh`."""
        libc = _libc()
        if libc is None or any(_remote(path) for path in paths):
            return None
        fd = _take_idle()
        if fd < 0:
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            error = ctypes.get_errno()
            LOG.info("no inotify instance (%s): polling instead", os.strerror(error))
            return None
        loop = asyncio.get_running_loop()
        watch = cls(fd, libc, paths, on_change, loop)
        try:
            watch.refresh()
            watch.listen()
        except NotImplementedError:  # a loop that watches no descriptor (Windows' proactor)
            watch.close()
            return None
        except BaseException:
            watch.close()
            raise
        return watch

    @property
    def complete(self) -> bool:
        """Whether every path is watched (a write to any of them will be reported)."""
        return len(self._watches) == len(self._paths)

    @property
    def fileno(self) -> int:
        """The inotify descriptor (for tests), ``-1`` once closed."""
        return self._fd

    def refresh(self) -> None:
        """Watch the paths that have no watch (they did not exist, or were replaced)."""
        if self.complete or self._fd < 0:
            return
        watched = set(self._watches.values())
        for path in self._paths:
            if path not in watched:
                wd = self._libc.inotify_add_watch(self._fd, os.fsencode(path), _IN_MODIFY)
                if wd >= 0:
                    self._watches[wd] = path

    def listen(self) -> None:
        """Call ``on_change`` at the next write (at once if writes are waiting)."""
        if not self._listening and self._fd >= 0:
            self._loop.add_reader(self._fd, self._readable)
            self._listening = True

    def drain(self) -> bool:
        """Read the waiting events; whether there were any."""
        written = False
        try:
            while True:
                data = os.read(self._fd, _READ_SIZE)
                written = True
                self._forget_lost(data)
        except BlockingIOError:
            pass
        except OSError:  # closed, or a bug: either way the poller polls from now on
            if self._fd >= 0:
                LOG.warning("reading inotify events failed: polling instead", exc_info=True)
                self.close()
        return written

    def close(self) -> None:
        """Stop watching (on the loop). The instance, its watches removed, is kept for the
        next watch if there is room (see the module's docstring); else its descriptor is
        closed on a thread of its own, which :meth:`wait_closed` waits for: the kernel's
        release of an instance that had watches waits for a grace period, which would stop
        the loop (every watch of it) for as long."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            if self._listening:
                self._loop.remove_reader(fd)
                self._listening = False
            watches, self._watches = self._watches, {}
            if _keep_idle(fd, self._libc, watches):
                return
            loop, closed = self._loop, self._closed

            def release() -> None:
                with contextlib.suppress(OSError):
                    os.close(fd)  # drops every watch of the instance
                # Resolved here alone, once (wait_closed shields it from cancellation).
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    loop.call_soon_threadsafe(closed.set_result, None)

            self._closer = threading.Thread(target=release, name="rxdb-inotify-close")
            self._closer.start()

    async def wait_closed(self) -> None:
        """Wait, with the loop free meanwhile, until :meth:`close` has closed the
        descriptor and its thread is gone (nothing of the watch outlives the database)."""
        closer = self._closer
        if closer is not None:
            await asyncio.shield(self._closed)
            closer.join()  # it has signalled: only its return is left

    def _readable(self) -> None:
        self._loop.remove_reader(self._fd)
        self._listening = False
        self._on_change()

    def _forget_lost(self, data: bytes) -> None:
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            if mask & _IN_IGNORED:
                self._watches.pop(wd, None)
            offset += _EVENT.size + length


_IDLE: list[int] = []  # emptied inotify instances, for the next watch
_IDLE_LOCK = threading.Lock()  # watches start and close on any loop's thread


def _take_idle() -> int:
    """An emptied instance kept by an earlier watch, or ``-1``. A descriptor that is no
    inotify instance any more (closed behind rxdb's back, its number reused: a socket, say)
    is forgotten, neither read nor closed: it is not rxdb's."""
    with _IDLE_LOCK:
        while _IDLE:
            fd = _IDLE.pop()
            if _is_inotify(fd):
                return fd
    return -1


def _is_inotify(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
    except OSError:  # closed, or no /proc: not to be trusted
        return False


def _keep_idle(fd: int, libc: ctypes.CDLL, watches: Iterable[int]) -> bool:
    """Remove ``watches`` from instance ``fd``, read the events left (their ``IN_IGNORED``
    among them) and keep it for the next watch; ``False`` if there is no room or it cannot
    be emptied for sure (the caller closes it)."""
    with _IDLE_LOCK:
        if len(_IDLE) >= IDLE_LIMIT:
            return False
    for wd in watches:
        # EINVAL: the kernel dropped it already (its file was deleted).
        if libc.inotify_rm_watch(fd, wd) != 0 and ctypes.get_errno() != errno.EINVAL:
            return False
    try:
        while os.read(fd, _READ_SIZE):
            pass
    except BlockingIOError:
        pass  # nothing left
    except OSError:
        return False
    with _IDLE_LOCK:
        if len(_IDLE) >= IDLE_LIMIT:
            return False
        _IDLE.append(fd)
    return True


def _forget_idle_in_child() -> None:
    """After a fork, in the child: the kept instances are the parent's (one event queue
    between two processes would lose events to the other). Closing the child's descriptors
    of them releases nothing: the parent keeps them open."""
    global _IDLE_LOCK
    _IDLE_LOCK = threading.Lock()  # another thread may have held it at the fork
    kept = list(_IDLE)
    _IDLE.clear()
    for fd in kept:
        with contextlib.suppress(OSError):
            os.close(fd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_idle_in_child)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for name in ("inotify_init1", "inotify_add_watch", "inotify_rm_watch", "statfs"):
            getattr(libc, name)
    except (OSError, AttributeError):
        return None
    libc.inotify_add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
    libc.statfs.argtypes = (ctypes.c_char_p, ctypes.c_void_p)
    return libc


def _remote(path: str) -> bool:
    """Whether ``path``'s directory is on a filesystem other hosts may write to unseen (an
    unknown answer counts as remote: polling is never wrong)."""
    kind = filesystem_type(os.path.dirname(os.path.abspath(path)))
    return kind is None or kind in _REMOTE_FILESYSTEMS


def filesystem_type(path: str) -> int | None:
    """The ``statfs`` magic number of the filesystem holding ``path``, or ``None``."""
    libc = _libc()
    if libc is None:
        return None
    buffer = ctypes.create_string_buffer(256)  # struct statfs: 120 bytes on 64-bit Linux
    if libc.statfs(os.fsencode(path), buffer) != 0:
        return None
    return ctypes.c_long.from_buffer(buffer).value & 0xFFFFFFFF  # f_type comes first

"""The hub's way in: :func:`join` counts the joins of one database per process and bus and
hands out :class:`Membership` handles; every link runs on one *hub thread* of the process.

Internal: not covered by rxdb's versioning (:mod:`rxdb.remote.hub` explains the design).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass

from rxdb.boundary.loop_thread import LoopThread
from rxdb.bus import Bus
from rxdb.remote.hub.link import Link
from rxdb.remote.hub.tuning import LOG, TUNING, Role
from rxdb.remote.runtime import socket_directory, socket_path

__all__ = ("HubStatistics", "Membership", "join")


@dataclass(frozen=True, slots=True)
class HubStatistics:
    """A snapshot of one link, for tests and diagnostics.

    :ivar role: ``"hub"`` while this process hosts the hub socket, else ``"member"``.
    :ivar connected: whether messages currently flow (a hub is always connected).
    :ivar sent: Notify frames written (a hub counts one per receiving peer).
    :ivar received: Notify frames received from other processes.
    :ivar resyncs: resync messages published on the local bus.
    :ivar elections: how many times this process won an election and became the hub.
    :ivar coalesced: resyncs from other processes held back because another had just been
        published (merged into a later one, never dropped).
    """

    role: Role
    connected: bool
    sent: int
    received: int
    resyncs: int
    elections: int
    coalesced: int


# ---------------------------------------------------------------------------------------
# The public face


class Membership:
    """One :func:`join` of one database: a handle on this process's link for it."""

    __slots__ = ("_left", "_link", "_origins")

    def __init__(self, link: Link, origins: Callable[[], Collection[str]]) -> None:
        self._link = link
        self._origins = origins
        self._left = False

    @property
    def key(self) -> str:
        return self._link.key

    @property
    def path(self) -> str:
        """The hub socket's path."""
        return self._link.path

    @property
    def origin(self) -> str:
        """The origin of this process's resync messages (``everything=True``) on the bus."""
        return self._link.origin

    @property
    def left(self) -> bool:
        return self._left

    def others_present(self) -> bool:
        """Whether another rxdb database shares the file's commits with us right now:
        another join in this process, or another process through the hub. Safe to call
        from any thread."""
        return self._link.others_present()

    def statistics(self) -> HubStatistics:
        """A consistent snapshot: read on the hub thread, after whatever it is doing now."""
        link = self._link
        loop = link.loop
        if loop.is_running() and threading.get_ident() != link.thread_ident:
            snapshot = asyncio.run_coroutine_threadsafe(_snapshot(link), loop)
            with contextlib.suppress(concurrent.futures.TimeoutError):
                return snapshot.result(TUNING.handshake_timeout)
        return _read(link)

    def __repr__(self) -> str:
        stats = self.statistics()
        state = "left" if self._left else f"{stats.role}, connected={stats.connected}"
        return f"<Membership {self.key!r} {state}>"

    async def leave(self) -> None:
        """Stop sharing through this handle; the last one of a link closes it. Idempotent."""
        if self._left:
            return
        self._left = True
        link = self._link
        with _REGISTRY_LOCK:
            link.refs -= 1
            sources = list(link.origin_sources)
            with contextlib.suppress(ValueError):
                sources.remove(self._origins)
            link.origin_sources = tuple(sources)
            last = link.refs == 0
            if last and _REGISTRY.get((link.path, id(link.bus))) is link:
                del _REGISTRY[(link.path, id(link.bus))]
        if not last:
            return
        if link.loop.is_closed():
            link.abandon()
        else:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(link.close(), link.loop))
        _stop_hub_thread_if_idle(link.loop)


async def _snapshot(link: Link) -> HubStatistics:
    return _read(link)


def _read(link: Link) -> HubStatistics:
    return HubStatistics(
        role=link.role,
        connected=link.connected,
        sent=link.sent,
        received=link.received,
        resyncs=link.resyncs,
        elections=link.elections,
        coalesced=link.coalesced,
    )


_REGISTRY: dict[tuple[str, int], Link] = {}
_REGISTRY_LOCK = threading.Lock()
_HUB_THREAD: LoopThread | None = None  # under _REGISTRY_LOCK


def _hub_loop() -> asyncio.AbstractEventLoop:
    """The hub thread's loop, started if need be (call with ``_REGISTRY_LOCK`` held)."""
    global _HUB_THREAD
    if _HUB_THREAD is None:
        # A daemon: it holds no data, and a program that forgets to close a database must
        # still be able to exit.
        _HUB_THREAD = LoopThread("rxdb-hub", daemon=True)
    return _HUB_THREAD.loop


def _stop_hub_thread_if_idle(loop: asyncio.AbstractEventLoop) -> None:
    global _HUB_THREAD
    with _REGISTRY_LOCK:
        thread = _HUB_THREAD
        if thread is None or thread.loop is not loop or _REGISTRY:
            return
        _HUB_THREAD = None
    thread.stop()


async def join(
    key: str,
    bus: Bus,
    *,
    local_origins: Callable[[], Collection[str]],
    directory: str | None = None,
) -> Membership:
    """Share the table updates of database ``key`` on ``bus`` with other processes.

    Messages on ``bus`` for ``key`` whose origin is in ``local_origins()`` go to the other
    processes; theirs are published on ``bus`` unchanged. Joins are counted per process,
    ``bus`` and key: a second join returns a handle on the same link, and the last
    :meth:`Membership.leave` closes it. Returns once connected (or after
    ``TUNING.join_timeout``, still trying in the background).

    :param key: the database identity (its file's real path).
    :param local_origins: the origins of this process's databases that share ``key``.
    :param directory: where the hub socket lives; see :func:`socket_directory`.
    :raises HubError: if the socket directory is unusable.
    """
    path = socket_path(key, socket_directory(directory))
    with _REGISTRY_LOCK:
        link = _REGISTRY.get((path, id(bus)))
        if link is not None and link.loop.is_closed():
            link.abandon()
            link = None
        if link is None:
            link = Link(key, bus, os.path.dirname(path), path, _hub_loop())
            _REGISTRY[(path, id(bus))] = link
        link.refs += 1
        link.origin_sources = (*link.origin_sources, local_origins)
    membership = Membership(link, local_origins)
    try:
        await asyncio.wait_for(
            asyncio.shield(asyncio.wrap_future(link.first_connection)), TUNING.join_timeout
        )
    except TimeoutError:
        link.late = True
        LOG.warning("hub of %s: not connected yet; watches resync once it is", key)
    except BaseException:
        await membership.leave()
        raise
    return membership


def _after_fork_in_child() -> None:
    # A forked child must not keep the parent's lock or sockets alive: the survivors could
    # never elect a new hub, nor see the parent's connections close.
    links = list(_REGISTRY.values())
    _REGISTRY.clear()
    global _REGISTRY_LOCK, _HUB_THREAD
    _REGISTRY_LOCK = threading.Lock()
    _HUB_THREAD = None  # threads do not survive a fork
    for link in links:
        link.abandon()


os.register_at_fork(after_in_child=_after_fork_in_child)

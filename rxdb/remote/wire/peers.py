"""Who may be at the other end of a Unix socket: the peer-uid rule of the hub, the server and
the client.

The owner-only runtime directory keeps other users away from rxdb's sockets, but a socket
can also live elsewhere (a path the user chose, a directory shared by mistake, a socket made
0666) and a path can be taken over by someone else. So every Unix connection also asks the
kernel who the peer is (``SO_PEERCRED``) and talks only to:

- the same effective uid;
- root (uid 0), which can read the socket's files and become any user anyway, so refusing
  it would protect nothing;
- the uids the user listed explicitly (``allowed_uids`` of :func:`rxdb.serve` for clients,
  and of the client's :class:`~rxdb.remote.wire.endpoint.Endpoint` for a server run by
  another user).

A token never widens this: it is checked in addition. Where the platform does not say who
the peer is (no ``SO_PEERCRED``: macOS, BSD), only the directory's rule applies.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Iterable

from rxdb.errors import ProgrammingError

__all__ = ("allowed_uid_set", "peer_uid", "uid_refusal")


def peer_uid(writer: asyncio.StreamWriter) -> int | None:
    """The uid of the process at the other end, where the platform tells it cheaply (Linux's
    ``SO_PEERCRED``), else ``None``."""
    option = getattr(socket, "SO_PEERCRED", None)
    sock = writer.get_extra_info("socket")
    if option is None or sock is None or sock.family != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


def allowed_uid_set(allowed: Iterable[int] | None) -> frozenset[int]:
    """The uids ``allowed`` lists, checked.

    :raises rxdb.ProgrammingError: if it is not an iterable of non-negative ints.
    """
    if allowed is None:
        return frozenset()
    if isinstance(allowed, str | bytes) or not isinstance(allowed, Iterable):
        raise ProgrammingError(f"allowed_uids must be a collection of uids (ints), not {allowed!r}")
    uids = tuple(allowed)
    for uid in uids:
        if type(uid) is not int or uid < 0:
            raise ProgrammingError(f"allowed_uids must hold uids (ints >= 0), not {uid!r}")
    return frozenset(uids)


def uid_refusal(
    uid: int | None, allowed: frozenset[int], peer: str, remedy: str = ""
) -> str | None:
    """Why a ``peer`` (``"client"``, ``"server"``, ``"hub"``...) running as ``uid`` is refused,
    or ``None`` if it may talk to us (``uid`` ``None``: the platform does not tell).
    ``remedy`` says how to admit it, if there is a way."""
    own = os.geteuid()
    if uid is None or uid in (own, 0) or uid in allowed:
        return None
    also = " and the uids it was told to trust" if allowed else ""
    return (
        f"the {peer} runs as uid {uid}; this process (uid {own}) talks only to its own uid, "
        f"root{also}{remedy}"
    )

"""The name server: find a database server by name from any process of the same user.

Drift's ``IsolateNameServer`` idea, on the file system: ``register(name, handle)`` writes a
small entry into rxdb's owner-only runtime directory (see :mod:`rxdb.remote.runtime`), and
any process of the same user can :func:`lookup` it. An entry whose process has died is
stale: lookup ignores and removes it, so a crashed server never sends clients to a dead
socket for long.
"""

from __future__ import annotations

from rxdb.remote.client.connection import Reconnect
from rxdb.remote.client.database import RemoteDatabase
from rxdb.remote.handle import ServerHandle
from rxdb.remote.runtime import remove_entry, write_entry
from rxdb.remote.wire.endpoint import Endpoint

__all__ = ("connect_named", "lookup", "register", "unregister")


def register(
    name: str, handle: Endpoint, *, pid: int | None = None, directory: str | None = None
) -> None:
    """Publish ``handle`` under ``name`` for the process ``pid`` (default: this one).

    A live registration of another process under the same name is an error; a stale one is
    replaced.

    :raises rxdb.ProgrammingError: for a name that is not 1-100 letters, digits, '_', '.'
        or '-' (starting with a letter or digit).
    :raises rxdb.NameTakenError: if a live process already registered ``name``.
    """
    write_entry(name, handle.to_json(), pid=pid, directory=directory)


def lookup(name: str, *, directory: str | None = None) -> ServerHandle:
    """Return the handle registered under ``name``.

    :raises rxdb.NameNotFoundError: (a ``LookupError``) if there is none, or its process is
        dead (the stale entry is removed).
    """
    return ServerHandle.named(name, directory=directory)


def unregister(name: str, *, pid: int | None = None, directory: str | None = None) -> None:
    """Remove the registration of ``name`` (only if it belongs to ``pid``, when given)."""
    remove_entry(name, pid=pid, directory=directory)


async def connect_named(name: str, *, reconnect: bool | Reconnect = False) -> RemoteDatabase:
    """Connect to the server registered under ``name``. With ``reconnect``, every attempt
    looks the name up again (see :meth:`ServerHandle.connect`).

    :raises rxdb.NameNotFoundError: (a ``LookupError``) if no live server has that name.
    """
    return await lookup(name).connect(reconnect=reconnect)

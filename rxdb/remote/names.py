"""The name server: find a database server by name from any process of the same user.

Drift's ``IsolateNameServer`` idea, on the file system: ``register(name, handle)`` writes a
small JSON file into rxdb's owner-only runtime directory (the hub's directory, mode 0700;
the file itself 0600, since it may hold the server's token). Any process of the same user
can :func:`lookup` it. An entry whose process has died is stale: lookup ignores and removes
it, so a crashed server never sends clients to a dead socket for long.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from typing import Final

from rxdb.errors import NameNotFoundError as NameNotFoundError
from rxdb.remote.runtime import socket_directory
from rxdb.remote.server import ServerHandle

__all__ = ("NameNotFoundError", "lookup", "register", "unregister")

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _entry(name: str, directory: str | None) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"a server name is 1-100 letters, digits, '_', '.' or '-' (starting with a letter "
            f"or digit), not {name!r}"
        )
    return os.path.join(socket_directory(directory), f"{name}.server.json")


def register(
    name: str, handle: ServerHandle, *, pid: int | None = None, directory: str | None = None
) -> None:
    """Publish ``handle`` under ``name`` for the process ``pid`` (default: this one).

    A live registration of another process under the same name is an error; a stale one is
    replaced.

    :raises FileExistsError: if a live process already registered ``name``.
    """
    path = _entry(name, directory)
    owner = os.getpid() if pid is None else pid
    existing = _read(path)
    if existing is not None and existing[1] != owner and _alive(existing[1]):
        raise FileExistsError(
            f"the name {name!r} is taken by a live rxdb server (pid {existing[1]}); "
            "choose another or stop that server"
        )
    data = {**handle.to_json(), "name": name, "pid": owner}
    temporary = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(data, file)
        os.replace(temporary, path)  # readers never see half a file
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def lookup(name: str, *, directory: str | None = None) -> ServerHandle:
    """Return the handle registered under ``name``.

    :raises NameNotFoundError: if there is none, or its process is dead (the stale entry is
        removed).
    """
    path = _entry(name, directory)
    found = _read(path)
    if found is None:
        raise NameNotFoundError(f"no rxdb server is registered under the name {name!r}")
    handle, pid = found
    if not _alive(pid):
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise NameNotFoundError(
            f"the rxdb server registered as {name!r} (pid {pid}) is gone; its entry was removed"
        )
    return handle


def unregister(name: str, *, pid: int | None = None, directory: str | None = None) -> None:
    """Remove the registration of ``name`` (only if it belongs to ``pid``, when given)."""
    path = _entry(name, directory)
    if pid is not None:
        found = _read(path)
        if found is None or found[1] != pid:
            return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _read(path: str) -> tuple[ServerHandle, int] | None:
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
        pid = data.get("pid")
        if type(pid) is not int:
            return None
        return ServerHandle.from_json(data), pid
    except (OSError, ValueError, AttributeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

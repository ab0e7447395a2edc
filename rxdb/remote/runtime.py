"""rxdb's runtime directory: where sockets and name entries live, and who may reach them.

The hub's sockets, the database servers' default sockets and the name server's entries all
live in one directory per user, which only that user may enter (mode 0700, owned by the
effective uid, not a symlink). That rule is the first thing that keeps other users out of a
Unix socket (the peer-uid checks of :mod:`rxdb.remote.wire.peers` are the second), so it is
checked in one place: here. Used by :mod:`rxdb.remote.hub`, :mod:`rxdb.remote.server`,
:mod:`rxdb.remote.handle` and :mod:`rxdb.remote.names`.

Without ``XDG_RUNTIME_DIR`` the directory is ``/tmp/rxdb-{uid}``, a name anyone can take
first: another user who creates it (or a symlink there) would make every default open fail.
So when that name belongs to someone else, every process of the user falls back to the same
private directory under its own cache directory, which no one else can occupy; the
separate processes of one user agree on it because it depends only on the user's
environment and the host, never on who came first.

A name entry is a small JSON object in ``{name}.server.json`` (mode 0600, since it may hold a
server's token) with the ``pid`` of the process that wrote it. An entry whose process has
died is stale: reading it removes it, so a crashed server never sends clients to a dead
socket for long.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
import stat
import tempfile
from typing import Any, Final

from rxdb.errors import HubError, NameNotFoundError, NameTakenError, ProgrammingError

__all__ = ("read_entry", "remove_entry", "socket_directory", "socket_path", "write_entry")

LOG: Final = logging.getLogger("rxdb.remote")

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

# A Unix socket's path must fit in sun_path (108 bytes on Linux, 104 on macOS), NUL included.
_SUN_PATH_MAX = 103 if os.uname().sysname == "Darwin" else 107


def socket_directory(directory: str | None = None) -> str:
    """Return the directory for hub sockets, created with mode 0700 if missing.

    Default: ``$XDG_RUNTIME_DIR/rxdb`` if that variable names a directory of this user, else
    ``{tempfile.gettempdir()}/rxdb-{uid}``, unless another user took that name first: then
    ``{$XDG_CACHE_HOME or ~/.cache}/rxdb/run-{host}`` (a warning says so, once a process).

    :raises HubError: if the directory cannot be created, is not a directory (a symlink is
        refused), belongs to another user, or grants any permission to group or others.
    """
    if directory is not None:
        path = os.path.abspath(os.fspath(directory))
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        _ensure_private_directory(path)
        return path
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and _usable_runtime_dir(runtime):
        path = os.path.join(runtime, "rxdb")
        _ensure_private_directory(path)
        return path
    shared = os.path.join(tempfile.gettempdir(), f"rxdb-{os.geteuid()}")
    try:
        _ensure_private_directory(shared)
    except HubError:
        if not _taken_by_another_user(shared):
            raise  # ours but unsafe: the message says how to fix it
    else:
        return shared
    fallback = _private_fallback()
    if fallback is None:
        raise HubError(
            f"the hub directory {shared!r} belongs to another user and there is no home or "
            "cache directory to fall back to; set XDG_RUNTIME_DIR or pass a directory"
        )
    _ensure_private_directory(fallback)
    if fallback not in _WARNED:
        _WARNED.add(fallback)
        LOG.warning(
            "the hub directory %r belongs to another user; using %r instead", shared, fallback
        )
    return fallback


_WARNED: set[str] = set()


def _taken_by_another_user(path: str) -> bool:
    try:
        return os.lstat(path).st_uid != os.geteuid()
    except OSError:
        return False


def _private_fallback() -> str | None:
    """The user's own runtime directory when the shared temporary name is taken: under the
    cache directory, per host (a home shared over the network must not mix two machines'
    sockets and locks)."""
    cache = os.environ.get("XDG_CACHE_HOME")
    if not cache or not os.path.isabs(cache):
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        cache = os.path.join(home, ".cache")
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    parent = os.path.join(cache, "rxdb")
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
    except OSError as error:
        raise HubError(f"cannot create the hub directory {parent!r}: {error}") from error
    return os.path.join(parent, f"run-{host}")


def socket_path(key: str, directory: str) -> str:
    """Return the hub socket's path for database ``key`` in ``directory``.

    :raises HubError: if the path is too long for a Unix socket.
    """
    digest = hashlib.sha256(os.fsencode(key)).hexdigest()[:24]
    path = os.path.join(directory, f"{digest}.sock")
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        raise HubError(
            f"the hub socket path {path!r} is longer than the {_SUN_PATH_MAX} bytes a Unix "
            "socket allows; use a shorter directory"
        )
    return path


def _usable_runtime_dir(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (
        os.path.isabs(path)
        and stat.S_ISDIR(st.st_mode)
        and st.st_uid == os.geteuid()
        and os.access(path, os.W_OK | os.X_OK)
    )


def _ensure_private_directory(path: str) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as error:
        raise HubError(f"cannot create the hub directory {path!r}: {error}") from error
    else:
        # The umask may have taken bits away; owner-only rwx is what we need.
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
    try:
        st = os.lstat(path)
    except OSError as error:
        raise HubError(f"cannot inspect the hub directory {path!r}: {error}") from error
    if not stat.S_ISDIR(st.st_mode):
        raise HubError(f"the hub directory {path!r} is not a directory (symlinks are refused)")
    if st.st_uid != os.geteuid():
        raise HubError(
            f"the hub directory {path!r} belongs to uid {st.st_uid}, not to this process's "
            f"uid {os.geteuid()}; remove it or use another directory"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise HubError(
            f"the hub directory {path!r} has mode {mode:04o}; others could reach its sockets. "
            f"Run `chmod 700 {path}` or use another directory"
        )
    if mode & 0o700 != 0o700:
        raise HubError(f"the hub directory {path!r} has mode {mode:04o}; it needs 0700")


# -- name entries ---------------------------------------------------------------------------


def write_entry(
    name: str, data: dict[str, Any], *, pid: int | None = None, directory: str | None = None
) -> None:
    """Publish ``data`` under ``name`` for the process ``pid`` (default: this one); a stale
    entry is replaced, atomically (readers never see half a file).

    :raises rxdb.ProgrammingError: for a name that is not 1-100 letters, digits, '_', '.'
        or '-'.
    :raises rxdb.NameTakenError: if a live process of another pid holds the name.
    """
    path = _entry_path(name, directory)
    owner = os.getpid() if pid is None else pid
    existing = _load(path)
    if existing is not None and existing["pid"] != owner and _alive(existing["pid"]):
        raise NameTakenError(
            f"the name {name!r} is taken by a live rxdb server (pid {existing['pid']}); "
            "choose another or stop that server"
        )
    import json  # here: the hub, which every file database joins, reads no entries

    temporary = f"{path}.{os.urandom(4).hex()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump({**data, "name": name, "pid": owner}, file)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_entry(name: str, *, directory: str | None = None) -> dict[str, Any]:
    """The entry published under ``name`` by a live process.

    :raises rxdb.NameNotFoundError: if there is none, or its process is dead (the stale
        entry is removed).
    :raises rxdb.ProgrammingError: for a name that cannot be an entry's.
    """
    path = _entry_path(name, directory)
    found = _load(path)
    if found is None:
        raise NameNotFoundError(f"no rxdb server is registered under the name {name!r}")
    if not _alive(found["pid"]):
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise NameNotFoundError(
            f"the rxdb server registered as {name!r} (pid {found['pid']}) is gone; its entry "
            "was removed"
        )
    return found


def remove_entry(name: str, *, pid: int | None = None, directory: str | None = None) -> None:
    """Remove the entry of ``name`` (only if it belongs to ``pid``, when given)."""
    path = _entry_path(name, directory)
    if pid is not None:
        found = _load(path)
        if found is None or found["pid"] != pid:
            return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _entry_path(name: str, directory: str | None) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ProgrammingError(
            f"a server name is 1-100 letters, digits, '_', '.' or '-' (starting with a letter "
            f"or digit), not {name!r}"
        )
    return os.path.join(socket_directory(directory), f"{name}.server.json")


def _load(path: str) -> dict[str, Any] | None:
    """The entry at ``path``, or ``None`` if it is missing or not an entry."""
    import json  # see write_entry

    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or type(data.get("pid")) is not int:
        return None
    return data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

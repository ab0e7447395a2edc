"""rxdb's runtime directory: where sockets and name entries live, and who may reach them.

The hub's sockets, the database servers' default sockets and the name server's entries all
live in one directory per user, which only that user may enter (mode 0700, owned by the
effective uid, not a symlink). That rule, not a token, is what keeps other users out of a
Unix socket, so it is checked in one place: here. Used by :mod:`rxdb.remote.hub`,
:mod:`rxdb.remote.server` and :mod:`rxdb.remote.names`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile

from rxdb.errors import HubError as HubError

__all__ = ("HubError", "socket_directory", "socket_path")

# A Unix socket's path must fit in sun_path (108 bytes on Linux, 104 on macOS), NUL included.
_SUN_PATH_MAX = 103 if os.uname().sysname == "Darwin" else 107


def socket_directory(directory: str | None = None) -> str:
    """Return the directory for hub sockets, created with mode 0700 if missing.

    Default: ``$XDG_RUNTIME_DIR/rxdb`` if that variable names a directory of this user, else
    ``{tempfile.gettempdir()}/rxdb-{uid}``.

    :raises HubError: if the directory cannot be created, is not a directory (a symlink is
        refused), belongs to another user, or grants any permission to group or others.
    """
    if directory is None:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        if runtime and _usable_runtime_dir(runtime):
            path = os.path.join(runtime, "rxdb")
        else:
            path = os.path.join(tempfile.gettempdir(), f"rxdb-{os.geteuid()}")
    else:
        path = os.path.abspath(os.fspath(directory))
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(path), exist_ok=True)
    _ensure_private_directory(path)
    return path


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

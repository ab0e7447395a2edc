"""Where a server listens and what it demands of a client.

An :class:`Endpoint` is the part of a server's handle that leaves the process: as JSON in
the name registry and in a spawned server's first answer, and as fields of a compute job.
:class:`rxdb.remote.handle.ServerHandle` is an endpoint that can also connect; the client
itself needs only the endpoint, which keeps it below the handle (no import circle).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Literal, Self

from rxdb.errors import ProgrammingError

__all__ = ("Endpoint", "is_loopback", "tcp_address", "token_bytes")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """How to reach a server: picklable, JSON-able, checked when made.

    :ivar kind: ``"unix"`` or ``"tcp"``.
    :ivar address: the socket path, or ``"host:port"`` (an IPv6 host in brackets).
    :ivar token: the hex token the server demands, or ``None`` (Unix sockets rely on the
        owner-only directory instead).
    :ivar name: the name the server is registered under, if any.
    :ivar uid: the uid the server runs as, which a client accepts at the other end of a Unix
        socket besides its own and root's (see :mod:`rxdb.remote.wire.peers`); ``None``:
        only those two. The server writes its own into its handle.
    :raises rxdb.ProgrammingError: for a field of the wrong type or form.
    """

    kind: Literal["unix", "tcp"]
    address: str
    token: str | None = None
    name: str | None = None
    uid: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("unix", "tcp"):
            raise ProgrammingError(f"a server's kind is 'unix' or 'tcp', not {self.kind!r}")
        if not isinstance(self.address, str) or not self.address:
            raise ProgrammingError(f"a server's address must be a non-empty str: {self!r}")
        if self.kind == "tcp":
            tcp_address(self.address)
        if self.token is not None:
            token_bytes(self.token)
        if self.name is not None and not isinstance(self.name, str):
            raise ProgrammingError(f"a server's name must be a str, not {self.name!r}")
        if self.uid is not None and (type(self.uid) is not int or self.uid < 0):
            raise ProgrammingError(f"a server's uid must be an int >= 0, not {self.uid!r}")

    def located(self) -> Endpoint:
        """Where the server is now. A plain endpoint stays where it is; a named handle
        looks its name up again (the server may have restarted elsewhere)."""
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "address": self.address,
            "token": self.token,
            "name": self.name,
            "uid": self.uid,
        }

    @classmethod
    def from_json(cls, data: Any) -> Self:
        """Rebuild what :meth:`to_json` gave, checking every field.

        :raises rxdb.ProgrammingError: if ``data`` is not such an object.
        """
        if not isinstance(data, dict):
            raise ProgrammingError(f"a server handle is a JSON object, not {data!r}")
        kind, address = data.get("kind"), data.get("address")
        token, name = data.get("token"), data.get("name")
        if kind not in ("unix", "tcp"):
            raise ProgrammingError(f"not a server handle: {data!r}")
        for field, value in (("address", address), ("token", token), ("name", name)):
            if value is not None and not isinstance(value, str):
                raise ProgrammingError(f"a server handle's {field} must be a string: {data!r}")
        if address is None:
            raise ProgrammingError(f"a server handle needs an address: {data!r}")
        uid = data.get("uid")
        if uid is not None and type(uid) is not int:
            raise ProgrammingError(f"a server handle's uid must be an int: {data!r}")
        return cls(kind, address, token, name, uid)


def tcp_address(address: str) -> tuple[str, int]:
    """Split ``"host:port"`` (``"[::1]:port"`` for IPv6).

    :raises rxdb.ProgrammingError: if it is not of that form.
    """
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProgrammingError(f"a TCP server's address is 'host:port', not {address!r}")
    return host, int(port)


def token_bytes(token: str) -> bytes:
    """The token a client presents, from its hex form.

    :raises rxdb.ProgrammingError: for a token that is not hex.
    """
    try:
        return bytes.fromhex(token)
    except (TypeError, ValueError):
        raise ProgrammingError("a server token is a hex string") from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

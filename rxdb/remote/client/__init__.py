"""The client side of server mode (see :mod:`rxdb.remote.client.database`)."""

from rxdb.remote.client.database import (
    ConnectionLostError,
    Reconnect,
    RemoteDatabase,
    RemoteReadSession,
    RemoteStream,
    ServerRefusedError,
    connect,
    connect_named,
)

__all__ = (
    "ConnectionLostError",
    "Reconnect",
    "RemoteDatabase",
    "RemoteReadSession",
    "RemoteStream",
    "ServerRefusedError",
    "connect",
    "connect_named",
)

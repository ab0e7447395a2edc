"""The client side of server mode: :class:`RemoteDatabase`, the async database contract over
one connection to a server (modules: :mod:`.database` the shape, :mod:`.connection` the
connection and reconnection, :mod:`.subscriptions` watches, :mod:`.blocks` transaction and
read blocks, :mod:`.answers` what the server's answers must be).

Internal, except for the names :mod:`rxdb` exports: not covered by rxdb's versioning.
"""

from rxdb.remote.client.blocks import RemoteReadSession
from rxdb.remote.client.connection import Reconnect
from rxdb.remote.client.database import RemoteDatabase, connect

__all__ = ("Reconnect", "RemoteDatabase", "RemoteReadSession", "connect")

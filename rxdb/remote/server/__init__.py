"""Server mode (see :mod:`rxdb.remote.server.server`)."""

from rxdb.remote.server.server import Server, ServerHandle, serve

__all__ = ("Server", "ServerHandle", "serve")

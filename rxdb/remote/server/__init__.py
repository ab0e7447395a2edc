"""Server mode: :func:`serve` a database from this process to clients in others (modules:
:mod:`.server` listening and shutdown, :mod:`.session` one client connection,
:mod:`.operations` what each operation does, :mod:`.blocks` a client's transaction and read
blocks, :mod:`.subscriptions` its watches, :mod:`.limits` what one connection may hold,
:mod:`.served` what the server needs of the database).

Internal, except for the names :mod:`rxdb` exports: not covered by rxdb's versioning.
"""

from rxdb.remote.server.server import Server, serve

__all__ = ("Server", "serve")

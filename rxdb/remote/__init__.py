"""rxdb's cross-process machinery, in rooms that import downwards only:

- :mod:`.wire`: frames, values, typed messages and operations, one request/response and
  keepalive layer (the channel);
- :mod:`.runtime`: the owner-only directory of sockets and name entries;
- :mod:`.hub`: the bus's cross-process transport for SQLite files (below :mod:`rxdb.database`);
- :mod:`.client`: :class:`~rxdb.RemoteDatabase`, the contract over a connection;
- :mod:`.handle` and :mod:`.names`: a server's handle, and finding one by name;
- :mod:`.server`: serving a database; :mod:`.processes`: spawned servers and
  ``compute_with_database``.

Everything in this package is internal: it is importable so that rxdb's own processes can
talk to each other, but its names, signatures and wire format are not covered by rxdb's
versioning and may change in any release. Use the public API in :mod:`rxdb` instead.
"""

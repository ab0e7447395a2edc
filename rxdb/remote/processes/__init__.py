"""Worker processes: :func:`~rxdb.remote.processes.spawn.spawn` a server process that owns a
database, and :func:`~rxdb.remote.processes.compute.compute_with_database` (modules:
:mod:`.worker` both ends of the command line).

Internal, except for the names :mod:`rxdb` exports: not covered by rxdb's versioning.
"""

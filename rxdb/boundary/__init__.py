"""Boundaries: one database used from elsewhere in the process, through one door.

``bridge`` serves another event loop, ``blocking`` (with ``blocking_streams``) a thread
without a loop, on a ``loop_thread``; ``blocks`` lets a transaction or read block be owned by
a task on the database's loop on behalf of a caller elsewhere. Written against the contract
(:mod:`rxdb.api`) and :mod:`rxdb.boundary.origin` only: no boundary imports the façade.

Internal: the public names are re-exported by :mod:`rxdb`.
"""

__all__ = ()

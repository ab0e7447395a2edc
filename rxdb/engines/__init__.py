"""Engines: one room per database engine, each behind the seam in :mod:`rxdb.engines.seam`.

``sqlite/`` is the only engine today. An engine knows nothing of watches, Rx or the façade;
the façade picks one from the path (:func:`rxdb.database.engine_for`).

Internal: not covered by rxdb's versioning.
"""

__all__ = ()

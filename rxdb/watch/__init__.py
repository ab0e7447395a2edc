"""Watches: steps 5 and 6 of the main road (re-run, then emit).

``registry`` keeps one shared query per (SQL, parameters, distinct) of a database and
subscribes it to the bus with its read set; ``scheduler`` runs due re-runs in batches on the
engine's readers (at most one running and one pending per watch); ``stream`` is what
``db.watch()`` returns and compares each result with the last one emitted.

Internal: the public names are re-exported by :mod:`rxdb`. Knows nothing of any engine.
"""

__all__ = ()

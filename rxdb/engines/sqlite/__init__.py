"""SQLite on aiosqlite: write capture, the writer and readers, transactions, and the change
messages of every writer (:class:`SQLiteEngine`, the engine behind rxdb's seam).

Internal: not covered by rxdb's versioning. Knows nothing of Rx, watches or the façade.
"""

from __future__ import annotations

from rxdb._types import TransactionMode as TransactionMode
from rxdb.engines.sqlite.engine import Engine as Engine
from rxdb.engines.sqlite.engine import Synchronous as Synchronous
from rxdb.engines.sqlite.sqlite_engine import SQLiteEngine as SQLiteEngine

__all__ = ("Engine", "SQLiteEngine", "Synchronous", "TransactionMode")

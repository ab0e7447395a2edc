"""SQLite on aiosqlite: write capture, the writer and readers, transactions.

Internal: not covered by rxdb's versioning. Knows nothing of Rx or the bus.
"""

from __future__ import annotations

from rxdb._types import TransactionMode as TransactionMode
from rxdb.engines.sqlite.engine import Engine as Engine
from rxdb.engines.sqlite.engine import Synchronous as Synchronous

__all__ = ("Engine", "Synchronous", "TransactionMode")

"""Small types shared across rxdb's rooms, so that no room imports another for a name."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

__all__ = ("BackupProgress", "Params", "ProgressCallback", "TransactionMode")

Params: TypeAlias = Sequence[Any] | Mapping[str, Any]
"""Statement parameters: a sequence for ``?`` placeholders, a mapping for named ones."""

TransactionMode: TypeAlias = Literal["deferred", "immediate", "exclusive"]
"""When a transaction takes the write lock: at its first write, at once, or at once and
keeping readers out (SQLite's ``BEGIN DEFERRED/IMMEDIATE/EXCLUSIVE``)."""


@dataclass(frozen=True, slots=True)
class BackupProgress:
    """Where a backup stands after one step. Raise from the callback to abort the backup."""

    remaining: int
    total: int

    @property
    def completed(self) -> int:
        return self.total - self.remaining


ProgressCallback: TypeAlias = Callable[[BackupProgress], None]
"""Called after each backup step (on a worker thread); raising aborts the backup."""

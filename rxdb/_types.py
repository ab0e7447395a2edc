"""Type aliases shared across rxdb, so signatures stay short."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

Params: TypeAlias = Sequence[Any] | Mapping[str, Any]
"""Statement parameters: a sequence for ``?`` placeholders, a mapping for named ones."""

"""Which tables does an SQLite statement read? The parser layer under rxdb.

Layering: ``names`` (identifier folding), ``pragmas`` and ``errors`` are leaves; ``_text``
splits scripts and rewrites what sqlglot cannot parse; ``_reads`` walks sqlglot's scopes;
``analysis`` classifies statements, expands views and caches; ``catalog`` holds what a
connection's schemas contain and ``dependencies`` resolves a read set in it (views per schema,
virtual tables, sqlite_sequence, pragma functions). This package never imports ``rxdb``.

Its names are imported on first use (PEP 562): a program that only runs statements needs
``analysis`` (is it a query?), never the catalog and what resolves a watch's read set.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .names import fold_name as fold_name

if TYPE_CHECKING:
    from .analysis import Analysis as Analysis
    from .analysis import StatementKind as StatementKind
    from .analysis import analyze as analyze
    from .analysis import read_tables as read_tables
    from .catalog import Catalog as Catalog
    from .dependencies import dependencies as dependencies
    from .errors import ParserError as ParserError
    from .errors import Unanalyzable as Unanalyzable
    from .views import Views as Views

# Where each name lives, imported on first use.
_LAZY: dict[str, str] = {
    "Analysis": "analysis",
    "Catalog": "catalog",
    "ParserError": "errors",
    "StatementKind": "analysis",
    "Unanalyzable": "errors",
    "Views": "views",
    "analyze": "analysis",
    "dependencies": "dependencies",
    "read_tables": "analysis",
}

__all__ = (
    "Analysis",
    "Catalog",
    "ParserError",
    "StatementKind",
    "Unanalyzable",
    "Views",
    "analyze",
    "dependencies",
    "fold_name",
    "read_tables",
)


def _claim(value: Any) -> Any:
    """Tracebacks and reprs name the public path, not the private module."""
    value.__module__ = __name__
    return value


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'parser' has no attribute {name!r}")
    value = _claim(getattr(importlib.import_module(f".{module}", __name__), name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


_claim(fold_name)

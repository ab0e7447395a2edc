"""Which tables does an SQLite statement read? The parser layer under rxdb.

Layering: ``names`` (identifier folding) and ``errors`` are leaves; ``_text`` splits scripts and
rewrites what sqlglot cannot parse; ``_reads`` walks sqlglot's scopes; ``analysis`` classifies
statements, expands views and caches; ``catalog`` holds what a connection's schemas contain and
``dependencies`` resolves a read set in it (views per schema, virtual tables, sqlite_sequence,
pragma functions). This package never imports ``rxdb``.
"""

from __future__ import annotations

from .analysis import Analysis as Analysis
from .analysis import StatementKind as StatementKind
from .analysis import analyze as analyze
from .analysis import read_tables as read_tables
from .catalog import Catalog as Catalog
from .dependencies import dependencies as dependencies
from .errors import ParserError as ParserError
from .errors import Unanalyzable as Unanalyzable
from .names import fold_name as fold_name
from .views import Views as Views

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

# Tracebacks and reprs name the public path, not the private module.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name

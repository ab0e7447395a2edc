"""Which relations a PostgreSQL statement reads and writes: the parser for rxdb's PostgreSQL
engine, imported as its own package (``parser.postgres``).

Pure analysis of SQL text plus catalog facts handed in; it never talks to a server (the engine
runs :data:`CATALOG_QUERY` and builds a :class:`PgCatalog` from its row) and never imports rxdb.

Layering: ``names`` (identifier folding, the spelling of a relation) is the leaf; ``_lexer``
splits scripts and finds calls; ``_refs`` walks sqlglot's tree; ``analysis`` classifies and
caches; ``catalog`` holds what a session sees; ``dependencies`` resolves an analysis in it.

Relations come back as ``schema.name`` with both parts exactly as ``pg_class`` and
``pg_namespace`` store them (case kept, no quotes): ``public.orders``, ``Sales.Q1``,
``pg_temp_3.scratch``. A trigger announces the same spelling with
``TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME``.
"""

from __future__ import annotations

from .analysis import PgAnalysis as PgAnalysis
from .analysis import analyze as analyze
from .catalog import CATALOG_QUERY as CATALOG_QUERY
from .catalog import PgCatalog as PgCatalog
from .catalog import PgRelation as PgRelation
from .catalog import RelationKind as RelationKind
from .dependencies import dependencies as dependencies
from .dependencies import write_targets as write_targets
from .names import RelationName as RelationName
from .names import fold_identifier as fold_identifier
from .names import relation_key as relation_key

__all__ = (
    "CATALOG_QUERY",
    "PgAnalysis",
    "PgCatalog",
    "PgRelation",
    "RelationKind",
    "RelationName",
    "analyze",
    "dependencies",
    "fold_identifier",
    "relation_key",
    "write_targets",
)

# Tracebacks and reprs name the public path, not the private module.
for _name in __all__:
    _value = globals()[_name]
    if hasattr(_value, "__module__") and not isinstance(_value, str):
        _value.__module__ = __name__
del _name, _value

"""Pragmas whose value belongs to the database file, shared by the read side
(:mod:`parser.dependencies`) and rxdb's write capture, which needs nothing else of the parser."""

from __future__ import annotations

__all__ = ("SETTING_PRAGMAS",)

SETTING_PRAGMAS = frozenset({"application_id", "auto_vacuum", "page_size", "user_version"})
"""Pragmas whose ``PRAGMA name = value`` changes the database file for every connection; a
writer announces it as a change to the table ``pragma_<name>``, the name of the pragma's
table-valued function, so that a watch reading that function re-runs."""

"""The PostgreSQL engine: the engine seam on asyncpg, with triggers and LISTEN/NOTIFY as the
bus between processes and hosts.

Internal: not covered by rxdb's versioning.
"""

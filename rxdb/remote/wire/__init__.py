"""The wire: how rxdb processes talk.

Bottom to top: :mod:`.frames` (length-prefixed frames), :mod:`.checks` (what every decoder of
peer data checks), :mod:`.values` (SQL values, rows, results, table updates, backup progress),
:mod:`.updates` (the one encoding of a NotifyTablesUpdated), :mod:`.errors` (exceptions),
:mod:`.endpoint` (where a server listens), :mod:`.operations` (one typed class per operation
a client asks of a server), :mod:`.messages` (the messages and their encoding),
:mod:`.stream` (frames over an asyncio stream) and :mod:`.channel` (one conversation:
requests and their answers, keepalive). ``docs/protocol.md`` describes the bytes.

Internal: not covered by rxdb's versioning.
"""

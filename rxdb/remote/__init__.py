"""rxdb's cross-process machinery: the wire protocol, the bus hub, the database server.

Everything in this package is internal: it is importable so that rxdb's own processes can
talk to each other, but its names, signatures and wire format are not covered by rxdb's
versioning and may change in any release. Use the public API in :mod:`rxdb` instead.
"""

"""rxdb's benchmark suite: ``python -m benchmarks [--quick] [--json PATH] [--charts DIR]``.

Each module measures one group of figures against the baseline a user would otherwise reach
for (raw aiosqlite or asyncpg, polling), side by side in the same run:

``latency`` (#1, #1b, #2), ``fanout`` (#5 and the watcher sweep, #6, #7), ``overhead`` (#8,
#10), ``breakdown`` (the layers of one read and one write), ``parsing`` (#9), ``polling``
(#11, and the polling baseline of #4), ``processes`` (#3), ``scheduling`` (S1-S3),
``journal`` (J1-J4), ``big`` (B1-B3), ``postgres`` (P1-P5, on the machine's PostgreSQL),
``peer`` (rxdb vs litewriter, side by side), ``imports`` (``import rxdb`` vs its libraries).
``issue14`` judges issue #14's rows; ``repeat`` merges the runs of ``--repeat N``.
``_common`` holds sizes, statistics and the
instrumentation; ``machine`` the facts printed with every run; ``report`` prints and saves;
``charts`` plots. ``python -m benchmarks.profiles`` prints the profiles quoted in
docs/benchmarks.md.

Not part of rxdb's API: nothing here is covered by versioning.
"""

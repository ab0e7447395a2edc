"""``python -m rxdb``: see :mod:`rxdb.cli`."""

from __future__ import annotations

from rxdb.cli import main

raise SystemExit(main())

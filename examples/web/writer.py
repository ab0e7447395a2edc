"""Add orders to the board's file from another process, with plain sqlite3 (no rxdb).

rxdb notices commits of programs that know nothing about it (it watches the file's WAL
index), so these orders appear on every open page too.

Run it while app.py serves the same file::

    python examples/web/writer.py orders.db --count 5 --every 0.5
"""

from __future__ import annotations

import argparse
import sqlite3
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("db", help="the file app.py serves (it creates the table)")
    parser.add_argument("--count", type=int, default=1, help="how many orders")
    parser.add_argument("--every", type=float, default=0.0, help="seconds between them")
    parser.add_argument("--item", default="from sqlite3")
    arguments = parser.parse_args()
    connection = sqlite3.connect(arguments.db, timeout=5.0)
    try:
        for number in range(arguments.count):
            if number:
                time.sleep(arguments.every)  # the pace of the demo, not a wait for anything
            with connection:  # one transaction, committed at the end of the block
                cursor = connection.execute(
                    "INSERT INTO orders (item, qty, price, source, created) "
                    "VALUES (?, 1, 1.0, 'sqlite3', ?)",
                    (arguments.item, time.time()),
                )
            print(f"added order {cursor.lastrowid}", flush=True)
    except sqlite3.OperationalError as error:
        raise SystemExit(
            f"{error} (start app.py on {arguments.db} first: it creates the table)"
        ) from None
    finally:
        connection.close()


if __name__ == "__main__":
    main()

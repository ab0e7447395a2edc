"""A live count: one task writes, the main task watches with ``async for``.

Run it: ``python examples/live_counter.py`` (ends by itself in about a second).
"""

from __future__ import annotations

import asyncio

import rxdb

CLICKS = 5


async def click(db: rxdb.Database) -> None:
    for button in ["red", "blue", "red", "green", "red"][:CLICKS]:
        await asyncio.sleep(0.2)
        await db.execute("INSERT INTO clicks (button) VALUES (?)", (button,))


async def main() -> None:
    async with rxdb.open(":memory:") as db:
        await db.execute("CREATE TABLE clicks (id INTEGER PRIMARY KEY, button TEXT NOT NULL)")
        clicker = asyncio.create_task(click(db))

        query = "SELECT button, count(*) AS n FROM clicks GROUP BY button ORDER BY n DESC, button"
        async for rows in db.watch(query):
            # The first result is the current one (no clicks yet); then one per change.
            print("clicks:", ", ".join(f"{row['button']}={row['n']}" for row in rows) or "none")
            if sum(row["n"] for row in rows) == CLICKS:
                break  # leaving the loop unsubscribes

        await clicker


if __name__ == "__main__":
    asyncio.run(main())

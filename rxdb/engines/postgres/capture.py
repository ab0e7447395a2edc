"""Write capture on PostgreSQL: every writer's commits, rxdb or not, announced on one channel.

A statement-level ``AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE`` trigger named
``rxdb_capture`` on every ordinary and partitioned table of every user schema calls
``pg_notify(channel, payload)``. PostgreSQL delivers notifications only after commit, in
commit order, to every listening connection of the database, drops them on rollback, and
folds identical payloads of one transaction into one: so each commit reaches every process
(:mod:`rxdb.engines.postgres.listener`) as one notification per table and kind it wrote,
whoever wrote it (``psql``, cron jobs, other ORMs, triggers, FK cascades, ``COPY``).

The payload is a JSON array, ``["rxdb/1", OP, SCHEMA, TABLE, ORIGIN]``:

- ``OP`` is the trigger's ``TG_OP`` (``INSERT``, ``UPDATE``, ``DELETE``, ``TRUNCATE``;
  a truncate is a delete), ``REFRESH`` for ``REFRESH MATERIALIZED VIEW`` (an update of the
  view), or ``DDL`` for any other schema change (then SCHEMA and TABLE are ``null``: anything
  may have changed, and read sets must be resolved again);
- ``SCHEMA`` and ``TABLE`` are the names as stored in ``pg_class``, unquoted; rxdb spells
  the table ``schema.table`` (:func:`decode_payload`);
- ``ORIGIN`` is the writing session's ``current_setting('rxdb.origin', true)``: an rxdb
  engine sets it (``set_config('rxdb.origin', origin, false)``) so it can tell its own
  commits; ``null`` for every other writer (and for an origin longer than
  :data:`MAX_ORIGIN`, which keeps the payload far below PostgreSQL's 8000-byte limit).

A table that inherits (a partition, or a child of classic inheritance) notifies its own name
and every ancestor's, since a query of the parent reads it; a statement aimed at a parent
notifies the parent only (PostgreSQL fires only the target's statement triggers), so a read
of a child depends on its ancestors too.

What it takes (see :func:`install_capture`): CREATE on the database (for the schema
``rxdb_capture``, which belongs to rxdb), and ownership of (or the TRIGGER privilege on) each
table; a table rxdb may not instrument is returned in :attr:`Installed.skipped`. Keeping in
step with the schema takes an event trigger (``ddl_command_end``), which only a superuser
may create; it adds triggers to new tables in the transaction that creates them and
notifies ``DDL`` for every schema change. Without it (:attr:`Installed.event_trigger` is
``False``): rxdb installs again at open and after its own DDL, and notices other writers'
DDL only through the listener's periodic check (:data:`CHECK_SQL`: a table created by
someone else is instrumented, and every watch re-run, within one check interval).

Nobody's notification is trusted: anyone who may connect may ``NOTIFY`` any channel. A
payload that is not exactly this shape decodes to ``None``, which the listener turns into
"anything may have changed" -- never into a missed change.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass

import asyncpg

from rxdb.updates import TableUpdate, UpdateKind

__all__ = (
    "CHECK_SQL",
    "MAX_ORIGIN",
    "PAYLOAD_VERSION",
    "SCHEMA",
    "Installed",
    "capture_installed",
    "channel_for",
    "decode_payload",
    "ensure_triggers",
    "install_capture",
    "uninstall_capture",
)

LOG = logging.getLogger("rxdb.engines.postgres.capture")

SCHEMA = "rxdb_capture"
PAYLOAD_VERSION = "rxdb/1"
MAX_ORIGIN = 200
_MAX_PAYLOAD = 8000  # PostgreSQL's own limit: nothing longer can be a real notification
_EVENT_TRIGGER = "rxdb_capture_ddl"
# Serialises installs of concurrent processes (CREATE OR REPLACE FUNCTION racing itself
# fails with "tuple concurrently updated"). Any constant: it only has to be rxdb's.
_INSTALL_LOCK = 0x7278_6462_6361_7074
# Bump with any change to the SQL below: an install finding another marker replaces it all.
_MARKER = f"rxdb change capture, payload {PAYLOAD_VERSION}, functions v1, channel "

_KINDS = {
    "INSERT": UpdateKind.INSERT,
    "UPDATE": UpdateKind.UPDATE,
    "DELETE": UpdateKind.DELETE,
    "TRUNCATE": UpdateKind.DELETE,
    "REFRESH": UpdateKind.UPDATE,
}
_CHANNEL = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def channel_for(database_name: str) -> str:
    """The notification channel of one database: ``rxdb_`` and a digest of the name.

    PostgreSQL already keeps each database's notifications apart; one name per database
    still keeps a listener that reaches another database (through a proxy, after a
    rename) from taking its notifications for this one's. A plain identifier, so it needs
    no quoting in ``LISTEN``.
    """
    digest = hashlib.blake2b(database_name.encode(), digest_size=8).hexdigest()
    return f"rxdb_{digest}"


@dataclass(frozen=True, slots=True)
class Installed:
    """What :func:`install_capture` achieved.

    :ivar event_trigger: whether the event trigger keeps capture in step with other
        writers' DDL (else rxdb falls back on installs at open and after its own DDL, and
        on the listener's schema check).
    :ivar skipped: tables (``schema.table``) rxdb may not put a trigger on: their writes
        are not seen.
    """

    event_trigger: bool
    skipped: tuple[str, ...]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _functions(channel: str) -> str:
    channel_literal = _literal(channel)
    version = _literal(PAYLOAD_VERSION)
    origin = f"""
    origin text := NULLIF(pg_catalog.current_setting('rxdb.origin', true), '');
  BEGIN
    IF pg_catalog.length(origin) > {MAX_ORIGIN} THEN
      origin := NULL;
    END IF;"""
    return f"""
CREATE OR REPLACE FUNCTION {SCHEMA}.notify_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
  DECLARE{origin}
    PERFORM pg_catalog.pg_notify({channel_literal}, pg_catalog.json_build_array(
      {version}, TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, origin)::text);
    RETURN NULL;
  END
$fn$;

CREATE OR REPLACE FUNCTION {SCHEMA}.notify_change_tree() RETURNS trigger
LANGUAGE plpgsql AS $fn$
  DECLARE
    relation record;{origin}
    FOR relation IN
      WITH RECURSIVE up(oid) AS (
        SELECT TG_RELID
        UNION
        SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.oid)
      SELECT n.nspname, c.relname
      FROM up
      JOIN pg_catalog.pg_class c ON c.oid = up.oid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    LOOP
      PERFORM pg_catalog.pg_notify({channel_literal}, pg_catalog.json_build_array(
        {version}, TG_OP, relation.nspname, relation.relname, origin)::text);
    END LOOP;
    RETURN NULL;
  END
$fn$;

-- Puts the trigger on every user table that lacks it (or has the wrong function, after an
-- ATTACH PARTITION or INHERIT), makes it fire for replication-role sessions too (ALWAYS),
-- and returns the tables it may not instrument.
CREATE OR REPLACE FUNCTION {SCHEMA}.ensure_triggers() RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
  DECLARE
    t record;
    skipped text[] := '{{}}';
  BEGIN
    FOR t IN
      SELECT n.nspname, c.relname, tg.tgfoid, tg.tgenabled,
             CASE WHEN EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = c.oid)
                  THEN '{SCHEMA}.notify_change_tree()'::regprocedure
                  ELSE '{SCHEMA}.notify_change()'::regprocedure END AS wanted
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_trigger tg ON tg.tgrelid = c.oid AND tg.tgname = 'rxdb_capture'
      WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
        AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT IN ('information_schema', '{SCHEMA}')
    LOOP
      CONTINUE WHEN t.tgfoid = t.wanted AND t.tgenabled = 'A';
      BEGIN
        IF t.tgfoid IS DISTINCT FROM t.wanted THEN
          IF t.tgfoid IS NOT NULL THEN
            EXECUTE format('DROP TRIGGER rxdb_capture ON %I.%I', t.nspname, t.relname);
          END IF;
          EXECUTE format(
            'CREATE TRIGGER rxdb_capture AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE'
            ' ON %I.%I FOR EACH STATEMENT EXECUTE FUNCTION %s', t.nspname, t.relname, t.wanted);
        END IF;
        BEGIN
          EXECUTE format('ALTER TABLE %I.%I ENABLE ALWAYS TRIGGER rxdb_capture',
                         t.nspname, t.relname);
        EXCEPTION WHEN insufficient_privilege THEN
          NULL;  -- TRIGGER privilege without ownership: fires for ordinary sessions only
        END;
      EXCEPTION
        WHEN insufficient_privilege THEN
          skipped := skipped || format('%s.%s', t.nspname, t.relname);
        WHEN duplicate_object THEN
          NULL;  -- a concurrent transaction put it there first
      END;
    END LOOP;
    RETURN skipped;
  END
$fn$;

CREATE OR REPLACE FUNCTION {SCHEMA}.on_ddl() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
  DECLARE
    command record;{origin}
    -- The DDL this function runs (CREATE TRIGGER) fires it again: the guard stops that.
    IF current_setting('rxdb.capture_installing', true) = 'on' THEN
      RETURN;
    END IF;
    IF TG_TAG = 'REFRESH MATERIALIZED VIEW' THEN
      FOR command IN
        SELECT n.nspname, c.relname
        FROM pg_event_trigger_ddl_commands() d
        JOIN pg_class c ON c.oid = d.objid
        JOIN pg_namespace n ON n.oid = c.relnamespace
      LOOP
        PERFORM pg_notify({channel_literal}, json_build_array(
          {version}, 'REFRESH', command.nspname, command.relname, origin)::text);
      END LOOP;
      RETURN;
    END IF;
    -- Never fail someone's DDL: a table left without a trigger is the lesser harm (and
    -- rxdb's next install, at open, tries again).
    BEGIN
      PERFORM set_config('rxdb.capture_installing', 'on', true);
      PERFORM {SCHEMA}.ensure_triggers();
    EXCEPTION WHEN OTHERS THEN
      RAISE WARNING 'rxdb capture could not instrument new tables: %', SQLERRM;
    END;
    PERFORM set_config('rxdb.capture_installing', '', true);
    PERFORM pg_notify({channel_literal}, json_build_array(
      {version}, 'DDL', NULL::text, NULL::text, origin)::text);
  END
$fn$;

GRANT USAGE ON SCHEMA {SCHEMA} TO PUBLIC;
COMMENT ON SCHEMA {SCHEMA} IS {_literal(_MARKER + channel)};
"""


async def install_capture(conn: asyncpg.Connection, channel: str) -> Installed:
    """Install (or bring up to date) capture for ``channel`` in ``conn``'s database.

    Idempotent and cheap once installed: it then only checks the catalog (no DDL, no
    locks) unless a table lacks its trigger. Concurrent installs from several processes
    wait for each other. Runs in a transaction of its own (``conn`` must not be in one),
    and notifies nobody: triggers change neither rows nor read sets.

    :raises asyncpg.InsufficientPrivilegeError: if the role may not create the schema or
        its functions (the engine then falls back on announce mode:
        :mod:`~rxdb.engines.postgres.changes`).
    :raises ValueError: if ``channel`` is not a name :func:`channel_for` could make.
    """
    _check_channel(channel)
    async with conn.transaction():
        await _lock_and_guard(conn)
        if not await capture_installed(conn, channel):
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            await conn.execute(_functions(channel))
        event_trigger = await _ensure_event_trigger(conn)
        skipped: list[str] = await conn.fetchval(f"SELECT {SCHEMA}.ensure_triggers()")
    if skipped:
        LOG.warning(
            "rxdb may not put its capture trigger on %s: their writes are not seen", skipped
        )
    return Installed(event_trigger, tuple(skipped))


async def _ensure_event_trigger(conn: asyncpg.Connection) -> bool:
    if await conn.fetchval(
        "SELECT EXISTS (SELECT FROM pg_event_trigger WHERE evtname = $1)", _EVENT_TRIGGER
    ):
        return True
    try:
        async with conn.transaction():
            await conn.execute(
                f"CREATE EVENT TRIGGER {_EVENT_TRIGGER} ON ddl_command_end"
                f" EXECUTE FUNCTION {SCHEMA}.on_ddl()"
            )
    except asyncpg.InsufficientPrivilegeError:
        return False
    return True


async def capture_installed(conn: asyncpg.Connection, channel: str) -> bool:
    """Whether capture for ``channel`` is installed in ``conn``'s database (by anyone)."""
    marker = await conn.fetchval(
        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1",
        SCHEMA,
    )
    return bool(marker == _MARKER + channel)


async def uninstall_capture(conn: asyncpg.Connection) -> None:
    """Remove capture from ``conn``'s database: the event trigger, then the schema
    ``rxdb_capture`` with its functions and, with them, every table's trigger. Idempotent.

    :raises asyncpg.InsufficientPrivilegeError: if the role owns neither (the event
        trigger needs a superuser).
    """
    async with conn.transaction():
        await _lock_and_guard(conn)
        await conn.execute(f"DROP EVENT TRIGGER IF EXISTS {_EVENT_TRIGGER}")
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


# The listener's periodic check (one round trip every few seconds per process). NULL where
# the event trigger keeps capture in step, and then it costs one catalog probe; else a
# fingerprint of the user relations' and rules' catalog rows, whose change is someone's DDL
# (VACUUM and ANALYZE update those rows in place: they leave it alone).
CHECK_SQL = f"""
WITH relations AS (
  SELECT c.oid, c.xmin FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
    AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
), rows AS (
  SELECT 'c' || oid::text || '/' || xmin::text AS r FROM relations
  UNION ALL
  SELECT 'r' || oid::text || '/' || xmin::text FROM pg_catalog.pg_rewrite WHERE oid >= 16384
  UNION ALL
  SELECT 'i' || inhrelid::text || '/' || inhseqno::text || '/' || xmin::text
  FROM pg_catalog.pg_inherits
)
SELECT CASE
  WHEN EXISTS (SELECT FROM pg_catalog.pg_event_trigger
               WHERE evtname = '{_EVENT_TRIGGER}' AND evtenabled <> 'D') THEN NULL
  ELSE (SELECT coalesce(pg_catalog.md5(pg_catalog.string_agg(r, ',' ORDER BY r)), '') FROM rows)
END
"""


async def ensure_triggers(conn: asyncpg.Connection) -> bool:
    """Put capture triggers on the tables that lack them (after someone else's DDL, where
    no event trigger does it); ``False`` if capture is not installed in the database."""
    if not await conn.fetchval(f"SELECT to_regprocedure('{SCHEMA}.ensure_triggers()') IS NOT NULL"):
        return False
    await conn.execute(f"SELECT {SCHEMA}.ensure_triggers()")
    return True


async def _lock_and_guard(conn: asyncpg.Connection) -> None:
    # The guard keeps the event trigger quiet about rxdb's own DDL (until commit).
    await conn.execute("SELECT set_config('rxdb.capture_installing', 'on', true)")
    await conn.execute(f"SELECT pg_advisory_xact_lock({_INSTALL_LOCK})")


def _check_channel(channel: str) -> None:
    if not _CHANNEL.fullmatch(channel):
        raise ValueError(f"not a capture channel name: {channel!r} (use channel_for())")


_warned_malformed = False


def decode_payload(text: str) -> tuple[frozenset[TableUpdate], str | None, bool] | None:
    """Read one notification: ``(updates, origin, everything)``, or ``None`` if ``text``
    is not a payload of this version (the first such is logged; the caller must treat it
    as "anything may have changed").

    ``everything`` is ``True`` for a schema change, with no updates.
    """
    try:
        if len(text) > _MAX_PAYLOAD:
            raise ValueError("longer than any notification")
        value = json.loads(text)
        if not (isinstance(value, list) and len(value) == 5):
            raise ValueError("not a list of five")
        version, op, schema, table, origin = value
        if version != PAYLOAD_VERSION or not (origin is None or isinstance(origin, str)):
            raise ValueError("unknown version or origin")
        if op == "DDL" and schema is None and table is None:
            return frozenset(), origin or None, True
        kind = _KINDS[op]
        if not (isinstance(schema, str) and isinstance(table, str) and schema and table):
            raise ValueError("no table")
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        _malformed(text, exc)
        return None
    return frozenset({TableUpdate(f"{schema}.{table}", kind)}), origin or None, False


def _malformed(text: str, exc: BaseException) -> None:
    global _warned_malformed
    level = logging.DEBUG if _warned_malformed else logging.WARNING
    _warned_malformed = True
    LOG.log(level, "not an rxdb capture notification (%s): %.200r", exc, text)

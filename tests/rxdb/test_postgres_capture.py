"""Write capture on PostgreSQL (rxdb/engines/postgres/capture.py): the triggers, the event
trigger, the payload and its decoding, against the machine's server.

Every commit is followed by a marker notification from the writer: PostgreSQL delivers
notifications in commit order, so once the marker arrives, everything the commit notified
has arrived too (no waiting for a silence).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from rxdb.engines.postgres import capture
from rxdb.engines.postgres.capture import (
    CHECK_SQL,
    Installed,
    channel_for,
    decode_payload,
    install_capture,
    uninstall_capture,
)
from rxdb.updates import TableUpdate, UpdateKind
from tests.rxdb.postgres_worker import SERVER, scratch_database

WAIT = 10.0
INS, UPD, DEL = UpdateKind.INSERT, UpdateKind.UPDATE, UpdateKind.DELETE
SCHEMA = """
CREATE TABLE parent (id int PRIMARY KEY, name text);
CREATE TABLE child (id int PRIMARY KEY, parent int REFERENCES parent ON DELETE CASCADE);
CREATE TABLE audit (what text);
CREATE FUNCTION audit_parent() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN INSERT INTO audit VALUES (TG_OP); RETURN NULL; END $$;
CREATE TRIGGER audit_parent AFTER UPDATE ON parent FOR EACH ROW EXECUTE FUNCTION audit_parent();
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed.Case" (x int);
CREATE TABLE measures (at int, v int) PARTITION BY RANGE (at);
CREATE TABLE measures_1 PARTITION OF measures FOR VALUES FROM (0) TO (100);
"""

Seen = tuple[str | None, UpdateKind | None, str | None, bool]


class Capture:
    """A writer (a plain connection, like psql's) and a raw LISTEN connection."""

    def __init__(self, writer: asyncpg.Connection, listener: asyncpg.Connection, channel: str):
        self.writer = writer
        self.listener = listener
        self.channel = channel
        self.payloads: asyncio.Queue[str] = asyncio.Queue()
        self._markers = itertools.count()

    @classmethod
    async def open(cls, dsn: str, channel: str) -> Capture:
        writer = await asyncpg.connect(dsn)
        listener = await asyncpg.connect(dsn)
        self = cls(writer, listener, channel)
        await listener.add_listener(channel, lambda *args: self.payloads.put_nowait(args[3]))
        return self

    async def close(self) -> None:
        await self.writer.close()
        await self.listener.close()

    async def commit(self, sql: str, writer: asyncpg.Connection | None = None) -> list[str]:
        """Run ``sql`` (one transaction) and return what it notified, in order."""
        await (writer or self.writer).execute(sql)
        return await self.notified()

    async def notified(self) -> list[str]:
        """What was notified since the last call (up to a marker sent now)."""
        marker = f"marker {next(self._markers)}"
        await self.writer.execute("SELECT pg_notify($1, $2)", self.channel, marker)
        seen = []
        while (payload := await asyncio.wait_for(self.payloads.get(), WAIT)) != marker:
            seen.append(payload)
        return seen

    async def seen(self, sql: str, writer: asyncpg.Connection | None = None) -> list[Seen]:
        """What ``sql`` notified, decoded: (table, kind, origin, everything) in order."""
        out: list[Seen] = []
        for payload in await self.commit(sql, writer):
            decoded = decode_payload(payload)
            assert decoded is not None, payload
            updates, origin, everything = decoded
            out.extend((u.table, u.kind, origin, everything) for u in updates)
            if not updates:
                out.append((None, None, origin, everything))
        return out


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with scratch_database() as name:
        yield name


@pytest.fixture
async def captured(database: str) -> AsyncIterator[Capture]:
    """The scratch database with SCHEMA, capture installed (by a superuser), listened to."""
    dsn = f"{SERVER}/{database}"
    channel = channel_for(database)
    setup = await asyncpg.connect(dsn)
    try:
        await setup.execute(SCHEMA)
        assert await install_capture(setup, channel) == Installed(True, ())
    finally:
        await setup.close()
    capturing = await Capture.open(dsn, channel)
    yield capturing
    await capturing.close()


def row(table: str, kind: UpdateKind, origin: str | None = None) -> Seen:
    return (table, kind, origin, False)


SCHEMA_CHANGE: Seen = (None, None, None, True)


class TestChannel:
    def test_channel_for_is_a_plain_identifier_per_database(self) -> None:
        names = ["app", "App", "a" * 200, 'we"ird db', "ünïcode"]
        channels = [channel_for(name) for name in names]
        assert len(set(channels)) == len(names)
        for channel in channels:
            assert channel.isidentifier()
            assert channel == channel.lower()
            assert len(channel.encode()) <= 63
        assert channel_for("app") == channel_for("app")

    async def test_install_capture_refuses_a_channel_it_did_not_make(self) -> None:
        with pytest.raises(ValueError, match="channel_for"):
            await install_capture(None, "rxdb; DROP TABLE x")  # checked before any query


class TestDecodePayload:
    def test_decode_payload_reads_a_row_change(self) -> None:
        text = '["rxdb/1", "INSERT", "public", "items", "engine-1"]'
        assert decode_payload(text) == (
            frozenset({TableUpdate("public.items", INS)}),
            "engine-1",
            False,
        )

    @pytest.mark.parametrize(
        ("op", "kind"), [("UPDATE", UPD), ("DELETE", DEL), ("TRUNCATE", DEL), ("REFRESH", UPD)]
    )
    def test_decode_payload_maps_every_kind(self, op: str, kind: UpdateKind) -> None:
        decoded = decode_payload(json.dumps(["rxdb/1", op, "s", "t", None]))
        assert decoded == (frozenset({TableUpdate("s.t", kind)}), None, False)

    def test_decode_payload_reads_a_schema_change_as_everything(self) -> None:
        assert decode_payload('["rxdb/1", "DDL", null, null, null]') == (frozenset(), None, True)

    def test_decode_payload_keeps_odd_names_as_stored(self) -> None:
        decoded = decode_payload(json.dumps(["rxdb/1", "INSERT", "Odd Schema", 'a".b', ""]))
        assert decoded == (frozenset({TableUpdate('Odd Schema.a".b', INS)}), None, False)

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "null",
            "{}",
            '"abcde"',
            "[1, 2, 3, 4, 5]",
            '["rxdb/2", "INSERT", "s", "t", null]',
            '["rxdb/1", "MERGE", "s", "t", null]',
            '["rxdb/1", "INSERT", "s", null, null]',
            '["rxdb/1", "INSERT", "", "t", null]',
            '["rxdb/1", "INSERT", "s", 7, null]',
            '["rxdb/1", "INSERT", "s", "t", 7]',
            '["rxdb/1", "INSERT", "s", "t", null, "extra"]',
            '["rxdb/1", "DDL", "s", null, null]',
            '["rxdb/1", "INSERT", "s", "t", null',
            "[" * 5000 + "]" * 5000,
            json.dumps(["rxdb/1", "INSERT", "s", "t" * 9000, None]),
            "marker 1",
        ],
    )
    def test_decode_payload_rejects_malformed_text(self, text: str) -> None:
        assert decode_payload(text) is None

    def test_decode_payload_logs_the_first_malformed_payload_only(
        self, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(capture, "_warned_malformed", False)
        with caplog.at_level(logging.WARNING, logger=capture.LOG.name):
            assert decode_payload("first") is None
            assert decode_payload("second") is None
        assert [r.getMessage() for r in caplog.records if "first" in r.getMessage()]
        assert not [r for r in caplog.records if "second" in r.getMessage()]


@pytest.mark.postgres
class TestTriggers:
    async def test_triggers_notify_a_writer_without_rxdb_for_every_kind(
        self, captured: Capture
    ) -> None:
        assert await captured.seen("INSERT INTO parent VALUES (1, 'a')") == [
            row("public.parent", INS)
        ]
        assert set(await captured.seen("UPDATE parent SET name = 'b'")) == {
            row("public.parent", UPD),
            row("public.audit", INS),  # written by a row trigger of parent
        }
        assert await captured.seen("DELETE FROM audit") == [row("public.audit", DEL)]
        assert await captured.seen("TRUNCATE audit") == [row("public.audit", DEL)]

    async def test_triggers_notify_what_a_cascade_reaches(self, captured: Capture) -> None:
        await captured.commit("INSERT INTO parent VALUES (1, 'a'); INSERT INTO child VALUES (1, 1)")
        assert set(await captured.seen("DELETE FROM parent")) == {
            row("public.parent", DEL),
            row("public.child", DEL),
        }

    async def test_triggers_notify_once_per_table_and_kind_per_transaction(
        self, captured: Capture
    ) -> None:
        notified = await captured.commit(
            "BEGIN;"
            " INSERT INTO audit VALUES ('a'); INSERT INTO audit VALUES ('b');"
            " INSERT INTO audit VALUES ('c'); DELETE FROM audit WHERE what = 'c';"
            " DELETE FROM audit WHERE what = 'b';"
            " COMMIT"
        )
        assert [decode_payload(p) for p in notified] == [
            (frozenset({TableUpdate("public.audit", INS)}), None, False),
            (frozenset({TableUpdate("public.audit", DEL)}), None, False),
        ]

    async def test_triggers_notify_nothing_for_a_rollback(self, captured: Capture) -> None:
        assert await captured.commit("BEGIN; INSERT INTO parent VALUES (1, 'a'); ROLLBACK") == []
        assert await captured.commit(
            "BEGIN; INSERT INTO parent VALUES (1, 'a'); SAVEPOINT s;"
            " INSERT INTO audit VALUES ('x'); ROLLBACK TO s; COMMIT"
        ) == [json.dumps(["rxdb/1", "INSERT", "public", "parent", None])]

    async def test_triggers_carry_the_writers_origin(self, captured: Capture) -> None:
        await captured.writer.execute("SELECT set_config('rxdb.origin', 'engine-7', false)")
        assert await captured.seen("INSERT INTO audit VALUES ('x')") == [
            row("public.audit", INS, "engine-7")
        ]
        await captured.writer.execute("SELECT set_config('rxdb.origin', $1, false)", "x" * 201)
        assert await captured.seen("INSERT INTO audit VALUES ('x')") == [row("public.audit", INS)]
        await captured.writer.execute("RESET rxdb.origin")
        assert await captured.seen("INSERT INTO audit VALUES ('x')") == [row("public.audit", INS)]

    async def test_triggers_name_tables_as_stored(self, captured: Capture) -> None:
        assert await captured.seen('INSERT INTO "Odd Schema"."Mixed.Case" VALUES (1)') == [
            row("Odd Schema.Mixed.Case", INS)
        ]

    async def test_triggers_of_a_partition_notify_its_ancestors(self, captured: Capture) -> None:
        assert set(await captured.seen("INSERT INTO measures_1 VALUES (1, 1)")) == {
            row("public.measures_1", INS),
            row("public.measures", INS),
        }
        assert await captured.seen("INSERT INTO measures VALUES (2, 2)") == [
            row("public.measures", INS)
        ]

    async def test_triggers_fire_for_replication_role_sessions(self, captured: Capture) -> None:
        # pg_restore --disable-triggers aside, a replica-role writer (logical replication's
        # apply, some bulk loaders) skips ordinary triggers; capture's fire ALWAYS.
        await captured.writer.execute("SET session_replication_role = replica")
        assert await captured.seen("INSERT INTO audit VALUES ('x')") == [row("public.audit", INS)]

    async def test_refresh_of_a_materialized_view_notifies_it(self, captured: Capture) -> None:
        await captured.commit("CREATE MATERIALIZED VIEW names AS SELECT name FROM parent")
        assert await captured.seen("REFRESH MATERIALIZED VIEW names") == [row("public.names", UPD)]


@pytest.mark.postgres
class TestSchemaChanges:
    async def test_a_new_table_gets_a_trigger_in_the_transaction_that_creates_it(
        self, captured: Capture
    ) -> None:
        assert await captured.seen(
            "BEGIN; CREATE TABLE fresh (x int); CREATE TABLE fresher (x int);"
            " INSERT INTO fresher VALUES (1); COMMIT"
        ) == [SCHEMA_CHANGE, row("public.fresher", INS)]
        assert await captured.seen("INSERT INTO fresh VALUES (1)") == [row("public.fresh", INS)]

    async def test_renames_and_drops_notify_a_schema_change(self, captured: Capture) -> None:
        assert await captured.seen("ALTER TABLE audit RENAME TO journal") == [SCHEMA_CHANGE]
        assert await captured.seen("INSERT INTO journal VALUES ('x')") == [
            row("public.journal", INS)
        ]
        assert await captured.seen("DROP TABLE journal") == [SCHEMA_CHANGE]
        assert await captured.seen("CREATE VIEW names AS SELECT name FROM parent") == [
            SCHEMA_CHANGE
        ]

    async def test_a_partition_attached_later_notifies_its_parent(self, captured: Capture) -> None:
        await captured.commit("CREATE TABLE measures_2 (at int, v int)")
        assert await captured.seen("INSERT INTO measures_2 VALUES (100, 1)") == [
            row("public.measures_2", INS)
        ]
        await captured.commit(
            "ALTER TABLE measures ATTACH PARTITION measures_2 FOR VALUES FROM (100) TO (200)"
        )
        assert set(await captured.seen("INSERT INTO measures_2 VALUES (101, 1)")) == {
            row("public.measures_2", INS),
            row("public.measures", INS),
        }

    async def test_install_capture_again_changes_nothing(self, captured: Capture) -> None:
        triggers = (
            "SELECT tgrelid, tgfoid, xmin::text FROM pg_trigger WHERE tgname = 'rxdb_capture'"
        )
        before = await captured.writer.fetch(triggers)
        result = await install_capture(captured.writer, captured.channel)
        assert result == Installed(True, ())
        assert await captured.writer.fetch(triggers) == before
        assert await captured.notified() == []  # and told nobody anything

    async def test_uninstall_capture_removes_every_trigger(self, captured: Capture) -> None:
        await uninstall_capture(captured.writer)
        await uninstall_capture(captured.writer)
        assert (
            await captured.writer.fetchval(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'rxdb_capture'"
            )
            == 0
        )
        assert await captured.commit("INSERT INTO audit VALUES ('x'); CREATE TABLE t (x int)") == []
        assert not await capture.capture_installed(captured.writer, captured.channel)


@pytest.mark.postgres
class TestWithoutSuperuser:
    """A role that owns its database but is no superuser: no event trigger."""

    @pytest.fixture
    async def role(self, database: str) -> AsyncIterator[str]:
        name = f"rxdb_test_role_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(f"{SERVER}/{database}")
        try:
            await admin.execute(f"CREATE ROLE {name} LOGIN")
            await admin.execute(f"ALTER DATABASE {database} OWNER TO {name}")
            await admin.execute(f"ALTER SCHEMA public OWNER TO {name}")
            yield name
        finally:
            await admin.execute(
                f"REASSIGN OWNED BY {name} TO postgres; DROP OWNED BY {name}; DROP ROLE {name}"
            )
            await admin.close()

    async def test_install_capture_without_the_event_trigger_skips_foreign_tables(
        self, database: str, role: str
    ) -> None:
        admin = await asyncpg.connect(f"{SERVER}/{database}")
        conn = await asyncpg.connect(f"postgresql://{role}@127.0.0.1:5432/{database}")
        try:
            await admin.execute("CREATE TABLE theirs (x int)")
            await conn.execute("CREATE TABLE ours (x int)")
            result = await install_capture(conn, channel_for(database))
            assert result == Installed(False, ("public.theirs",))
            tables = await conn.fetch(
                "SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname = 'rxdb_capture'"
            )
            assert [r[0] for r in tables] == ["ours"]
        finally:
            await conn.close()
            await admin.close()

    async def test_any_writer_may_fire_the_capture_trigger(self, database: str, role: str) -> None:
        dsn = f"{SERVER}/{database}"
        channel = channel_for(database)
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f"CREATE TABLE shared (x int); GRANT INSERT ON shared TO {role}")
            await install_capture(admin, channel)
            await admin.execute(f"REVOKE ALL ON SCHEMA {capture.SCHEMA} FROM PUBLIC")
        finally:
            await admin.close()
        capturing = await Capture.open(dsn, channel)
        writer = await asyncpg.connect(f"postgresql://{role}@127.0.0.1:5432/{database}")
        try:
            assert await capturing.seen("INSERT INTO shared VALUES (1)", writer) == [
                row("public.shared", INS)
            ]
        finally:
            await writer.close()
            await capturing.close()

    async def test_the_event_trigger_serves_other_roles_ddl(self, database: str, role: str) -> None:
        # The event trigger runs as whoever runs the DDL: rxdb must never break it.
        dsn = f"{SERVER}/{database}"
        channel = channel_for(database)
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute("CREATE TABLE theirs (x int)")
            assert (await install_capture(admin, channel)).event_trigger
            # A table the role may not instrument: its DDL's pass over the tables skips it.
            await admin.execute("DROP TRIGGER rxdb_capture ON theirs")
        finally:
            await admin.close()
        capturing = await Capture.open(dsn, channel)
        writer = await asyncpg.connect(f"postgresql://{role}@127.0.0.1:5432/{database}")
        try:
            assert await capturing.seen("CREATE TABLE mine (x int)", writer) == [SCHEMA_CHANGE]
            assert await capturing.seen("INSERT INTO mine VALUES (1)", writer) == [
                row("public.mine", INS)
            ]
            # Even where the role may not reach capture's functions, its DDL goes through.
            await capturing.commit(f"REVOKE ALL ON SCHEMA {capture.SCHEMA} FROM PUBLIC")
            assert await capturing.seen("CREATE TABLE later (x int)", writer) == [SCHEMA_CHANGE]
        finally:
            await writer.close()
            await capturing.close()

    async def test_check_sql_fingerprints_the_schema_without_the_event_trigger(
        self, database: str, role: str
    ) -> None:
        conn = await asyncpg.connect(f"postgresql://{role}@127.0.0.1:5432/{database}")
        try:
            await conn.execute("CREATE TABLE t (x int); CREATE VIEW v AS SELECT x FROM t")
            await install_capture(conn, channel_for(database))
            first = await conn.fetchval(CHECK_SQL)
            assert first
            for statement in ("INSERT INTO t VALUES (1)", "ANALYZE t", "VACUUM t"):
                await conn.execute(statement)
            assert await conn.fetchval(CHECK_SQL) == first
            await conn.execute("CREATE OR REPLACE VIEW v AS SELECT x, 1 AS y FROM t")
            second = await conn.fetchval(CHECK_SQL)
            assert second != first
            await conn.execute("ALTER TABLE t RENAME TO u")
            assert await conn.fetchval(CHECK_SQL) not in (first, second)
        finally:
            await conn.close()


@pytest.mark.postgres
async def test_check_sql_is_null_where_the_event_trigger_keeps_step(captured: Capture) -> None:
    assert await captured.writer.fetchval(CHECK_SQL) is None

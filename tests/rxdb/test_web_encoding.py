"""rxdb.web.to_json: results as JSON a browser reads by column name."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import math
import uuid
from typing import Any, NamedTuple

import pytest

import rxdb
from rxdb.web import jsonable, to_json


@dataclasses.dataclass
class Order:
    id: int
    item: str


class Pair(NamedTuple):
    left: int
    right: bytes


async def test_rows_become_objects_keyed_by_column_name(memdb: rxdb.Database) -> None:
    rows = await memdb.fetch_all("SELECT 1 AS id, 'tea' AS item, NULL AS note")
    assert json.loads(to_json(rows)) == [{"id": 1, "item": "tea", "note": None}]
    assert json.loads(to_json(rows[0])) == {"id": 1, "item": "tea", "note": None}


async def test_a_blob_is_base64_text(memdb: rxdb.Database) -> None:
    row = await memdb.fetch_one("SELECT x'00ff' AS data")
    assert json.loads(to_json(row)) == {"data": "AP8="}


def test_typed_rows_and_values_json_has_no_type_for() -> None:
    value = {
        "order": Order(1, "tea"),
        "pair": Pair(2, b"\x01"),
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5),
        "day": datetime.date(2026, 1, 2),
        "price": decimal.Decimal("1.10"),
        "key": uuid.UUID(int=1),
        "took": datetime.timedelta(seconds=1.5),
        "tags": frozenset({"a"}),
    }
    assert jsonable(value) == {
        "order": {"id": 1, "item": "tea"},
        "pair": {"left": 2, "right": "AQ=="},
        "when": "2026-01-02T03:04:05",
        "day": "2026-01-02",
        "price": "1.10",
        "key": "00000000-0000-0000-0000-000000000001",
        "took": 1.5,
        "tags": ["a"],
    }


def test_objects_with_model_dump_like_pydantic() -> None:
    class Model:
        def model_dump(self) -> dict[str, Any]:
            return {"id": 1}

    assert jsonable([Model()]) == [{"id": 1}]


@pytest.mark.parametrize("number", [math.inf, -math.inf, math.nan])
def test_non_finite_float_is_refused(number: float) -> None:
    with pytest.raises(rxdb.ProgrammingError, match="cannot be encoded as JSON"):
        to_json([number])


def test_unknown_type_is_refused_by_name() -> None:
    with pytest.raises(rxdb.ProgrammingError, match=r"type object cannot be encoded.*encode="):
        to_json([object()])


def test_an_exception_is_its_class_and_message() -> None:
    assert jsonable(rxdb.OperationalError("no such table: t")) == {
        "error": "OperationalError",
        "message": "no such table: t",
    }

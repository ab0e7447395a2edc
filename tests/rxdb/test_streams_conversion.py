"""rxdb.streams.conversion: rows as the caller's own type (``row_type=``)."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, TypedDict

import msgspec
import pydantic
import pytest

import rxdb
from rxdb.encoding import to_json
from rxdb.rows import make_rows
from rxdb.streams.conversion import RowConverter, check_row_type, converted_row, first_value


@dataclasses.dataclass(frozen=True)
class Order:
    id: int
    item: str
    qty: int = 1


class OrderTuple(NamedTuple):
    id: int
    item: str
    qty: int = 1


class OrderDict(TypedDict):
    id: int
    item: str
    qty: int


class OrderModel(pydantic.BaseModel):
    id: int
    item: str
    qty: int = 1


class OrderStruct(msgspec.Struct, frozen=True):
    id: int
    item: str
    qty: int = 1


def result(names: tuple[str, ...], *values: tuple[Any, ...]) -> list[rxdb.Row]:
    return make_rows(tuple((name,) for name in names), values)


ORDERS = result(("id", "item", "qty"), (1, "pen", 2), (2, "ink", 5))


@pytest.mark.parametrize(
    ("row_type", "first"),
    [
        (Order, Order(1, "pen", 2)),
        (OrderTuple, OrderTuple(1, "pen", 2)),
        (OrderDict, {"id": 1, "item": "pen", "qty": 2}),
        (OrderModel, OrderModel(id=1, item="pen", qty=2)),
        (OrderStruct, OrderStruct(1, "pen", 2)),
        (dict, {"id": 1, "item": "pen", "qty": 2}),
        (lambda **columns: sorted(columns), ["id", "item", "qty"]),
    ],
    ids=["dataclass", "namedtuple", "typeddict", "pydantic", "msgspec", "dict", "callable"],
)
def test_each_kind_of_row_type(row_type: Any, first: Any) -> None:
    converted = RowConverter(row_type).rows(ORDERS)
    assert converted[0] == first
    assert len(converted) == 2


def test_columns_in_another_order_and_fields_left_to_their_defaults() -> None:
    rows = result(("item", "id"), ("pen", 1))
    assert RowConverter(Order).rows(rows) == [Order(1, "pen", 1)]
    assert RowConverter(OrderTuple).rows(rows) == [OrderTuple(1, "pen", 1)]
    assert RowConverter(OrderStruct).rows(rows) == [OrderStruct(1, "pen", 1)]
    assert RowConverter(OrderModel).rows(rows) == [OrderModel(id=1, item="pen")]


@pytest.mark.parametrize(
    "row_type", [Order, OrderTuple, OrderDict, OrderModel, OrderStruct], ids=lambda t: t.__name__
)
def test_a_missing_required_field_and_an_unexpected_column_are_named(row_type: Any) -> None:
    with pytest.raises(rxdb.RowTypeError, match=r"no column for the required fields \['item'"):
        RowConverter(row_type).rows(result(("id",), (1,)))
    with pytest.raises(rxdb.RowTypeError, match=r"no field for the columns \['price'\]"):
        RowConverter(row_type).rows(result(("id", "item", "qty", "price"), (1, "a", 1, 9)))


def test_a_callable_that_refuses_the_columns_gives_a_row_type_error() -> None:
    def only_id(*, id: int) -> int:
        return id

    with pytest.raises(rxdb.RowTypeError, match=r"does not take the columns \['id', 'item'"):
        RowConverter(only_id).rows(ORDERS)
    assert issubclass(rxdb.RowTypeError, rxdb.ProgrammingError)
    assert issubclass(rxdb.RowTypeError, TypeError)


def test_a_value_pydantic_refuses_gives_a_row_type_error() -> None:
    with pytest.raises(rxdb.RowTypeError, match="OrderModel"):
        RowConverter(OrderModel).rows(result(("id", "item"), ("not a number", "pen")))


def test_repeated_column_names_keep_the_first_as_row_as_dict_does() -> None:
    rows = result(("id", "id"), (1, 2))
    assert RowConverter(dict).rows(rows) == [rows[0].as_dict()] == [{"id": 1}]


def test_an_empty_result_and_no_row() -> None:
    assert RowConverter(Order).rows(result(("nothing",))) == []
    assert converted_row(None, Order) is None
    row = ORDERS[0]
    assert converted_row(row, None) is row
    assert first_value(None) is None
    assert first_value(ORDERS[1]) == 2


@pytest.mark.parametrize("row_type", [5, "Order", Order(1, "pen")], ids=repr)
def test_a_row_type_that_is_not_callable_is_refused(row_type: Any) -> None:
    with pytest.raises(rxdb.ProgrammingError, match="row_type"):
        check_row_type(row_type)


def test_converted_rows_encode_as_json_with_their_names() -> None:
    """What the SSE and WebSocket helpers (rxdb.web) send for ``row_type=dict``, a dataclass
    or plain rows: objects with column names."""
    expected = '[{"id":1,"item":"pen","qty":2},{"id":2,"item":"ink","qty":5}]'
    assert to_json(RowConverter(dict).rows(ORDERS)) == expected
    assert to_json(RowConverter(Order).rows(ORDERS)) == expected
    assert to_json(ORDERS) == expected

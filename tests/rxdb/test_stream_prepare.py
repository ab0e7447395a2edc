"""How a watch compares a run's result with the last one emitted (``_prepare``): short results
are frozen first and compared whole, longer ones by slices; both must judge alike."""

from __future__ import annotations

import pytest

from rxdb.rows import FrozenRows, RowList, make_rows
from rxdb.watch import stream

DESCRIPTION = tuple((name, None, None, None, None, None, None) for name in ("id", "v"))


def result(size: int, last: object = 0) -> RowList:
    return make_rows(DESCRIPTION, [(i, 0) for i in range(size - 1)] + [(size - 1, last)])


SIZES = (1, stream._FEW_ROWS, stream._FEW_ROWS + 1)


@pytest.mark.parametrize("size", SIZES)
def test_an_equal_result_is_not_emitted(size: int) -> None:
    assert stream._prepare(result(size), FrozenRows(result(size))) is None


@pytest.mark.parametrize("size", SIZES)
def test_a_result_differing_in_its_last_row_is_frozen_for_emission(size: int) -> None:
    new = result(size, last=1)
    frozen = stream._prepare(new, FrozenRows(result(size)))
    assert frozen is not None
    assert frozen.values == tuple(result(size, last=1))
    assert frozen.thaw() == new
    assert type(frozen.thaw()[0]) is type(new[0])  # the row type survives


@pytest.mark.parametrize("size", SIZES)
def test_a_result_of_another_length_is_frozen(size: int) -> None:
    assert stream._prepare(result(size), FrozenRows(result(size + 1))) is not None


@pytest.mark.parametrize("size", SIZES)
def test_the_first_result_is_frozen(size: int) -> None:
    frozen = stream._prepare(result(size), None)
    assert frozen is not None
    assert frozen.values == tuple(result(size))


@pytest.mark.parametrize("size", SIZES)
def test_values_equal_across_types_compare_as_equal_on_both_roads(size: int) -> None:
    # As ``==`` compares them: 1 == 1.0 == True, whatever the road.
    assert stream._prepare(result(size, last=1), FrozenRows(result(size, last=1.0))) is None

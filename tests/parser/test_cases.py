"""The data-driven parser cases in cases.sql: SQL text plus the expected analysis."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from parser import StatementKind, Unanalyzable, Views, analyze, read_tables

CASES_FILE = Path(__file__).with_name("cases.sql")

_HEADER = re.compile(r"^-- (case|reads|writes|kind|multiple|views|error|define views): ?(.*)$")


@dataclass
class Case:
    title: str
    sql: str = ""
    reads: frozenset[str] = frozenset()
    writes: frozenset[str] = frozenset()
    kind: StatementKind = StatementKind.QUERY
    multiple: bool = False
    views: str | None = None
    error: str | None = None
    headers: set[str] = field(default_factory=set)


def _names(value: str) -> frozenset[str]:
    if value.strip() == "-":
        return frozenset()
    return frozenset(name.strip() for name in value.split(","))


def _blocks(text: str) -> list[list[str]]:
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return [block for block in blocks if block]


def load_cases() -> tuple[list[Case], dict[str, Views]]:
    cases: list[Case] = []
    view_sets: dict[str, Views] = {}
    for block in _blocks(CASES_FILE.read_text(encoding="utf-8")):
        headers: dict[str, str] = {}
        body_start = 0
        for body_start, line in enumerate(block):  # noqa: B007 - used after the loop
            match = _HEADER.match(line)
            if match is None:
                break
            headers[match.group(1)] = match.group(2)
        else:
            body_start = len(block)
        body = block[body_start:]
        if "define views" in headers:
            definitions = {}
            for line in body:
                name = re.match(r'CREATE VIEW "?(\w+)"?', line)
                assert name is not None, line
                definitions[name.group(1)] = line
            view_sets[headers["define views"]] = Views(definitions)
            continue
        if "case" not in headers:
            continue  # the file's own comment block
        case = Case(title=headers["case"], sql="\n".join(body), headers=set(headers))
        if "reads" in headers:
            case.reads = _names(headers["reads"])
        if "writes" in headers:
            case.writes = _names(headers["writes"])
        if "kind" in headers:
            case.kind = StatementKind[headers["kind"]]
        case.multiple = headers.get("multiple") == "yes"
        case.views = headers.get("views")
        case.error = headers.get("error")
        cases.append(case)
    return cases, view_sets


CASES, VIEW_SETS = load_cases()


def test_cases_file_is_well_formed() -> None:
    titles = [case.title for case in CASES]
    assert len(titles) == len(set(titles)), "case titles must be unique"
    for case in CASES:
        assert ("reads" in case.headers) != ("error" in case.headers), case.title
        assert case.views is None or case.views in VIEW_SETS, case.title


@pytest.mark.parametrize("case", CASES, ids=[case.title for case in CASES])
def test_case(case: Case) -> None:
    views = VIEW_SETS[case.views] if case.views else None
    if case.error is not None:
        expected, *words = case.error.split()
        assert expected == "Unanalyzable"
        with pytest.raises(Unanalyzable) as raised:
            analyze(case.sql, views=views)
        for word in words:
            assert word in str(raised.value)
        with pytest.raises(Unanalyzable):
            read_tables(case.sql, views=views)
        return
    analysis = analyze(case.sql, views=views)
    assert analysis.reads == case.reads
    assert analysis.writes == case.writes
    assert analysis.kind is case.kind
    assert analysis.multiple is case.multiple
    assert read_tables(case.sql, views=views) == case.reads
    # Any mapping works, not only a Views.
    if views is not None:
        assert analyze(case.sql, views=dict(views)) == analysis

"""The public surface: every exported name exists, is documented and says it is rxdb's."""

from __future__ import annotations

import importlib

import pytest

import parser
import rxdb

PUBLIC_MODULES = ["rxdb", "rxdb.updates", "rxdb.bus", "rxdb.errors", "rxdb.rows", "rxdb.watch.stream", "parser"]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_is_a_tuple_of_defined_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = module.__all__
    assert isinstance(exported, tuple)
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert hasattr(module, name), f"{module_name}.__all__ names missing {name}"


def test_facade_objects_report_rxdb_as_their_module() -> None:
    for name in rxdb.__all__:
        obj = getattr(rxdb, name)
        if isinstance(obj, type):
            assert obj.__module__ == "rxdb", name


def test_every_public_class_and_function_has_a_docstring() -> None:
    for module in (rxdb, parser):
        for name in module.__all__:
            assert getattr(module, name).__doc__, f"{module.__name__}.{name} has no docstring"


def test_errors_subclass_what_callers_already_catch() -> None:
    assert issubclass(rxdb.ClosedError, RuntimeError)
    assert issubclass(rxdb.WrongLoopError, RuntimeError)
    assert issubclass(rxdb.IntegrityError, rxdb.DatabaseError)
    assert issubclass(rxdb.DatabaseError, rxdb.RxdbError)
    assert issubclass(parser.Unanalyzable, ValueError)

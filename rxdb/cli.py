"""The ``rxdb`` command line (also ``python -m rxdb``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ("main",)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxdb", description="rxdb: reactive SQL queries over SQLite."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo",
        help="watch live queries while a writer thread changes the database",
        description=(
            "Create a small database in a temporary directory, watch three queries on it, "
            "and print each new result while a writer thread (its own event loop, reaching the "
            "database through a handle) commits orders. Ends by itself and removes the "
            "directory."
        ),
    )
    demo.add_argument(
        "--seconds", type=_positive, default=4.0, help="how long the writer writes (default: 4)"
    )
    demo.add_argument(
        "--rate", type=_positive, default=5.0, help="writer commits per second (default: 5)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from rxdb import demo

        return demo.run(seconds=args.seconds, rate=args.rate)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse rejects the rest

"""The ``rxdb`` command line (also ``python -m rxdb``): ``rxdb watch`` and ``rxdb demo``.

Whatever goes wrong in a way a user can cause (a wrong argument, a missing file, bad SQL, a
server that is down) ends the command with one line on stderr and a non-zero status, never a
traceback; so does Ctrl-C, with the conventional status 130. docs/cli.md describes it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from rxdb import __version__
from rxdb.errors import RxdbError

__all__ = ("main",)

INTERRUPTED = 130  # 128 + SIGINT, as shells report a program Ctrl-C ended
FAILED = 1
USAGE = 2  # what argparse exits with


class _Parser(argparse.ArgumentParser):
    """Reports a wrong argument in one line that says where to read more."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rxdb", description="rxdb: reactive SQL queries over SQLite and PostgreSQL."
    )
    parser.add_argument("--version", action="version", version=f"rxdb {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    watch = commands.add_parser(
        "watch",
        help="show a query's result, again after every committed change",
        description=(
            "Show the result of a query and redraw it after every commit that changes it, "
            "whoever commits (this program only reads; a SQLite file is opened read-only). "
            "Ctrl-C ends it."
        ),
        epilog=(
            "A parameter that reads as a JSON number, true, false or null is that value; "
            "anything else is text (quote it as JSON, '\"42\"', to pass digits as text). "
            "The live table needs rich: pip install 'rxdb[cli]'."
        ),
    )
    watch.add_argument("database", metavar="DB", help="a SQLite file or a postgresql:// URL")
    watch.add_argument("sql", metavar="SQL", help="the query to watch")
    watch.add_argument(
        "params",
        metavar="PARAM",
        nargs="*",
        default=[],
        help="values for the query's placeholders",
    )
    watch.add_argument(
        "--throttle",
        metavar="SECONDS",
        type=_positive,
        help=(
            "show a change at once, then at most one result per SECONDS (the newest; the "
            "last one always arrives)"
        ),
    )
    watch.add_argument(
        "--json",
        action="store_true",
        help="print each result as one line of JSON (a list of {column: value}) instead",
    )
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


def _watch(args: argparse.Namespace) -> int:
    from rxdb import terminal

    params = [terminal.parse_param(text) for text in args.params]
    if args.json:
        show = terminal.json_lines(sys.stdout)
        asyncio.run(terminal.watch(args.database, args.sql, params, show, args.throttle))
        return 0
    try:
        view = terminal.live_table(sys.stdout, args.sql)
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] != "rich":
            raise
        print(
            "rxdb watch: the live table needs rich: pip install 'rxdb[cli]' (or use --json)",
            file=sys.stderr,
        )
        return FAILED
    with view as show:
        asyncio.run(terminal.watch(args.database, args.sql, params, show, args.throttle))
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "watch":
        return _watch(args)
    if args.command == "demo":
        from rxdb import demo

        return demo.run(seconds=args.seconds, rate=args.rate)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse rejects the rest


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): not an error. Point stdout at nothing, so that
        # Python's flush at exit does not complain about the pipe once more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except RxdbError as error:
        print(f"rxdb {args.command}: {error}", file=sys.stderr)
        return FAILED

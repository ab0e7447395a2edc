"""rxdb's worker processes, behind :func:`rxdb.spawn` and :func:`rxdb.compute_with_database`:
both ends of the command line.

The parent's end: :func:`start_worker` starts ``sys.executable -m
rxdb.remote.processes.worker <command>`` with pipes on stdin and stdout, and
:func:`function_reference` turns a function into the ``"module:qualname"`` that the child's
:func:`resolve` imports back.

The child's end:

``python -m rxdb.remote.processes.worker serve``: read one JSON line of configuration, open
(or make) the database, serve it, print ``{"event": "ready", "handle": ...}``, and serve
until stdin says ``stop`` or closes.

``python -m rxdb.remote.processes.worker compute``: read one rxdb frame (a ``Request`` of a
:class:`~rxdb.remote.wire.operations.Compute` operation) from stdin, run the function, write
one frame (``Response`` or ``Failure``) to stdout. Only the rxdb protocol crosses: values are
checked on both sides, and nothing is unpickled.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
from collections.abc import Callable
from typing import Any, Literal

from rxdb.database import Database
from rxdb.database import open as open_database
from rxdb.errors import ProgrammingError, ProtocolError
from rxdb.remote.client.database import connect
from rxdb.remote.server.server import serve
from rxdb.remote.wire.errors import error_to_wire
from rxdb.remote.wire.frames import FrameDecoder, encode_frame
from rxdb.remote.wire.messages import Failure, Request, Response, decode_message, encode_message
from rxdb.remote.wire.operations import Compute, OpenFile

__all__ = ("function_reference", "main", "resolve", "start_worker")


def function_reference(fn: Callable[..., Any] | str) -> str:
    """Return ``"module:qualname"`` for a module-level function, checking that a child
    process can import it back.

    :raises rxdb.ProgrammingError: for a lambda, a closure, a method of an instance, or
        anything the child could not find by name.
    """
    if isinstance(fn, str):
        head, _, tail = fn.partition(":")
        if not head or not tail:
            raise ProgrammingError(f"a function reference is 'module:qualname', not {fn!r}")
        return fn
    module_name = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module_name or not qualname or "<" in qualname:
        raise ProgrammingError(
            f"{fn!r} is not a module-level function (lambdas and closures cannot be found by "
            "name in another process); define it at the top level of an importable module"
        )
    if module_name == "__main__":
        raise ProgrammingError(
            f"{fn!r} is defined in __main__, which another process cannot import; move it "
            "into a module"
        )
    target: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is not fn:
        raise ProgrammingError(f"{module_name}:{qualname} does not name {fn!r}")
    return f"{module_name}:{qualname}"


async def start_worker(command: Literal["serve", "compute"]) -> asyncio.subprocess.Process:
    """Start ``python -m rxdb.remote.processes.worker <command>``, stdin and stdout piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rxdb.remote.processes.worker",
        command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


def resolve(reference: str) -> Any:
    """Import ``"module:qualname"`` and return what it names."""
    module_name, _, qualname = reference.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def _serve() -> int:
    loop = asyncio.get_running_loop()
    try:
        config = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
        if "factory" in config:
            made = resolve(config["factory"])()
            db = await made if inspect.isawaitable(made) else made
            if not isinstance(db, Database):
                raise ProgrammingError(f"the factory returned {type(db).__name__}, not a Database")
            await db.connect()
        else:
            db = await open_database(config["path"], **config.get("options", {}))
    except Exception as error:
        _say(event="failed", error=f"{type(error).__name__}: {error}")
        return 1
    try:
        try:
            server = await serve(
                db,
                host=config.get("host"),
                port=config.get("port", 0),
                token=config.get("token"),
                name=config.get("name"),
                allow_remote=bool(config.get("allow_remote")),
            )
        except Exception as error:
            _say(event="failed", error=f"{type(error).__name__}: {error}")
            return 1
        try:
            _say(event="ready", handle=server.handle.to_json())
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line or line.strip() == "stop":
                    break
        finally:
            await server.shutdown_all()
    finally:
        await db.close()
    return 0


async def _compute() -> int:
    out = sys.stdout.buffer
    request_id = 0
    try:
        payloads = FrameDecoder().feed(sys.stdin.buffer.read())
        if len(payloads) != 1:
            raise ProtocolError("expected exactly one request frame")
        request = decode_message(payloads[0])
        if not isinstance(request, Request) or not isinstance(request.operation, Compute):
            raise ProtocolError("expected a compute request")
        request_id = request.id
        result = await _run(request.operation)
        try:
            payload = encode_message(Response(request_id, result))
        except ProtocolError as error:
            raise ProgrammingError(f"the function's result cannot be sent back: {error}") from error
    except Exception as error:
        payload = encode_message(Failure(request_id, error_to_wire(error)))
    out.write(encode_frame(payload))
    out.flush()
    return 0


async def _run(job: Compute) -> Any:
    fn = resolve(job.function)
    if not inspect.iscoroutinefunction(fn):
        raise ProgrammingError(f"{job.function} is not an async function")
    if isinstance(job.target, OpenFile):
        async with open_database(job.target.path, **job.target.options) as db:
            return await fn(db, *job.args)
    async with await connect(job.target) as remote:
        return await fn(remote, *job.args)


def main(argv: list[str]) -> int:
    """The child's entry point: ``serve`` or ``compute``."""
    if argv[1:] == ["serve"]:
        return asyncio.run(_serve())
    if argv[1:] == ["compute"]:
        return asyncio.run(_compute())
    sys.stderr.write("usage: python -m rxdb.remote.processes.worker serve|compute\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

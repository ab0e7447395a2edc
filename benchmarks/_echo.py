"""The other process of #3's baseline: ``python -m benchmarks._echo SOCKET [CONNECTIONS]``.

A plain blocking Unix-socket echo server: binds ``SOCKET``, prints ``ready``, then serves
``CONNECTIONS`` connections (1 unless told) one after the other, sending back every byte it
receives until the peer closes; then removes the socket file and exits 0.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys


def main(path: str, connections: int) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(path)
        server.listen(1)
        print("ready", flush=True)
        for _ in range(connections):
            conn, _ = server.accept()
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1)

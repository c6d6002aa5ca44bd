"""A PostgreSQL server that stops answering while a statement awaits its answer, found and told.

A frozen server (stopped, swapped out, a VM paused) keeps its port open: its kernel accepts
connections and acknowledges every byte, so neither the connect timeout nor TCP's timeouts fire
while a client waits for an answer. A statement may also wait for minutes for good reasons (a lock
another load holds) with nothing sent meanwhile: only a second connection tells the two apart.
"""
from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator

# The first message of a connection asking for TLS (PostgreSQL's SSLRequest): the server answers it
# with one byte before any authentication, and logs nothing when the client then goes away.
_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def answers(host: str, port: int, timeout_s: float) -> None:
    """Return once the server at ``host:port`` (or its Unix socket folder) answers a new connection
    within ``timeout_s``; raise ``TimeoutError`` if it does not (frozen: the kernel still accepts
    the connection, nothing reads it), ``OSError`` if it refuses."""
    if host.startswith("/"):
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout_s)
        sock.connect(f"{host}/.s.PGSQL.{port}")
    else:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    with sock:
        sock.settimeout(timeout_s)
        sock.sendall(_SSL_REQUEST)
        if not sock.recv(1):
            raise ConnectionResetError(f"PostgreSQL at {host}:{port} closed a new connection unanswered")


@contextlib.contextmanager
def watched(conn, every_s: float) -> Iterator[Callable[[], bool]]:
    """While the block runs, ask ``conn``'s server every ``every_s`` whether it answers a new
    connection (``answers``); once it does not, shut ``conn``'s socket, so that a statement awaiting
    its answer fails instead of waiting for ever. Yields whether that happened. A server that only
    takes long (a lock another load holds) answers the watch, and its statement goes on waiting.
    """
    params = conn.get_dsn_parameters()
    host, port = params.get("host") or "/var/run/postgresql", int(params.get("port") or 5432)
    stop, frozen = threading.Event(), threading.Event()

    def watch() -> None:
        while not stop.wait(every_s):
            try:
                answers(host, port, every_s)
            except TimeoutError:
                frozen.set()
                # shutdown() acts on the socket itself, which the duplicate shares with libpq's.
                with contextlib.suppress(OSError), socket.socket(fileno=os.dup(conn.fileno())) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
                return
            except OSError:  # refused: the server is gone, and conn's own socket says so
                return

    watcher = threading.Thread(target=watch, name="postgres-watch", daemon=True)
    watcher.start()
    try:
        yield frozen.is_set
    finally:
        stop.set()

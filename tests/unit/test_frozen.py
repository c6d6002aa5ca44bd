"""``frozen``: telling a frozen PostgreSQL (its port open, nothing answers) from a live one."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from nyctaxi.frozen import answers, watched


def listening(answer: bytes | None) -> socket.socket:
    """A port that accepts connections; with ``answer``, a server that sends it to each first message."""
    server = socket.create_server(("127.0.0.1", 0))

    def reply(conn: socket.socket) -> None:
        with conn:
            if conn.recv(8):
                conn.sendall(answer)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=reply, args=(conn,), daemon=True).start()

    if answer is not None:
        threading.Thread(target=serve, daemon=True).start()
    return server


def test_a_server_that_answers_the_first_message_answers():
    with listening(b"N") as server:
        answers("127.0.0.1", server.getsockname()[1], 2)


def test_a_port_nobody_reads_is_a_timeout():
    with listening(None) as server:  # the kernel accepts; no process reads: as a SIGSTOPped server
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            answers("127.0.0.1", server.getsockname()[1], 0.5)
        assert time.monotonic() - started < 2


class FakeConnection:
    """What ``watched`` reads of a psycopg2 connection: its address and its socket."""

    def __init__(self, port: int) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port))
        self.port = port

    def get_dsn_parameters(self) -> dict:
        return {"host": "127.0.0.1", "port": str(self.port)}

    def fileno(self) -> int:
        return self.socket.fileno()


def test_the_watch_shuts_the_connection_of_a_frozen_server_and_not_of_a_live_one():
    for answer, shut in ((b"N", False), (None, True)):
        with listening(answer) as server:
            conn = FakeConnection(server.getsockname()[1])
            with conn.socket, watched(conn, 0.3) as frozen:
                conn.socket.settimeout(3)
                if shut:  # a read that would wait for ever ends: the socket was shut under it
                    assert conn.socket.recv(1) == b""
                    assert frozen()
                else:
                    time.sleep(1)  # three periods
                    assert not frozen()

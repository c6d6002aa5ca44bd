"""A release server that misbehaves on request: the fault-injection stand-in for GitHub.

Each path answers with the next action of its script (then "ok" for ever):
  "ok"        the generated month, whole
  "503"       HTTP 503
  "404"       HTTP 404
  "reset"     announces the whole body, sends a third of it, then resets the connection
  "truncated" a gzip cut short, sent whole with a matching Content-Length (a bad file, not a bad transfer)
  "html"      an HTML error page with status 200
  "header"    a CSV whose header lacks a column and has an unknown one
Every request is counted, per path.
"""
from __future__ import annotations

import socket
import struct
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import gzip

from generator import generate
from nyctaxi.schema import columns


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, rows: int = 3000):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root, self.rows = root, rows
        self.scripts: dict[str, list[str]] = {}
        self.requests: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def script(self, color: str, year: int, month: int, *actions: str) -> str:
        """Set what the month's URL answers, request after request; return the URL."""
        path = f"/{color}/{color}_tripdata_{year}-{month:02}.csv.gz"
        self.scripts[path] = list(actions)
        return self.base_url + path

    def next_action(self, path: str) -> str:
        with self._lock:
            self.requests[path] += 1
            actions = self.scripts.get(path, [])
            return actions.pop(0) if actions else "ok"

    def body(self, path: str) -> bytes:
        color, name = path.strip("/").split("/")
        year, month = name.removeprefix(f"{color}_tripdata_").removesuffix(".csv.gz").split("-")
        file = self.root / path.strip("/")
        with self._lock:
            if not file.exists():
                generate(color, int(year), int(month), self.rows, file)
        return file.read_bytes()

    def __enter__(self) -> "FaultServer":
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FaultServer

    def do_GET(self) -> None:
        action = self.server.next_action(self.path)
        if action in ("503", "404"):
            self.send_error(int(action))
            return
        color = self.path.strip("/").split("/")[0]
        if action == "html":
            return self._send(b"<!DOCTYPE html><html><body><h1>Rate limit exceeded</h1></body></html>", "text/html")
        if action == "header":
            header = [c for c in columns(color)[:-1]] + ["airport_fee"]
            return self._send(gzip.compress((",".join(header) + "\n").encode()))
        body = self.server.body(self.path)
        if action == "truncated":
            return self._send(body[: len(body) // 2])
        if action == "reset":
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            # SO_LINGER 0: close with a TCP reset, as a dropped connection does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        self._send(body)

    def _send(self, body: bytes, content_type: str = "application/gzip") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass

"""A release server that misbehaves on request: the fault-injection stand-in for GitHub (and
``DyingApi``: a pass-through to the Prefect API that dies at a chosen request).

Each path answers with the next action of its script (then "ok" for ever):
  "ok"        the generated month, whole
  "503"       HTTP 503
  "404"       HTTP 404
  "reset"     announces the whole body, sends a third of it, then resets the connection
  "truncated" a gzip cut short, sent whole with a matching Content-Length (a bad file, not a bad transfer)
  "html"      an HTML error page with status 200
  "header"    a CSV whose header lacks a column and has an unknown one
  "slow"      the month, whole, spread over ``slow_s`` seconds
What "ok" sends is the edition published at that path (``publish``; by default a generated
month of ``rows`` rows), with an ETag of its bytes, so that a new edition is a new version.
HEAD answers with the headers of the published edition (or ``head_status``), a GET of ``Range:
bytes=0-0`` with its first byte (206). Every GET, HEAD and ranged GET is counted, per path.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import http.client
import io
import json
import socket
import struct
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from stack.generator import generate

from nyctaxi.schema import columns


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, rows: int = 3000, slow_s: float = 20.0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root, self.rows, self.slow_s = root, rows, slow_s
        self.scripts: dict[str, list[str]] = {}
        self.editions: dict[str, bytes] = {}
        self.requests: dict[str, int] = defaultdict(int)
        self.heads: dict[str, int] = defaultdict(int)
        self.ranges: dict[str, int] = defaultdict(int)  # GETs of the first byte (a version check)
        self.head_status: int | None = None  # HEAD answered with this error (403: a GET-only pre-signed URL)
        self.connections: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def script(self, color: str, year: int, month: int, *actions: str) -> str:
        """Set what the month's URL answers, request after request; return the URL."""
        path = f"/{color}/{color}_tripdata_{year}-{month:02}.csv.gz"
        self.scripts[path] = list(actions)
        return self.base_url + path

    def publish(self, color: str, year: int, month: int, *, rows: int | None = None, header_only: bool = False) -> str:
        """Publish a new edition of the month at its URL: ``rows`` generated rows, or a header and
        no rows; return the URL."""
        path = f"/{color}/{color}_tripdata_{year}-{month:02}.csv.gz"
        if header_only:
            body = gzip.compress((",".join(columns(color)) + "\n").encode())
        else:
            file = self.root / "editions" / f"{rows}" / path.strip("/")
            body = generate(color, year, month, rows, file).read_bytes()
        with self._lock:
            self.editions[path] = body
        return self.base_url + path

    def publish_cells(self, color: str, year: int, month: int, cells: dict[tuple[int, str], str]) -> str:
        """Publish the generated month with some cells replaced, ``{(row, column): text}`` (row 0 is
        the first after the header), quoted as CSV quotes them; return the URL."""
        generated = generate(color, year, month, self.rows, self.root / "cells" / f"{color}-{year}-{month:02}.csv.gz")
        rows = list(csv.reader(io.StringIO(gzip.decompress(generated.read_bytes()).decode())))
        for (row, column), value in cells.items():
            rows[row + 1][rows[0].index(column)] = value
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        path = f"/{color}/{color}_tripdata_{year}-{month:02}.csv.gz"
        with self._lock:
            self.editions[path] = gzip.compress(out.getvalue().encode())
        return self.base_url + path

    def path_of(self, url: str) -> str:
        return url.removeprefix(self.base_url)

    def next_action(self, path: str) -> str:
        with self._lock:
            self.requests[path] += 1
            actions = self.scripts.get(path, [])
            return actions.pop(0) if actions else "ok"

    def body(self, path: str) -> bytes:
        with self._lock:
            if path in self.editions:
                return self.editions[path]
        color, name = path.strip("/").split("/")
        year, month = name.removeprefix(f"{color}_tripdata_").removesuffix(".csv.gz").split("-")
        file = self.root / path.strip("/")
        with self._lock:
            if not file.exists():
                generate(color, int(year), int(month), self.rows, file)
        return file.read_bytes()

    def __enter__(self) -> FaultServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()

    def kill(self) -> None:
        """Go away as a killed server does: stop listening and drop every open connection."""
        self.shutdown()
        self.server_close()
        with self._lock:
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def process_request(self, request, client_address) -> None:
        with self._lock:
            self.connections.append(request)
        super().process_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: FaultServer

    def do_HEAD(self) -> None:
        with self.server._lock:
            self.server.heads[self.path] += 1
        if self.server.head_status:
            self.send_error(self.server.head_status)
            return
        body = self.server.body(self.path)
        self.send_response(200)
        self._edition_headers(body)
        self.end_headers()

    def do_GET(self) -> None:
        if self.headers.get("Range") == "bytes=0-0":  # a version check, not a download: no action used
            with self.server._lock:
                self.server.ranges[self.path] += 1
            body = self.server.body(self.path)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes 0-0/{len(body)}")
            self.send_header("Content-Length", "1")
            self.send_header("ETag", self._etag(body))
            self.end_headers()
            self.wfile.write(body[:1])
            return
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
        if action == "slow":
            self.send_response(200)
            self._edition_headers(body)
            self.end_headers()
            pieces = 20
            for i in range(pieces):
                self.wfile.write(body[i * len(body) // pieces:(i + 1) * len(body) // pieces])
                self.wfile.flush()
                time.sleep(self.server.slow_s / pieces)
            return
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
        self._edition_headers(body)
        self.end_headers()
        self.wfile.write(body)

    def _edition_headers(self, body: bytes) -> None:
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", self._etag(body))

    @staticmethod
    def _etag(body: bytes) -> str:
        return f'"{hashlib.sha256(body).hexdigest()[:16]}"'

    def log_message(self, *args) -> None:
        pass


class DyingApi(ThreadingHTTPServer):
    """A pass-through to the HTTP API at ``upstream`` (a URL's scheme, host and port) that dies, as a
    killed server does, at the first request for which ``dies_at(method, path, seen)`` is true
    (``seen``: the (method, path) of each request passed on so far): that request and every later one
    on an open connection get the connection closed with no answer, and new connections are refused.
    ``answer(method, path)``, if given, may answer a request itself: ``(status, JSON body)``, or None
    to pass it on (a permission denied as Google denies it, say)."""

    daemon_threads = True

    def __init__(self, upstream: str, dies_at=lambda method, path, seen: False, answer=None) -> None:
        super().__init__(("127.0.0.1", 0), _PassThrough)
        self.upstream, self.dies_at, self.answer = urlsplit(upstream).netloc, dies_at, answer
        self.seen: list[tuple[str, str]] = []
        self.dead = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def die(self) -> None:
        if not self.dead.is_set():
            self.dead.set()
            threading.Thread(target=lambda: (self.shutdown(), self.server_close()), daemon=True).start()


class _PassThrough(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the Prefect client's connections are
    server: DyingApi

    def _pass(self):
        api = self.server
        if api.dead.is_set() or api.dies_at(self.command, self.path, api.seen):
            api.die()
            self.close_connection = True
            return
        api.seen.append((self.command, self.path))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if api.answer and (own := api.answer(self.command, self.path)):
            status, payload = own
            content = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
            return
        upstream = http.client.HTTPConnection(api.upstream, timeout=60)
        upstream.request(self.command, self.path, body=body,
                         headers={k: v for k, v in self.headers.items() if k.lower() != "connection"})
        answer = upstream.getresponse()
        content = answer.read()
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length", "date", "server"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)
        upstream.close()

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _pass

    def log_message(self, *args):
        pass

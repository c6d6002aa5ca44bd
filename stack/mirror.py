"""A local HTTP mirror of the DataTalksClub release layout, serving generated months.

``GET /{color}/{color}_tripdata_{YYYY}-{MM}.csv.gz`` answers with a generated
month (made on first request, then kept on disk). Months the real release does
not publish answer 404, as GitHub does. ``GET /healthz`` answers ``ok``.
"""
from __future__ import annotations

import argparse
import re
import shutil
import threading
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from nyctaxi.schema import COLORS
from stack.generator import generate

# What the real release publishes, per colour: 2019-01 ... 2021-07.
FIRST_PUBLISHED, LAST_PUBLISHED = (2019, 1), (2021, 7)
PATH = re.compile(r"^/(?P<color>[a-z]+)/(?P=color)_tripdata_(?P<year>\d{4})-(?P<month>\d{2})\.csv\.gz$")


def is_published(color: str, year: int, month: int) -> bool:
    return color in COLORS and 1 <= month <= 12 and FIRST_PUBLISHED <= (year, month) <= LAST_PUBLISHED


class Mirror(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], cache_dir: Path, rows: str):
        super().__init__(address, MirrorHandler)
        self.cache_dir = cache_dir / str(rows)
        self.rows = rows
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def month_file(self, color: str, year: int, month: int) -> Path:
        """The generated file, made once even when requested concurrently."""
        path = self.cache_dir / color / f"{color}_tripdata_{year}-{month:02}.csv.gz"
        with self._locks_guard:
            lock = self._locks.setdefault(path, threading.Lock())
        with lock:
            if not path.exists():
                generate(color, year, month, self.rows, path)
        return path


class MirrorHandler(BaseHTTPRequestHandler):
    server: Mirror

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        if self.path == "/healthz":
            return self._reply(HTTPStatus.OK, b"ok\n", body)
        match = PATH.match(self.path)
        if not match:
            return self._reply(HTTPStatus.NOT_FOUND, b"Not Found\n", body)
        color, year, month = match["color"], int(match["year"]), int(match["month"])
        if not is_published(color, year, month):
            return self._reply(HTTPStatus.NOT_FOUND, b"Not Found\n", body)
        path = self.server.month_file(color, year, month)
        stat = path.stat()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(stat.st_size))
        # Like GitHub's release storage: a new edition of a file gets a new ETag.
        self.send_header("ETag", f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"')
        self.send_header("Last-Modified", formatdate(stat.st_mtime, usegmt=True))
        self.end_headers()
        if body:
            with open(path, "rb") as f:
                shutil.copyfileobj(f, self.wfile, 1 << 20)

    def _reply(self, status: HTTPStatus, content: bytes, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if body:
            self.wfile.write(content)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        print(f"{self.address_string()} {format % args}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="where generated months are kept")
    parser.add_argument("--rows", default="100000", help='rows per month, or "full" for real sizes')
    args = parser.parse_args()
    Mirror((args.host, args.port), args.dir, args.rows).serve_forever()


if __name__ == "__main__":
    main()

"""Shared test helpers: a real local HTTP server for files, and reading the emulator bucket."""
from __future__ import annotations

import functools
import io
import os
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq


@contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1; yields the base URL."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def bucket():
    """The stack's lake bucket, through the real google-cloud-storage client."""
    from google.cloud import storage

    return storage.Client(project=os.environ["GOOGLE_CLOUD_PROJECT"]).bucket(os.environ["GCS_BUCKET"])


def read_object(key: str) -> pq.ParquetFile:
    """A parquet object of the bucket, downloaded through the GCS API."""
    return pq.ParquetFile(io.BytesIO(bucket().blob(key).download_as_bytes()))


def object_exists(key: str) -> bool:
    return bucket().blob(key).exists()


def postgres_connection(database: str | None = None):
    """A psycopg2 connection to the stack's PostgreSQL (autocommit)."""
    import psycopg2

    conn = psycopg2.connect(
        host=os.environ["POSTGRES_HOST"], port=int(os.environ["POSTGRES_PORT"]), user=os.environ["POSTGRES_USER"],
        password=Path(os.environ["POSTGRES_PASSWORD_FILE"]).read_text().strip(),
        dbname=database or os.environ["POSTGRES_DB"],
    )
    conn.autocommit = True
    return conn


def postgres_counts(table: str) -> dict[str, int]:
    """Rows per source file in ``table``."""
    with postgres_connection() as conn, conn.cursor() as cur:
        cur.execute(f'SELECT source_file, count(*) FROM "{table}" GROUP BY 1')
        return dict(cur.fetchall())

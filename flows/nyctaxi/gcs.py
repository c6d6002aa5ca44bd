"""The lake's bucket: objects with their rows and edition, uploaded in bounded chunks.

Every call retries only what can pass (a 5xx, a connection dropped mid-transfer) for a
bounded time; a refused connection or an unresolvable name fails at once, as a
``ServiceUnreachableError`` naming the endpoint (``reaching``).
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow.parquet as pq
from google.cloud.storage import Blob, Bucket

from . import failures
from .resources import seconds, setting

log = logging.getLogger(__name__)

SERVICE = "the GCS bucket"
PROGRESS_EVERY_S = 30.0  # a long upload logs how far it is at least this often
ENDPOINT = "https://storage.googleapis.com"
# What each object says of itself: the edition of the release file it holds (what a backfill
# compares) and its rows (what a new edition is compared with before it replaces it).
VERSION_METADATA = "source_version"
ROWS_METADATA = "rows"
# Upload chunk of the lake file, and of write_bq's load job (GCS wants a multiple of 256 KiB).
# google-cloud-storage and google-cloud-bigquery send a big file in resumable chunks of 100 MiB
# by default, each read whole into memory, which put a big month far above the flows' memory
# target (bench/README.md).
UPLOAD_CHUNK_BYTES = 8 << 20
# To connect, and to wait for each answer (one chunk of an upload): a frozen bucket fails the step
# in this time, naming it, instead of hanging (urllib3's wait is per socket operation, so a slow but
# moving transfer is not cut short).
ANSWER_TIMEOUT_S = seconds("NYC_TLC_SERVICE_TIMEOUT_S")
TIMEOUT = (failures.CONNECT_TIMEOUT_S, ANSWER_TIMEOUT_S)
RETRY = failures.google_retry()


def address() -> str:
    """Where the bucket is served: the emulator the environment names, or Google's endpoint."""
    return setting("STORAGE_EMULATOR_HOST") or ENDPOINT


def reaching(fix: str):
    """``failures.reaching`` for the bucket's endpoint."""
    return failures.reaching(SERVICE, address(), fix, frozen=True)


def bucket_location(bucket: Bucket) -> str | None:
    """The bucket's location (``US``, ``EUROPE-WEST1``...), or None if the credentials may not read
    the bucket's metadata (``storage.buckets.get``: not in the objects-only roles)."""
    from google.api_core.exceptions import Forbidden

    try:
        bucket.reload(retry=RETRY, timeout=TIMEOUT)
    except Forbidden:
        return None
    return bucket.location


def get_blob(bucket: Bucket, name: str) -> Blob | None:
    """The object ``name`` with its metadata, or None."""
    return bucket.get_blob(name, retry=RETRY, timeout=TIMEOUT)


def object_rows(blob: Blob) -> int:
    """The rows of an object: its ``rows`` metadata, else its parquet footer (objects uploaded
    before the metadata was), read with small ranged requests."""
    recorded = (blob.metadata or {}).get(ROWS_METADATA)
    if recorded is not None:
        return int(recorded)
    with blob.open("rb", retry=RETRY) as remote:
        return pq.ParquetFile(remote).metadata.num_rows


class ReadWithProgress:
    """A file being uploaded: logs how much the uploader has read (sent) every ``PROGRESS_EVERY_S``
    seconds, so a long upload is never silent. Seeks and tells go to the file (a retried chunk is
    read again)."""

    def __init__(self, file: BinaryIO, what: str, logger: logging.Logger | logging.LoggerAdapter) -> None:
        self._file, self._what, self._logger = file, what, logger
        self._total = os.fstat(file.fileno()).st_size
        self._started = self._last = time.monotonic()

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            self._logger.info(f"{self._what}: {self._file.tell() / 1e6:,.0f} of {self._total / 1e6:,.0f} MB sent "
                              f"after {now - self._started:.0f} s")
        return data

    def seek(self, *args) -> int:
        return self._file.seek(*args)

    def tell(self) -> int:
        return self._file.tell()


def upload(bucket: Bucket, name: str, path: Path, rows: int, version: str | None,
           logger: logging.Logger | logging.LoggerAdapter = log) -> None:
    """Upload the lake file ``path`` as ``name`` in bounded chunks, its rows and edition set with it
    (the object appears only once complete), logging its progress."""
    blob = bucket.blob(name, chunk_size=UPLOAD_CHUNK_BYTES)
    blob.metadata = {ROWS_METADATA: str(rows), **({VERSION_METADATA: version} if version else {})}
    with path.open("rb") as file:
        blob.upload_from_file(ReadWithProgress(file, f"uploading {name}", logger), size=path.stat().st_size,
                              timeout=TIMEOUT, retry=RETRY)


def download(blob: Blob, dest: Path, disk: Path | None = None) -> Path:
    """Download an object to ``dest`` (a full disk: ``DiskFullError`` naming ``disk``, by default
    ``dest``'s folder: name one the user knows, not a staging folder that is gone when they read it)."""
    with failures.writing(disk or dest.parent, blob.size):
        try:
            blob.download_to_filename(str(dest), timeout=TIMEOUT, retry=RETRY)
        except BaseException:
            dest.unlink(missing_ok=True)  # before the error says what is free
            raise
    return dest


def versions(bucket: Bucket, prefix: str) -> Iterator[tuple[str, str | None]]:
    """``(name, source_version)`` of every object under ``prefix``."""
    for blob in bucket.list_blobs(prefix=prefix, retry=RETRY, timeout=TIMEOUT):
        yield blob.name, (blob.metadata or {}).get(VERSION_METADATA)

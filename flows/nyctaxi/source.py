"""Downloading one release file: streamed to disk, all or nothing, with clear errors."""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

# ISA-L's inflate: the same checks as zlib's, several times faster (bench/README.md).
from isal import isal_zlib

from .failures import CONNECT_TIMEOUT_S, cannot_connect, disk_full, is_disk_full, unreachable
from .resources import BASE_URL_ENV

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # 1 MiB: memory stays flat whatever the file's size
PROGRESS_EVERY_S = 5.0
# To connect, and for each read after: a server that sends nothing for this long is given up on
# (and the download retried), rather than waited for.
READ_TIMEOUT_S = 20.0
USER_AGENT = "dezoomcamp-prefect-etl"
SERVER = "the release server"
SERVER_FIX = f"check the network, or set {BASE_URL_ENV} to a mirror that publishes the files"


class SourceError(RuntimeError):
    """The source could not deliver the file; retrying may help."""


class NotPublishedError(SourceError):
    """The server says the file does not exist (404); retrying will not help."""


class NotGzipError(SourceError):
    """The server sent something else than a gzip file (an HTML page, say); retrying will not help."""


class _GzipCheck:
    """Inflates the body as it arrives, output discarded, so a download that is not a whole
    gzip stream (cut short, corrupt: inflating checks the CRC and length) is caught, and retried,
    here rather than half-way through the conversion."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._inflate = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)
        self._started = False

    def feed(self, chunk: bytes) -> None:
        if not self._started and chunk:
            self._started = True
            if not chunk.startswith(b"\x1f\x8b"):
                kind = "an HTML page" if chunk.lstrip()[:1] == b"<" else f"data starting {chunk[:16]!r}"
                raise NotGzipError(f"{self._url} did not send a gzip file but {kind} "
                                   "(an error or rate-limit page, or a wrong NYC_TLC_BASE_URL?)")
        try:
            while chunk:
                self._inflate.decompress(chunk)
                chunk = self._inflate.unused_data if self._inflate.eof else b""
                if chunk:  # a multi-member gzip file: the next member
                    self._inflate = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)
        except isal_zlib.error as e:
            raise SourceError(f"download of {self._url} failed: the gzip data is corrupt ({e})") from None

    def finish(self) -> None:
        if not self._started:
            raise NotGzipError(f"{self._url} sent an empty body")
        if not self._inflate.eof:
            raise SourceError(f"download of {self._url} failed: the gzip stream ends early (truncated file)")


def version_from_headers(headers) -> str:
    """What identifies one edition of a release file: a digest of its ``ETag``, size and date.

    A file republished under the same name gets a new version, so a backfill reloads it.
    A digest, so that it is safe to write anywhere (object metadata, SQL literals).
    """
    identity = "|".join(headers.get(name, "") for name in ("ETag", "Content-Length", "Last-Modified"))
    return hashlib.sha256(identity.encode()).hexdigest()[:20]


def version_path(dest: Path) -> Path:
    """Where ``download`` records the version of the file it saved at ``dest``."""
    return dest.with_name(dest.name + ".version")


def downloaded_version(dest: Path) -> str | None:
    """The version of the download at ``dest``, if it was recorded."""
    try:
        return version_path(dest).read_text().strip() or None
    except FileNotFoundError:
        return None


def _explained(url: str, doing: str, e: Exception) -> Exception:
    """What urllib raised as a SourceError that says what failed (404: NotPublishedError), or as a
    ServiceUnreachableError if the server refused the connection or its name does not resolve.

    Raise it outside the ``except`` block, so that it does not carry urllib's exception as its
    context: fetch persists its failures, and once distributed is imported (Prefect loads the
    prefect-dask collection to read a cached result) exceptions are pickled with their context,
    which for an HTTPError holds an open socket and cannot be pickled."""
    reason = cannot_connect(e)
    if reason:
        parts = urllib.parse.urlsplit(url)
        return unreachable(SERVER, f"{parts.scheme}://{parts.netloc}", reason, SERVER_FIX)
    if isinstance(e, urllib.error.HTTPError):
        if e.code == 404:
            return NotPublishedError(
                f"{Path(url).name} is not published at {url} (HTTP 404): check the colour, year and month")
        return SourceError(f"{doing} {url} failed: the server answered HTTP {e.code} {e.reason}")
    reason = getattr(e, "reason", None) or e
    return SourceError(f"{doing} {url} failed: {type(e).__name__}: {reason}")


_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError)


def discard(dest: Path) -> None:
    """Remove a download and its recorded version (a bad file: the next attempt fetches again)."""
    dest.unlink(missing_ok=True)
    version_path(dest).unlink(missing_ok=True)


# A HEAD answered with these means "ask with GET": a pre-signed URL signed for GET only answers 403
# (GitHub's release downloads redirect to such URLs), other servers 405 or 501.
HEAD_REFUSED = (403, 405, 501)


def remote_version(url: str, *, timeout: float = CONNECT_TIMEOUT_S) -> str:
    """The version of ``url`` as published now: a HEAD request or, where the server refuses HEAD, a
    GET of the file's first byte (``Range: bytes=0-0``). Nothing more is downloaded."""
    failure = None
    try:
        return _published_version(url, "HEAD", timeout)
    except urllib.error.HTTPError as e:
        if e.code not in HEAD_REFUSED:
            failure = _explained(url, "checking", e)
    except _NETWORK_ERRORS as e:
        failure = _explained(url, "checking", e)
    if failure is None:
        try:
            return _published_version(url, "GET", timeout)
        except _NETWORK_ERRORS as e:
            failure = _explained(url, "checking", e)
    raise failure  # outside the except: see _explained


def _published_version(url: str, method: str, timeout: float) -> str:
    """``version_from_headers`` of what a HEAD, or a GET of the first byte, answers: the same as
    the whole file's GET answers (a 206's size is the total its ``Content-Range`` gives)."""
    headers = {"User-Agent": USER_AGENT, **({"Range": "bytes=0-0"} if method == "GET" else {})}
    request = urllib.request.Request(url, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # a 200 to the GET: closed unread
        found = {name: response.headers.get(name, "") for name in ("ETag", "Content-Length", "Last-Modified")}
        whole = re.fullmatch(r"bytes 0-0/(\d+)", response.headers.get("Content-Range", ""))
        if response.status == 206 and whole:
            found["Content-Length"] = whole[1]
    return version_from_headers(found)


def download(url: str, dest: Path, *, scratch: Path | None = None, timeout: float = READ_TIMEOUT_S,
             logger: logging.Logger | logging.LoggerAdapter = log) -> Path:
    """Stream ``url`` to ``dest`` and return ``dest``; record its version (``downloaded_version``).

    The body goes to a temporary file in ``scratch`` (default: beside ``dest``; on the same
    filesystem) that is renamed only once every byte announced by ``Content-Length`` has
    arrived and the gzip stream is whole, so ``dest`` is either absent or complete.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = (scratch or dest.parent) / f".{dest.name}.{uuid.uuid4().hex[:8]}.part"
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    total, failure, full = None, None, False
    try:
        check = _GzipCheck(url)
        with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as out:
            expected = response.headers.get("Content-Length")
            total = int(expected) if expected and expected.isdigit() else None
            received = _copy_with_progress(response, out, url, total, logger, check)
        if total is not None and received != total:
            raise SourceError(f"download of {url} failed: connection closed after {received:,} of {total:,} bytes")
        check.finish()
        os.replace(part, dest)
        # After the data: a stale version on new data only makes a backfill load the month again.
        part.write_text(version_from_headers(response.headers))
        os.replace(part, version_path(dest))
    except _NETWORK_ERRORS as e:
        full = is_disk_full(e)
        failure = None if full else _explained(url, "download of", e)
    finally:
        part.unlink(missing_ok=True)
    if full:  # once the partial file is gone, so that the space it says is free is
        raise disk_full(dest.parent, total)
    if failure:
        raise failure  # outside the except: see _explained
    return dest


def _copy_with_progress(response, out, url: str, total: int | None, logger, check: _GzipCheck) -> int:
    received = 0
    started = last_report = time.monotonic()
    while chunk := response.read(CHUNK):
        check.feed(chunk)
        out.write(chunk)
        received += len(chunk)
        now = time.monotonic()
        if now - last_report >= PROGRESS_EVERY_S:
            last_report = now
            of_total = f" of {total / 1e6:.1f} MB" if total else ""
            logger.info(f"downloading {Path(url).name}: {received / 1e6:.1f} MB{of_total} after {now - started:.0f} s")
    logger.info(f"downloaded {url}: {received / 1e6:.1f} MB in {time.monotonic() - started:.1f} s")
    return received

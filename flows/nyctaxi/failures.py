"""Failures that retrying does not mend, told in one line with their fix: a service that
cannot be reached, and a full disk.

A refused connection or a host name that does not resolve will not pass in the next few
seconds: the steps fail at once with ``ServiceUnreachableError`` naming the service, its
address and what to do, instead of retrying for minutes. Out of disk space, likewise, is
``DiskFullError`` naming the folder and the space needed; a BigQuery dataset in a location that
cannot read the bucket, ``LocationError``; BigQuery still refusing a job after a minute and a half
of trying it again, ``BigQueryBusyError``.
"""
from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

CONNECT_TIMEOUT_S = 10  # to open a connection to any service: a host that drops packets fails in this time
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
LOCAL_FIX = "start the local stack with `make stack`, then `source .stack/env` in this shell"
DATA_DIR_FIX = "free some space there, or set NYC_TLC_DATA_DIR to a folder on a larger disk"

# What refused connections and unresolvable names look like, across urllib, requests, the Google
# clients and psycopg2 (some wrap the socket error, some only quote it).
_REFUSED = ("connection refused", "[errno 111]", "[errno 61]")
_NO_NAME = ("name or service not known", "nodename nor servname", "temporary failure in name resolution",
            "could not translate host name", "getaddrinfo failed", "[errno -2]", "[errno -3]", "[errno 8]")


class ServiceUnreachableError(RuntimeError):
    """A service (the release server, the bucket, BigQuery, PostgreSQL) refused the connection or
    its host name does not resolve."""


class DiskFullError(OSError):
    """The data root's disk is full."""


class BigQueryBusyError(RuntimeError):
    """BigQuery kept refusing a job for reasons that usually pass (rate limits, concurrent updates)
    for as long as the job was tried again (``bigquery.run_job``)."""


class LocationError(RuntimeError):
    """The BigQuery dataset cannot read the bucket's objects: a ``gs://`` load stays within a location."""


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps: causes, contexts, ``reason``/``cause`` attributes, exceptions in its args."""
    seen, todo = set(), [error]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        linked = [e.__cause__, e.__context__, getattr(e, "reason", None), getattr(e, "cause", None),
                  getattr(e, "last_exc", None), *getattr(e, "args", ())]
        todo += [x for x in linked if isinstance(x, BaseException)]


def cannot_connect(error: BaseException) -> str | None:
    """``"connection refused"``, ``"the host name does not resolve"`` (or PostgreSQL's ``"it is
    shutting down"``) if that is what ``error`` comes down to, else None."""
    for e in _chain(error):
        text = f"{type(e).__name__}: {e}".lower()
        if isinstance(e, ConnectionRefusedError) or any(s in text for s in _REFUSED):
            return "connection refused"
        if any(s in text for s in _NO_NAME):
            return "the host name does not resolve"
        if "the database system is shutting down" in text:  # PostgreSQL on its way out: refused in a moment
            return "it is shutting down"
    return None


def is_local(address: str) -> bool:
    """Whether ``address`` (a URL or ``host:port``) is on this machine: the local stack's services are."""
    host = urlparse(address if "//" in address else f"//{address}").hostname
    return host in LOCAL_HOSTS


def unreachable(service: str, address: str, reason: str, fix: str) -> ServiceUnreachableError:
    """The one-line error: what could not be reached, where, why, and what to do (locally: ``make stack``)."""
    return ServiceUnreachableError(f"cannot reach {service} at {address} ({reason}): "
                                   f"{LOCAL_FIX if is_local(address) else fix}")


def timed_out(error: BaseException) -> bool:
    """Whether ``error`` comes down to a request that got no answer in time (socket, urllib3, requests;
    libpq's connect timeout says "timeout expired")."""
    return any(isinstance(e, TimeoutError) or "timeout" in type(e).__name__.lower()
               or any(s in str(e).lower() for s in ("timed out", "timeout expired")) for e in _chain(error))


@contextmanager
def reaching(service: str, address: str, fix: str, frozen: bool = False) -> Iterator[None]:
    """Turn a refused connection or an unresolvable name inside the block into ``unreachable(...)``;
    with ``frozen=True``, a request that got no answer in time too (a frozen service)."""
    try:
        yield
        return
    except ServiceUnreachableError:
        raise
    except Exception as e:
        reason = cannot_connect(e)
        if reason is None and frozen and timed_out(e):
            reason = "no answer in time: frozen or overloaded"
        if reason is None:
            raise
    # Raised here, not in the except block, so that it carries none of the client's exceptions as
    # its context (they can hold sockets, and some runs pickle exceptions with their context).
    raise unreachable(service, address, reason, fix)


# The reasons Google gives for what may pass if asked again (google-cloud-bigquery's retry.py: its
# request reasons and its job reasons). BigQuery sends its rate limits as 403 rateLimitExceeded,
# which a retry by status code alone would not retry.
RETRYABLE_REASONS = frozenset({"rateLimitExceeded", "backendError", "internalError", "badGateway",
                               "jobRateLimitExceeded", "jobBackendError", "jobInternalError"})


def says(error: BaseException, text: str) -> bool:
    """Whether ``error``, or an error it wraps, says ``text`` (case-insensitive)."""
    return any(text.lower() in str(e).lower() for e in _chain(error))


def google_reason(error: BaseException) -> str | None:
    """The ``reason`` of the first Google API error in ``error``'s chain (``rateLimitExceeded``...)."""
    for e in _chain(error):
        errors = getattr(e, "errors", None)
        if errors and isinstance(errors, list | tuple) and isinstance(errors[0], dict) and errors[0].get("reason"):
            return errors[0]["reason"]
    return None


def google_retry(deadline_s: float = 60.0):
    """A retry for the Google clients' calls: what can pass (a 5xx, 429, a connection dropped
    mid-transfer, a reason in ``RETRYABLE_REASONS`` such as a 403 rateLimitExceeded) for
    ``deadline_s``; not a refused connection or an unresolvable name, which their default retry
    would retry for minutes."""
    from google.api_core.retry import Retry, if_transient_error

    def passing(e: BaseException) -> bool:
        return (if_transient_error(e) or google_reason(e) in RETRYABLE_REASONS) and not cannot_connect(e)

    return Retry(predicate=passing, deadline=deadline_s)


def bound_requests(session, timeout: tuple[float, float]) -> None:
    """Give every request of the ``requests`` session ``session`` that sets no timeout of its own
    ``timeout`` (to connect, to wait for each answer): the Google clients' calls set none by
    default, so a frozen service (its port open, nothing answers) would hold a step for ever."""
    from requests.adapters import HTTPAdapter

    bound = timeout

    class Bounded(HTTPAdapter):
        def send(self, request, timeout=None, **kwargs):
            return super().send(request, timeout=bound if timeout is None else timeout, **kwargs)

    for prefix in ("http://", "https://"):
        session.mount(prefix, Bounded())


def is_disk_full(error: BaseException) -> bool:
    return any(getattr(e, "errno", None) == errno.ENOSPC or "no space left on device" in str(e).lower()
               for e in _chain(error))


def disk_full(folder: Path, needed_bytes: int | None) -> DiskFullError:
    """The one-line error for a full disk: the folder, the space the file needs (when known), what is free."""
    # Measured where the folder is, or would be: the nearest folder above it that exists.
    free = shutil.disk_usage(next(p for p in (folder, *folder.parents) if p.exists())).free
    need = f"{needed_bytes / 1e6:,.1f} MB" if needed_bytes else "more space than that"
    return DiskFullError(errno.ENOSPC, f"no space left on the disk of {folder}: the file needs {need}, "
                                       f"{free / 1e6:,.1f} MB are free; {DATA_DIR_FIX}")


@contextmanager
def writing(folder: Path, needed_bytes: int | None) -> Iterator[None]:
    """Turn running out of disk space inside the block into ``disk_full(folder, needed_bytes)``."""
    try:
        yield
        return
    except DiskFullError:
        raise
    except Exception as e:
        if not is_disk_full(e):
            raise
    raise disk_full(folder, needed_bytes)  # outside the except block: see reaching

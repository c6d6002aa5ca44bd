"""BigQuery's rules that bqemulator does not keep, kept in front of its job handlers.

``stack/bq_emulator.py`` installs them in the emulator's process, so every client of the local
stack (the flows, the tests, the benchmark) meets them as it would meet Google:

1. **Transaction concurrency.** BigQuery runs one transaction that deletes or updates rows of a
   table at a time and cancels the others ("Multi-statement transactions", transaction
   concurrency): a job whose transaction mutates a table that an open transaction mutates fails
   with Google's error (reason ``invalidQuery``, "Transaction is aborted due to concurrent update
   against table ..."). The emulator runs a script in milliseconds, where BigQuery takes seconds:
   each transaction is held open for at least ``NYC_TLC_BQ_TRANSACTION_S`` (1 s) first, the window
   in which another one collides with it.
2. **Table update rate.** At most 5 jobs that write to a table (load jobs, DML) per 10 s
   ("Quotas and limits": table metadata update operations); the next fails with Google's
   ``rateLimitExceeded`` ("Exceeded rate limits: too many table update operations for this table").
3. **Locations of a ``gs://`` load.** A load job reads a bucket only from a dataset in the US
   multi-region, in the bucket's region, or in the multi-region holding it ("Loading Parquet data
   from Cloud Storage"); else it fails with reason ``invalid``, "Cannot read and write in different
   locations: source: <bucket's>, destination: <dataset's>". The buckets' locations are the GCS
   emulator's (its ``.meta`` file beside the objects the emulator reads).

Not kept (docs/local-stack.md): DML outside transactions queued behind them, API calls counted
against the update rate (tables.insert/patch/delete), quotas per day or project.
"""
from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from nyctaxi.resources import seconds

UPDATES_PER_TABLE, UPDATE_WINDOW_S = 5, 10.0
# A table named in a statement: `project.dataset.table` (backquoted, as this project writes them) or bare.
_NAME = r"`([^`]+)`|([A-Za-z0-9_.-]+)"
_MUTATING = re.compile(rf"\b(?:DELETE\s+(?:FROM\s+)?|UPDATE\s+|MERGE\s+(?:INTO\s+)?)(?:{_NAME})", re.I)
_WRITING = re.compile(rf"\bINSERT\s+(?:INTO\s+)?(?:{_NAME})", re.I)
_TRANSACTION = re.compile(r"\bBEGIN(?:\s+TRANSACTION)?\s*;", re.I)


def _tables(pattern: re.Pattern, sql: str, project: str) -> set[str]:
    names = {(m[1] or m[2]) for m in pattern.finditer(sql)}
    return {name if name.count(".") == 2 else f"{project}.{name}" for name in names}


class Aborted(Exception):
    """A transaction cancelled for another's update of a table it mutates (Google's message)."""


class Rules:
    """The open transactions' tables and each table's recent updates (one emulator process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}  # table -> the open transaction mutating it
        self._updates: dict[str, deque[float]] = defaultdict(deque)

    def open(self, project: str, sql: str) -> str | None:
        """Open the transaction of ``sql`` (if it is one that mutates tables): its id. ``Aborted`` if a
        table it mutates is held by another open one."""
        if not _TRANSACTION.search(sql):
            return None
        mutated = _tables(_MUTATING, sql, project)
        if not mutated:
            return None
        with self._lock:
            busy = sorted(t for t in mutated if t in self._held)
            if busy:
                p, d, t = busy[0].split(".")
                raise Aborted(f"Transaction is aborted due to concurrent update against table {p}:{d}.{t}. "
                              f"Transaction ID: {uuid.uuid4()}")
            txn = str(uuid.uuid4())
            self._held.update(dict.fromkeys(mutated, txn))
            return txn

    def close(self, txn: str) -> None:
        with self._lock:
            for table in [t for t, holder in self._held.items() if holder == txn]:
                del self._held[table]

    def update(self, tables: set[str]) -> str | None:
        """Count one update of each of ``tables`` now: an error message if one is over the rate."""
        now = time.monotonic()
        with self._lock:
            for table in tables:
                recent = self._updates[table]
                while recent and recent[0] <= now - UPDATE_WINDOW_S:
                    recent.popleft()
                if len(recent) >= UPDATES_PER_TABLE:
                    return ("Exceeded rate limits: too many table update operations for this table. For more "
                            "information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas")
            for table in tables:
                self._updates[table].append(now)
        return None


RULES = Rules()


def bucket_location(gcs_root: Path | None, bucket: str) -> str:
    """A bucket's location, as the stack's GCS emulator keeps it under ``gcs_root`` (``US`` by default)."""
    meta = Path(gcs_root or "") / ".meta"
    buckets = json.loads(meta.read_text()).get("buckets", {}) if meta.is_file() else {}
    return (buckets.get(bucket) or {}).get("location") or "US"


def readable(dataset_location: str, bucket_location: str) -> bool:
    """Google's rule for a load job reading a bucket (the stand-in's own copy, not the product's)."""
    dataset, bucket = dataset_location.upper(), bucket_location.upper()
    return dataset in ("US", bucket) or (dataset == "EU" and bucket.startswith("EUROPE-"))


def install() -> None:
    """Put the rules in front of bqemulator's query and load jobs (its routes' references to them)."""
    import bqemulator.api.routes.jobs as jobs
    import bqemulator.api.routes.upload as upload
    from bqemulator.domain.errors import InvalidQueryError

    class RateLimitExceeded(InvalidQueryError):  # reported as a job's error, as Google does
        http_status = 403
        bq_reason = "rateLimitExceeded"

    run_query, run_load = jobs.execute_query_job, jobs.execute_load_job

    async def query_job(project_id: str, job_id: str, bq_sql: str, *args: Any, **kwargs: Any):
        try:
            txn = RULES.open(project_id, bq_sql)
        except Aborted as e:
            raise InvalidQueryError(str(e)) from None
        try:
            if txn is not None:
                await asyncio.sleep(seconds("NYC_TLC_BQ_TRANSACTION_S"))  # BigQuery's transactions take seconds
            written = _tables(_MUTATING, bq_sql, project_id) | _tables(_WRITING, bq_sql, project_id)
            if written and (refused := RULES.update(written)):
                raise RateLimitExceeded(refused)
            return await run_query(project_id, job_id, bq_sql, *args, **kwargs)
        finally:
            if txn is not None:
                RULES.close(txn)

    async def load_job(project_id: str, job_id: str, config: dict[str, Any], ctx: Any, *args: Any, **kwargs: Any):
        dest = config.get("load", {}).get("destinationTable", {})
        table = f"{dest.get('projectId', project_id)}.{dest.get('datasetId')}.{dest.get('tableId')}"
        refused = None
        for uri in config.get("load", {}).get("sourceUris", []):
            if uri.startswith("gs://"):
                source = bucket_location(ctx.settings.gcs_local_root, uri[5:].split("/", 1)[0])
                dataset = ctx.catalog.get_dataset(dest.get("projectId", project_id), dest.get("datasetId"))
                if dataset is not None and not readable(dataset.location, source):
                    refused = {"reason": "invalid", "message": "Cannot read and write in different locations: "
                               f"source: {source}, destination: {dataset.location}"}
        if refused is None and (limited := RULES.update({table})):
            refused = {"reason": "rateLimitExceeded", "message": limited}
        if refused:
            return jobs._failed_job_meta(project_id=project_id, job_id=job_id, job_type="LOAD", config=config,
                                         error_result=refused, now=ctx.clock.now())
        return await run_load(project_id, job_id, config, ctx, *args, **kwargs)

    jobs.execute_query_job = query_job
    jobs.execute_load_job = upload.execute_load_job = load_job

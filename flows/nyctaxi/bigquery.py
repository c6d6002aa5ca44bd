"""Loading a month into BigQuery: through a staging table, then swapped in by one transaction.

Every way in lands the month in a fresh staging table with the declared schema: a load
job of the local parquet file, uploaded in bounded chunks (what pandas-gbq does under
its ``to_gbq``, without turning the file into DataFrames and back); pandas-gbq itself
(the course's way, a few parquet row groups at a time, so memory stays bounded); or a
load job from the ``gs://`` object (no data through this machine). One multi-statement
transaction then deletes the month's rows from the colour's table and inserts the staged
ones, tagged with the lineage column ``source_file``: readers see the old month or the new
one, a run killed before the swap leaves the table untouched, and re-running never
duplicates.

Each job (a load, the swap) is run again when BigQuery answers that it may pass (``run_job``):
a rate limit, a backend error, or a transaction cancelled because another one was changing the
same table (BigQuery runs one transaction that deletes from a table at a time, and cancels the
others: two months swapping at once, of one colour or of two, since both record their load in
``nyc_tlc_loads``). A failed job changed nothing, so running it again is safe.
"""
from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pyarrow.parquet as pq
from google.api_core.exceptions import NotFound
from google.cloud import bigquery
from google.cloud.bigquery import client as library

from . import failures
from .gcs import UPLOAD_CHUNK_BYTES, ReadWithProgress
from .resources import DATASET, LOADS_TABLE, setting, table_name
from .schema import COLUMNS, LINEAGE_COLUMN, SchemaError
from .shrink import check_replacement

log = logging.getLogger(__name__)
T = TypeVar("T")

SERVICE = "BigQuery"
ENDPOINT = "https://bigquery.googleapis.com"
# Every call of ours retries what can pass for a minute, not a refused connection (the client's
# default retries that for ten); pandas-gbq's own calls keep the client's defaults.
RETRY = failures.google_retry()
# Naive wall-clock times (the TLC's are New York local time): DATETIME, as parquet says.
BQ_TYPES = {"int": "INT64", "float": "FLOAT64", "timestamp": "DATETIME", "string": "STRING"}
# The API reports legacy names for some types.
_SAME_TYPE = {"INTEGER": "INT64", "FLOAT": "FLOAT64"}
STAGING_TTL = timedelta(days=1)
# Rows per pandas-gbq call: each call is a load job with a fixed cost, and a DataFrame in memory;
# more rows a call is faster and heavier (the trade measured: bench/README.md).
PANDAS_GBQ_ROWS = 128 * 1024
# A job BigQuery may accept if asked again: tried this many times, waiting 1, 2, 4... s (at most 30,
# with jitter, so that two loads that collided do not collide again): about 90 s in all.
JOB_ATTEMPTS = 8
JOB_RETRY_FIRST_S, JOB_RETRY_MAX_S = 1.0, 30.0
# Retries of one chunk of an upload, waiting 1, 2, 4 s: the library's 6 wait a minute in silence
# before a BigQuery that went away is told (run_job and the task's retries run the load again).
UPLOAD_RETRIES = 3
# What BigQuery says when it cancels a transaction (or a DML statement) for another's update of a table.
CONCURRENT_UPDATE = "due to concurrent update"
_SOURCE_FILE = re.compile(r"^[a-z]+_tripdata_(\d{4})-(\d{2})\.csv\.gz$")
# The colour tables are partitioned by month on this DATE column (the source file's month), so that
# a month's DELETE and counts read that month, not the table: DML is billed by the bytes of the
# partitions it scans, and an unpartitioned table's whole bytes on every reload.
PARTITION_COLUMN = "source_month"
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_VERSION = re.compile(r"^[0-9a-f]{1,64}$")
# One row per month loaded: which edition of the release file each table holds.
LOADS_SCHEMA = [bigquery.SchemaField("table_name", "STRING"), bigquery.SchemaField("source_file", "STRING"),
                bigquery.SchemaField("source_version", "STRING"), bigquery.SchemaField("rows", "INT64"),
                bigquery.SchemaField("loaded_at", "TIMESTAMP")]


def address() -> str:
    """Where BigQuery is served: the emulator the environment names, or Google's endpoint."""
    return setting("BIGQUERY_EMULATOR_HOST") or ENDPOINT


def reaching(fix: str):
    """``failures.reaching`` for BigQuery's endpoint (a request with no answer in time: frozen)."""
    return failures.reaching(SERVICE, address(), fix, frozen=True)


def schema(color: str, lineage: bool = True) -> list[bigquery.SchemaField]:
    """The declared schema as BigQuery columns, in file order, plus the lineage columns last: the
    source file, and its month (``PARTITION_COLUMN``)."""
    fields = [bigquery.SchemaField(name, BQ_TYPES[kind]) for name, kind in COLUMNS[color]]
    if lineage:
        fields += [bigquery.SchemaField(LINEAGE_COLUMN, "STRING"), bigquery.SchemaField(PARTITION_COLUMN, "DATE")]
    return fields


def partitioning() -> bigquery.TimePartitioning:
    """The colour tables' partitioning: a month per partition, by the source file's month."""
    return bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.MONTH, field=PARTITION_COLUMN)


def source_month(source_file: str) -> str:
    """The first day of ``source_file``'s month, as a SQL literal: ``DATE '2021-01-01'``."""
    _literal(source_file)  # a release file's name, or ValueError
    year, month = _SOURCE_FILE.match(source_file).groups()
    return f"DATE '{year}-{month}-01'"


def _month_rows(source_file: str) -> str:
    """The condition that picks ``source_file``'s rows, reading only its month's partition."""
    return f"{PARTITION_COLUMN} = {source_month(source_file)} AND {LINEAGE_COLUMN} = {_literal(source_file)}"


def can_load(dataset_location: str, bucket_location: str) -> bool:
    """Whether a load job into a dataset in ``dataset_location`` may read a bucket in ``bucket_location``
    (BigQuery's rule, "Loading Parquet data from Cloud Storage": a dataset in the US multi-region
    reads any bucket; any other, only a bucket in its own region, or within its multi-region)."""
    dataset, bucket = dataset_location.upper(), bucket_location.upper()
    if dataset == "US" or dataset == bucket:
        return True
    return dataset == "EU" and bucket.startswith("EUROPE-")


def dataset_location(bucket_location: str | None) -> str | None:
    """Where a missing dataset is made: ``NYC_TLC_BQ_LOCATION``, else the lake bucket's location (a
    ``gs://`` load reads only within a location), else (None) BigQuery's default, US."""
    return setting("NYC_TLC_BQ_LOCATION") or bucket_location


def ensure_dataset(client: bigquery.Client, dataset: str = DATASET,
                   location: Callable[[], str | None] | None = None) -> tuple[bigquery.Dataset, bool]:
    """The dataset, made in ``location()`` (asked only then; None: BigQuery's default, US) if it is
    missing; and whether this call made it."""
    try:
        return client.get_dataset(f"{client.project}.{dataset}", retry=RETRY), False
    except NotFound:
        made = bigquery.Dataset(f"{client.project}.{dataset}")
        if where := (location and location()):
            made.location = where
        return client.create_dataset(made, exists_ok=True, retry=RETRY), True  # another run may make it first


def ensure_table(client: bigquery.Client, color: str, dataset: str = DATASET, *,
                 location: Callable[[], str | None] | None = None, reads_from: tuple[str, str] | None = None) -> str:
    """Create the dataset (in ``location()``, asked only then; None: BigQuery's default, US) and the
    colour's table if missing; return the table id.

    ``reads_from``: (bucket, its location) when the month is loaded from that bucket's ``gs://``
    object: a dataset that cannot read it (``can_load``) is refused in one line, before any job.
    An existing table must have exactly the declared columns and types, in order
    (BigQuery loads match parquet columns by position on some back ends).
    """
    have_dataset, _ = ensure_dataset(client, dataset, location)
    if reads_from and have_dataset.location and not can_load(have_dataset.location, reads_from[1]):
        bucket, bucket_location = reads_from
        raise failures.LocationError(
            f"BigQuery dataset {client.project}.{dataset} is in {have_dataset.location} and the bucket {bucket} in "
            f"{bucket_location}: BigQuery loads gs:// objects only into a dataset in the bucket's location (or in US). "
            f"Make the dataset again in {bucket_location} (bq rm -r -d {client.project}:{dataset}, then run this "
            "again: it is made in the bucket's location), or load from the local copy (no --load-job)")
    client.create_table(bigquery.Table(f"{client.project}.{dataset}.{LOADS_TABLE}", schema=LOADS_SCHEMA),
                        exists_ok=True, retry=RETRY)
    table_id = f"{client.project}.{dataset}.{table_name(color)}"
    made = bigquery.Table(table_id, schema=schema(color))
    made.time_partitioning = partitioning()
    table = client.create_table(made, exists_ok=True, retry=RETRY)
    check_table(table, color)
    return table_id


def check_table(table: bigquery.Table, color: str) -> None:
    """Refuse a colour table without the declared columns and types, in order, or not partitioned by
    month; one made by an earlier version of this project with the command that brings it up to date."""
    have, want = _columns(table.schema), _columns(schema(color))
    by_month = table.time_partitioning is not None and table.time_partitioning.field == PARTITION_COLUMN and \
        table.time_partitioning.type_ == bigquery.TimePartitioningType.MONTH
    if have == want[:-1] and not by_month:
        raise SchemaError(f"table {table.full_table_id or table.table_id} was made by an earlier version of this "
                          f"project, without partitions: run `python flows/partition_bq_tables.py --color {color}` "
                          "once (it makes it again partitioned by month, every row kept), then load again")
    if have != want or not by_month:
        raise SchemaError(f"table {table.full_table_id or table.table_id} does not have the declared {color} schema "
                          f"partitioned by month on {PARTITION_COLUMN}: it has {have}, expected {want}. "
                          "Drop it or load into another dataset")


def _columns(fields: list[bigquery.SchemaField]) -> list[tuple[str, str]]:
    """(name, type) of each column, in order, under the types' standard names."""
    return [(f.name, _SAME_TYPE.get(f.field_type, f.field_type)) for f in fields]


_STAGED_AT = re.compile(r"__staging_(\d{14})_[0-9a-f]{6}$")


def create_staging(client: bigquery.Client, table_id: str, color: str) -> str:
    """A fresh staging table beside ``table_id`` with the declared schema (no lineage).

    It expires after a day, so one left by a killed run goes away by itself on BigQuery; where
    expiry is not kept (bqemulator), ``drop_stale_staging`` drops it."""
    staging_id = f"{table_id}__staging_{datetime.now(UTC):%Y%m%d%H%M%S}_{uuid.uuid4().hex[:6]}"
    table = bigquery.Table(staging_id, schema=schema(color, lineage=False))
    table.expires = datetime.now(UTC) + STAGING_TTL
    client.create_table(table, retry=RETRY)
    return staging_id


def stage_with_pandas_gbq(parquet: Path, staging_id: str, client: bigquery.Client,
                          logger: logging.Logger | logging.LoggerAdapter = log) -> int:
    """Append the parquet file to the staging table with pandas-gbq, a few row groups
    (``PANDAS_GBQ_ROWS``) at a time, through ``client`` (its project and credentials)."""
    import pandas_gbq

    parquet_file = pq.ParquetFile(parquet)
    destination = staging_id.split(".", 1)[1]  # dataset.table; the project is passed apart
    rows, started = 0, time.monotonic()
    for groups in _row_group_runs(parquet_file.metadata, PANDAS_GBQ_ROWS):
        frame = parquet_file.read_row_groups(groups).to_pandas()
        # One client for every call: pandas-gbq would otherwise make a new one each time.
        # BigQuery takes 5 updates of a table per 10 s: each call is one, so some may be refused for a while.
        run_job(f"pandas-gbq's load of rows {rows + 1:,}-{rows + len(frame):,}", lambda frame=frame: pandas_gbq.to_gbq(
            frame, destination, bigquery_client=client, if_exists="append", progress_bar=False), logger)
        rows += len(frame)
        logger.info(f"pandas-gbq: {rows:,} of {parquet_file.metadata.num_rows:,} rows staged "
                    f"after {time.monotonic() - started:.0f} s")
    return rows


def _row_group_runs(metadata: pq.FileMetaData, rows: int) -> list[list[int]]:
    """Consecutive row groups in runs of at least ``rows`` rows (the last run may be shorter)."""
    runs: list[list[int]] = [[]]
    in_run = 0
    for i in range(metadata.num_row_groups):
        if in_run >= rows:
            runs.append([])
            in_run = 0
        runs[-1].append(i)
        in_run += metadata.row_group(i).num_rows
    return [run for run in runs if run]


def stage_with_load_file(client: bigquery.Client, parquet: Path, staging_id: str, color: str,
                         logger: logging.Logger | logging.LoggerAdapter = log) -> int:
    """Upload the parquet file into the staging table as one load job, ``UPLOAD_CHUNK_BYTES`` at a time."""
    # google-cloud-bigquery takes a resumable upload's chunk from a module constant, not an
    # argument: 100 MiB, each held in memory (a 7.83 M-row month's file is 224 MB).
    library._DEFAULT_CHUNKSIZE = min(library._DEFAULT_CHUNKSIZE, UPLOAD_CHUNK_BYTES)
    started = time.monotonic()
    logger.info(f"load job: uploading {parquet.stat().st_size / 1e6:,.0f} MB of parquet")

    def upload_and_load():  # the whole file each time: a failed load job appended nothing
        with parquet.open("rb") as file:
            job = client.load_table_from_file(ReadWithProgress(file, "load job", logger), staging_id,
                                              job_config=_load_config(color), num_retries=UPLOAD_RETRIES)
        job.result(retry=RETRY)

    run_job(f"the load job of {parquet.name}", upload_and_load, logger)
    rows = count(client, staging_id)
    logger.info(f"load job: {rows:,} rows staged after {time.monotonic() - started:.0f} s")
    return rows


def stage_with_load_job(client: bigquery.Client, uri: str, staging_id: str, color: str) -> int:
    """Load the ``gs://`` parquet object into the staging table with a load job."""
    run_job(f"the load job of {uri}", lambda: client.load_table_from_uri(
        uri, staging_id, job_config=_load_config(color), retry=RETRY).result(retry=RETRY))
    return count(client, staging_id)


def _load_config(color: str) -> bigquery.LoadJobConfig:
    """A load job appending parquet with the declared schema (no lineage) to a staging table."""
    return bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET, schema=schema(color, lineage=False),
                                  write_disposition=bigquery.WriteDisposition.WRITE_APPEND)


def run_job(what: str, attempt: Callable[[], T], logger: logging.Logger | logging.LoggerAdapter = log) -> T:
    """``attempt()`` (one job, started and waited for), again while BigQuery answers that it may pass
    (``failures.RETRYABLE_REASONS``, or a concurrent update of a table): up to ``JOB_ATTEMPTS`` times,
    each wait logged; then ``failures.BigQueryBusyError`` in one line. A failed job changed nothing."""
    started = time.monotonic()
    for n in range(1, JOB_ATTEMPTS + 1):
        try:
            return attempt()
        except Exception as e:
            why = _may_pass(e)
            if why is None:
                raise
            if n == JOB_ATTEMPTS:
                raise failures.BigQueryBusyError(
                    f"BigQuery refused {what} {n} times in {time.monotonic() - started:.0f} s ({why}: "
                    f"{str(e).splitlines()[0][:300]}): run the flow again later (a month is replaced whole, "
                    "never doubled)") from None
            wait_s = min(JOB_RETRY_MAX_S, JOB_RETRY_FIRST_S * 2 ** (n - 1)) * random.uniform(1.0, 1.5)
            logger.info(f"{what}: BigQuery answered {why}; trying again in {wait_s:.1f} s "
                        f"(attempt {n + 1} of {JOB_ATTEMPTS})")
            time.sleep(wait_s)
    raise AssertionError("unreachable")


def _may_pass(error: BaseException) -> str | None:
    """Why BigQuery may take ``error``'s job if asked again, or None."""
    reason = failures.google_reason(error)
    if reason in failures.RETRYABLE_REASONS:
        return reason
    if failures.says(error, CONCURRENT_UPDATE):
        return "another load was changing the same table"
    return None


def swap_in(client: bigquery.Client, table_id: str, staging_id: str, color: str, source_file: str,
                  source_version: str | None = None, *, logger: logging.Logger | logging.LoggerAdapter = log) -> int:
    """Swap the staged rows in for the month's rows and record the load (``nyc_tlc_loads``),
    in one transaction; return the month's rows."""
    cols = ", ".join(f"`{name}`" for name, _ in COLUMNS[color])
    source, month = _literal(source_file), source_month(source_file)
    version = _literal(source_version, _VERSION) if source_version else "NULL"
    loads_id = f"{table_id.rsplit('.', 1)[0]}.{LOADS_TABLE}"
    name = _literal(table_id.rsplit(".", 1)[1], _TABLE)
    script = f"""
        BEGIN TRANSACTION;
        DELETE FROM `{table_id}` WHERE {_month_rows(source_file)};
        INSERT INTO `{table_id}` ({cols}, {LINEAGE_COLUMN}, {PARTITION_COLUMN})
            SELECT {cols}, {source}, {month} FROM `{staging_id}`;
        DELETE FROM `{loads_id}` WHERE table_name = {name} AND source_file = {source};
        INSERT INTO `{loads_id}` (table_name, source_file, source_version, `rows`, loaded_at)
            SELECT {name}, {source}, {version}, COUNT(*), CURRENT_TIMESTAMP() FROM `{staging_id}`;
        COMMIT TRANSACTION;
    """
    # job_retry=None: run_job runs the swap again, logged and bounded (the client's own job retry
    # would re-run it silently for up to 40 minutes on a rate limit).
    run_job(f"the swap of {source_file}",
            lambda: client.query(script, retry=RETRY, job_retry=None).result(retry=RETRY), logger)
    rows = count(client, table_id, source_file)
    logger.info(f"replaced {source_file} in {table_id}: {rows:,} rows")
    return rows


def replace_month(client: bigquery.Client, color: str, source_file: str, stage: Callable[[str], int],
               source_version: str | None = None, *, allow_shrink: bool = False,
               location: Callable[[], str | None] | None = None, reads_from: tuple[str, str] | None = None,
               logger: logging.Logger | logging.LoggerAdapter = log) -> int:
    """Make sure the colour's table exists (``ensure_table``: ``location``, ``reads_from``),
    ``stage(staging_id)`` the month (it returns the rows staged), swap it in; return its rows.

    A month with no rows, or far fewer than the table holds of it, is refused before the swap
    (``shrink.check_replacement``) unless ``allow_shrink``. The staging table is dropped whatever happens."""
    table_id = ensure_table(client, color, location=location, reads_from=reads_from)
    drop_stale_staging(client, table_id, logger)
    staging_id = create_staging(client, table_id, color)
    try:
        staged = stage(staging_id)
        check_replacement(f"BigQuery table {table_id}", source_file, staged, count(client, table_id, source_file),
                          allow_shrink=allow_shrink)
        return swap_in(client, table_id, staging_id, color, source_file, source_version, logger=logger)
    finally:
        drop(client, staging_id)


def drop_stale_staging(client: bigquery.Client, table_id: str,
                       logger: logging.Logger | logging.LoggerAdapter = log) -> None:
    """Drop the staging tables of ``table_id`` made more than ``STAGING_TTL`` ago (by the time in
    their name): a run killed with its BigQuery (or its machine) could not drop its own, and an
    emulator may keep a table past its expiry."""
    dataset_id, name = table_id.rsplit(".", 1)
    stale = datetime.now(UTC) - STAGING_TTL
    for item in client.list_tables(dataset_id, retry=RETRY):
        made = _STAGED_AT.search(item.table_id) if item.table_id.startswith(f"{name}__staging_") else None
        if made and datetime.strptime(made[1], "%Y%m%d%H%M%S").replace(tzinfo=UTC) < stale:
            drop(client, f"{dataset_id}.{item.table_id}")
            logger.info(f"dropped {item.table_id}, a staging table left by a run that could not drop it")


def count(client: bigquery.Client, table_id: str, source_file: str | None = None) -> int:
    """Rows of a table (of one source file): COUNT(*), as table metadata lags behind DML."""
    where = f"WHERE {_month_rows(source_file)}" if source_file else ""
    return next(iter(client.query(f"SELECT COUNT(*) FROM `{table_id}` {where}", retry=RETRY).result(retry=RETRY)))[0]


def loaded_versions(client: bigquery.Client, color: str, dataset: str = DATASET) -> dict[str, str | None]:
    """``{source_file: source_version}`` of the months loaded into the colour's table."""
    loads_id = f"{client.project}.{dataset}.{LOADS_TABLE}"
    try:
        client.get_table(loads_id, retry=RETRY)
    except NotFound:
        return {}
    name = _literal(table_name(color), _TABLE)
    rows = client.query(f"SELECT source_file, source_version FROM `{loads_id}` WHERE table_name = {name}",
                        retry=RETRY).result(retry=RETRY)
    return {row[0]: row[1] for row in rows}


def _literal(value: str, pattern: re.Pattern = _SOURCE_FILE) -> str:
    """A release file name (or a version digest, a table name) as a SQL string literal. Checked,
    not escaped: query parameters would be better, but the emulator does not take them in
    multi-statement scripts."""
    if not pattern.match(value):
        raise ValueError(f"{value!r} is not a valid value here (expected to match {pattern.pattern})")
    return f"'{value}'"


def drop(client: bigquery.Client, table_id: str) -> None:
    client.delete_table(table_id, not_found_ok=True, retry=RETRY)


def _table_or_none(client: bigquery.Client, table_id: str) -> bigquery.Table | None:
    try:
        return client.get_table(table_id, retry=RETRY)
    except NotFound:
        return None


def partition_by_month(client: bigquery.Client, color: str, dataset: str = DATASET,
                       logger: logging.Logger | logging.LoggerAdapter = log) -> str:
    """Make the colour's table of an earlier version (no partitions, no ``PARTITION_COLUMN``) again,
    partitioned by month, every row kept; return what was done.

    The rows are copied into a new table (``<table>__by_month``) and counted there before the old
    table is dropped; the new one then takes the old name (a copy job: no bytes billed). Stopped
    half-way, it finishes the job when run again: until the drop the old table holds every row,
    after it the new one does."""
    table_id = f"{client.project}.{dataset}.{table_name(color)}"
    new_id = f"{table_id}__by_month"
    old, new = _table_or_none(client, table_id), _table_or_none(client, new_id)
    if old is None and new is None:
        return f"{table_id}: none yet (a load makes it partitioned)"
    if old is not None and old.time_partitioning is not None:
        check_table(old, color)
        drop(client, new_id)
        return f"{table_id}: partitioned by month already"
    if old is not None:
        have = _columns(old.schema)
        if have != _columns(schema(color))[:-1]:
            raise SchemaError(f"table {table_id} does not have the {color} columns of an earlier version of this "
                              f"project: it has {have}; left as it is")
        drop(client, new_id)  # a copy an interrupted run left: the old table still holds every row
        made = bigquery.Table(new_id, schema=schema(color))
        made.time_partitioning = partitioning()
        client.create_table(made, retry=RETRY)
        cols = ", ".join(f"`{name}`" for name, _ in COLUMNS[color])
        rows = count(client, table_id)
        logger.info(f"{table_id}: copying {rows:,} rows into {new_id}, partitioned by month")
        # The month from the name (<colour>_tripdata_YYYY-MM.csv.gz) by position: REGEXP_EXTRACT's group
        # would say it better, but bqemulator returns the whole match.
        month = f"PARSE_DATE('%Y-%m', SUBSTR({LINEAGE_COLUMN}, LENGTH({LINEAGE_COLUMN}) - 13, 7))"
        run_job(f"the copy of {table_id}", lambda: client.query(
            f"INSERT INTO `{new_id}` ({cols}, {LINEAGE_COLUMN}, {PARTITION_COLUMN}) "
            f"SELECT {cols}, {LINEAGE_COLUMN}, {month} FROM `{table_id}`", retry=RETRY, job_retry=None
        ).result(retry=RETRY), logger)
        copied = count(client, new_id)
        if copied != rows:
            raise RuntimeError(f"{new_id} holds {copied:,} rows of the {rows:,} of {table_id}, which is left as it "
                               "is: run this again")
        client.delete_table(table_id, retry=RETRY)
    else:  # an interrupted run dropped the old table: the new one holds every row
        rows = count(client, new_id)
    logger.info(f"{table_id}: {new_id} ({rows:,} rows) takes its name")
    client.copy_table(new_id, table_id, retry=RETRY).result(retry=RETRY)
    if count(client, table_id) != rows:
        raise RuntimeError(f"the copy of {new_id} into {table_id} lost rows; {new_id} is kept: run this again")
    drop(client, new_id)
    return f"{table_id}: made again partitioned by month, {rows:,} rows"

"""The course's tasks: thin Prefect wrappers over the plain functions in ``nyctaxi``."""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from prefect import get_run_logger, task
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.loggers import task_run_logger
from prefect.settings import PREFECT_LOCAL_STORAGE_PATH
from prefect.utilities.hashing import hash_objects

from artifacts import record_profile

# prefect_gcp, prefect_sqlalchemy, nyctaxi.gcs and nyctaxi.bigquery are imported only where they are
# used (the blocks' loaders in nyctaxi.resources, inside the tasks): importing prefect_gcp loads all
# of it (Cloud Storage, BigQuery, pandas, Vertex AI, Cloud Run), which only the BigQuery steps need
# (the bucket's steps read the zoom-gcs block as a document; the flows' peak memory: bench/README.md).
from nyctaxi import lake, postgres
from nyctaxi.convert import SourceDataError, csv_gz_to_parquet, fill_missing, passenger_counts
from nyctaxi.dataset import ParameterError, TaxiMonth, source_file_of
from nyctaxi.failures import BigQueryBusyError, DiskFullError, LocationError, ServiceUnreachableError, writing
from nyctaxi.profile import profile
from nyctaxi.resources import (
    BIGQUERY_FIX,
    BIGQUERY_LOADS,
    GCS_FIX,
    POSTGRES_LOADS,
    GcsBlock,
    bigquery_client,
    bucket_key,
    gcs_bucket,
    lake_bucket,
    postgres_connection,
    retry_delays,
)
from nyctaxi.schema import SchemaError, kinds
from nyctaxi.shrink import ShrinkError, check_replacement
from nyctaxi.source import (
    NotGzipError,
    NotPublishedError,
    SourceError,
    discard,
    download,
    downloaded_version,
    remote_version,
)

LOAD_SLOT_TIMEOUT_S = 3600
SLOT_WAIT_WARNING_S = 120


def cache_key_while_current(context: TaskRunContext, parameters: dict) -> str | None:
    """The course's ``task_input_hash`` cache, valid only while the cached file exists and the
    server still publishes the edition it holds.

    A cache hit returns a path, so it is offered only when that path exists in this
    process, and the key names this host and result store: a container never reuses a
    path (or a persisted result) that only another machine has (PrefectHQ/prefect#8637).
    The key also holds the edition published now (a HEAD request, ``remote_version``): a
    republished file is a new key, so it is downloaded afresh; if the server cannot be
    asked, the cached download is used, with a warning. A download a later step rejected
    was removed (``discard``), so it is never offered again.
    Like ``task_input_hash`` it hashes the task's code and inputs, but not the task key,
    which includes the code's file path: Prefect runs each Process deployment run from a
    new temporary copy of flows/, so that path never repeats and the cache would never hit.
    """
    url = parameters["dataset_url"]
    path = lake.raw_path(url)
    held = downloaded_version(path) if path.is_file() else None
    if held is None:
        return None
    logger = task_run_logger(context.task_run, task=context.task)
    try:
        published = remote_version(url)
    except NotPublishedError:
        return None  # no longer published: let fetch say so
    except (SourceError, ServiceUnreachableError) as e:
        logger.warning(f"could not ask whether {url} changed ({e}): using the download cached at {path}")
        published = held
    if published != held:
        logger.info(f"{url} was republished since it was cached: downloading the new edition")
        return None
    where = f"{socket.gethostname()}:{PREFECT_LOCAL_STORAGE_PATH.value()}:{path}"
    return hash_objects(context.task.name, context.task.fn.__code__.co_code.hex(), parameters, where, published)


# What the next attempt would meet again: a 404, a web page instead of the file, a file that does not
# fit the schema, a month refused as too small, a service that refuses connections, a full disk, a
# month not in the lake, a dataset in the wrong location, BigQuery refusing a job it was asked again for.
NOT_WORTH_RETRYING = (NotPublishedError, NotGzipError, ParameterError, SchemaError, ShrinkError,
                      ServiceUnreachableError, DiskFullError, lake.NotInLakeError, LocationError, BigQueryBusyError)


def worth_retrying(task, task_run, state) -> bool:
    """Retry network failures and broken transfers, not what the next attempt would meet again
    (``NOT_WORTH_RETRYING``)."""
    try:
        state.result()
    except NOT_WORTH_RETRYING:
        return False
    except Exception:
        return True
    return False


def retrying(retries: int) -> dict:
    """The steps' retry policy, as ``@task`` arguments: ``retries`` retries of what is worth it
    (``worth_retrying``), after 3, 6, 12 s (``resources.retry_delays``)."""
    return {"retries": retries, "retry_delay_seconds": retry_delays(retries), "retry_condition_fn": worth_retrying}


@task(
    **retrying(3),
    cache_key_fn=cache_key_while_current,
    cache_expiration=timedelta(days=1),
    persist_result=True,
)
def fetch(dataset_url: str) -> Path:
    """Download the taxi data from the web to a local csv.gz and return its path."""
    return download(dataset_url, lake.raw_path(dataset_url), scratch=lake.scratch_dir(), logger=get_run_logger())


def staging_path(name: str) -> Path:
    """A staging file of the flow run the calling step belongs to: the run removes what its steps
    staged and left when it ends (``run_hooks.drop_staged_files``)."""
    task_run = TaskRunContext.get()
    flow_run = FlowRunContext.get()
    run = task_run.task_run.flow_run_id if task_run else flow_run.flow_run.id if flow_run else None
    return lake.staging_path(name, run=str(run) if run else None)


@dataclass(frozen=True)
class Cleaned:
    """A month converted to the declared schema (in staging, or the lake file), and the download it came from."""

    path: Path
    rows: int
    source: Path


def drop_staged(inputs, error: BaseException | None) -> None:
    """What a failed step does with its inputs: staged files are removed (the lake's own files
    stay), and if it refused the month as too small, so is the download the month came from:
    a rejected download is never served again."""
    for value in inputs:
        path = value.path if isinstance(value, Cleaned) else value
        if isinstance(path, Path) and lake.is_staged(path):
            path.unlink(missing_ok=True)
        if isinstance(value, Cleaned) and isinstance(error, ShrinkError):
            discard(value.source)


def drop_staged_input(task, task_run, state) -> None:
    """``on_failure`` hook (it runs once a task has failed for the last time): ``drop_staged``
    of the task's parameters."""
    drop_staged(TaskRunContext.get().parameters.values(), state.result(raise_on_failure=False))


@task()
def clean(path: Path, color: str) -> Cleaned:
    """Fix the dtypes (the declared schema of ``color``) and report data quality."""
    logger = get_run_logger()
    taxi = TaxiMonth.of(path.name.split(".")[0])  # the download is <dataset_file>.<url hash>.csv.gz
    staged = staging_path(taxi.dataset_file)
    try:
        # The parquet file is about the size of the download: that is the space it needs.
        with writing(lake.data_root(), path.stat().st_size):
            report = csv_gz_to_parquet(path, staged, color, source_version=downloaded_version(path), logger=logger)
    except (SourceDataError, SchemaError):
        # The download itself is bad: drop it so that the next attempt fetches again.
        discard(path)
        raise
    if report.before and report.after:
        logger.info(f"pre: missing passenger count: {report.before.missing:,}, zero: {report.before.zero:,}")
        logger.info(
            f"post: missing passenger count: {report.after.missing:,}, zero: {report.after.zero:,} "
            "(kept as null and 0 in the lake: no fill)"
        )
    month = profile(staged, color, taxi.year, taxi.month)
    logger.info(f"profile: {month.rows:,} rows; pickups outside {taxi.year}-{taxi.month:02}: {month.outside_month:,} "
                "(the column profile and trips per day are in this run's artifacts)")
    record_profile(color, month)
    return Cleaned(staged, report.rows, path)


@task(on_failure=[drop_staged_input])
def write_local(cleaned: Cleaned, color: str, dataset_file: str, allow_shrink: bool = False) -> Path:
    """Write the cleaned month into the local lake as parquet, atomically (never a much smaller
    edition over a loaded one, unless ``allow_shrink``)."""
    dest = lake.lake_path(color, dataset_file)
    check_replacement(f"the lake file {dest}", source_file_of(dataset_file), cleaned.rows,
                      lake.row_count(dest) if dest.is_file() else None, allow_shrink=allow_shrink)
    path = lake.publish(cleaned.path, dest)
    get_run_logger().info(f"wrote {cleaned.rows:,} rows to {path}")
    return path


@task(**retrying(3))
def write_gcs(path: Path, allow_shrink: bool = False) -> str:
    """Upload the local parquet file to the ``zoom-gcs`` bucket; return its ``gs://`` URI
    (never a much smaller edition over a loaded one, unless ``allow_shrink``)."""
    from nyctaxi import gcs

    gcs_block = gcs_bucket()
    # The lake path ends in {color}/{dataset_file}.parquet wherever the data root is. The object's
    # name is what gcs_block.upload_from_path would make (the key under the block's bucket_folder);
    # gcs.upload sends bounded chunks, which upload_from_path has no argument for.
    uploaded = bucket_key(gcs_block, lake.object_key(path.parent.name, path.stem))
    uri = f"gs://{gcs_block.bucket}/{uploaded}"
    rows = lake.row_count(path)
    with gcs.reaching(GCS_FIX):
        bucket = lake_bucket(gcs_block)
        loaded = gcs.get_blob(bucket, uploaded)
        check_replacement(uri, source_file_of(path.stem), rows, gcs.object_rows(loaded) if loaded else None,
                          allow_shrink=allow_shrink)
        get_run_logger().info(f"Uploading from {path!r} to the bucket {gcs_block.bucket!r} path {uploaded!r}.")
        gcs.upload(bucket, uploaded, path, rows, lake.source_version(path), logger=get_run_logger())
    return uri


@contextmanager
def load_slot(limit: str) -> Iterator[None]:
    """Hold a slot of the global concurrency limit ``limit`` (no wait while it is inactive)."""
    # Prefect 2 does not take back the slot of a process killed while loading: say so while waiting.
    advice = (f"If no load is running, a killed run kept its slot: `prefect gcl update {limit} --active-slots 0`")
    logger = get_run_logger()
    warn = threading.Timer(SLOT_WAIT_WARNING_S, lambda: logger.warning(
        f"waiting {SLOT_WAIT_WARNING_S} s for a slot of the concurrency limit {limit!r} (`prefect gcl inspect "
        f"{limit}`). {advice}"))
    with ExitStack() as stack:
        warn.start()
        try:
            stack.enter_context(concurrency(limit, timeout_seconds=LOAD_SLOT_TIMEOUT_S))
        except TimeoutError:
            raise RuntimeError(f"no slot of the concurrency limit {limit!r} came free in {LOAD_SLOT_TIMEOUT_S} s. "
                               f"{advice}") from None
        finally:
            warn.cancel()
        yield


@task(**retrying(2), tags=["postgres"], on_failure=[drop_staged_input])
def load_postgres(cleaned: Cleaned, color: str, table: str, source_file: str, allow_shrink: bool = False) -> int:
    """COPY the cleaned month into ``table``, replacing that month's rows (never with a much smaller
    edition, unless ``allow_shrink``); return the rows loaded."""
    with postgres_connection() as conn, load_slot(POSTGRES_LOADS):
        # postgres.replace_month commits or rolls back on the driver's connection itself.
        loaded = postgres.replace_month(conn, table, color, cleaned.path, source_file, allow_shrink=allow_shrink,
                                        logger=get_run_logger())
    if lake.is_staged(cleaned.path):  # staged only for this load (a lake file stays)
        cleaned.path.unlink(missing_ok=True)
    return loaded


@task(**retrying(3))
def extract_from_gcs(color: str, year: int, month: int) -> Path:
    """Download the month's parquet from the ``zoom-gcs`` bucket to a local (staging) file."""
    from nyctaxi import gcs

    dataset_file = TaxiMonth(color, year, month).dataset_file
    gcs_block = gcs_bucket()
    name = bucket_key(gcs_block, lake.object_key(color, dataset_file))
    with gcs.reaching(GCS_FIX):
        blob = gcs.get_blob(lake_bucket(gcs_block), name)
        if blob is None:
            raise lake.NotInLakeError(f"gs://{gcs_block.bucket}/{name} does not exist: "
                                      f"run etl_web_to_gcs(year={year}, month={month}, color={color!r}) first")
        path = staging_path(dataset_file)  # its folder exists: no doubled data/data path
        try:
            return gcs.download(blob, path, disk=lake.data_root())
        except BaseException:
            path.unlink(missing_ok=True)
            raise


@task(on_failure=[drop_staged_input])
def transform(path: Path, color: str, fill_passenger_count: int | None = None) -> Path:
    """Report missing ``passenger_count`` as the course does; fill it only when asked to."""
    logger = get_run_logger()
    if "passenger_count" not in kinds(color):
        logger.info(f"{color} has no passenger_count: nothing to report")
        return path
    before = passenger_counts(path)
    logger.info(f"pre: missing passenger count: {before.missing:,} (zero: {before.zero:,})")
    if fill_passenger_count is None or not before.missing:
        logger.info("missing passenger counts kept as null (pass fill_passenger_count to fill them)")
        return path
    filled = staging_path(path.stem.split(".")[0])
    with writing(lake.data_root(), path.stat().st_size):
        fill_missing(path, filled, "passenger_count", fill_passenger_count)
    path.unlink()
    after = passenger_counts(filled)
    logger.info(f"post: missing passenger count: {after.missing:,} "
                f"(filled {before.missing:,} with {fill_passenger_count}, as asked)")
    return filled


@task(**retrying(2), tags=["bigquery"], on_failure=[drop_staged_input])
def write_bq(path: Path, color: str, source_file: str, allow_shrink: bool = False, pandas_gbq: bool = False) -> int:
    """Write the month to BigQuery (credentials and project of ``zoom-gcp-creds``): the parquet
    file as one load job, or with the course's pandas-gbq if ``pandas_gbq``; replace that month's
    rows (never with a much smaller edition, unless ``allow_shrink``); return the month's rows."""
    from nyctaxi import bigquery

    logger = get_run_logger()
    client = bigquery_client()

    def stage(staging_id: str) -> int:
        if pandas_gbq:
            return bigquery.stage_with_pandas_gbq(path, staging_id, client, logger)
        return bigquery.stage_with_load_file(client, path, staging_id, color, logger)

    with bigquery.reaching(BIGQUERY_FIX), load_slot(BIGQUERY_LOADS):
        rows = bigquery.replace_month(client, color, source_file, stage, lake.source_version(path),
                                      allow_shrink=allow_shrink,
                                      location=lambda: bigquery.dataset_location(lake_location(gcs_bucket())),
                                      logger=logger)
    path.unlink(missing_ok=True)  # staged only for this load
    return rows


@task(**retrying(2), tags=["bigquery"])
def load_bq_from_gcs(color: str, dataset_file: str, source_file: str, allow_shrink: bool = False) -> int:
    """Load the month's lake object into BigQuery with a load job (no data through this machine),
    replacing that month's rows (never with a much smaller edition, unless ``allow_shrink``);
    return the month's rows in the table."""
    from nyctaxi import bigquery, gcs

    gcs_block = gcs_bucket()
    key = bucket_key(gcs_block, lake.object_key(color, dataset_file))
    uri = f"gs://{gcs_block.bucket}/{key}"
    with gcs.reaching(GCS_FIX):
        blob = gcs.get_blob(lake_bucket(gcs_block), key)
    version = (blob.metadata or {}).get(gcs.VERSION_METADATA) if blob else None
    bucket_location = lake_location(gcs_block)
    client = bigquery_client()
    with bigquery.reaching(BIGQUERY_FIX), load_slot(BIGQUERY_LOADS):
        return bigquery.replace_month(
            client, color, source_file,
            lambda staging_id: bigquery.stage_with_load_job(client, uri, staging_id, color),
            version, allow_shrink=allow_shrink, location=lambda: bigquery.dataset_location(bucket_location),
            reads_from=(gcs_block.bucket, bucket_location) if bucket_location else None, logger=get_run_logger(),
        )


def lake_location(gcs_block: GcsBlock) -> str | None:
    """The lake bucket's location (None when the credentials may not read it)."""
    from nyctaxi import gcs

    with gcs.reaching(GCS_FIX):
        return gcs.bucket_location(lake_bucket(gcs_block))

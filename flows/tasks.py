"""The course's tasks: thin Prefect wrappers over the plain functions in ``nyctaxi``."""
from __future__ import annotations

import socket
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Iterator

from prefect import get_run_logger, task
from prefect.concurrency.sync import concurrency
from prefect.context import TaskRunContext
from prefect.settings import PREFECT_LOCAL_STORAGE_PATH
from prefect.tasks import exponential_backoff
from prefect.utilities.hashing import hash_objects

# prefect_gcp, prefect_sqlalchemy and nyctaxi.bigquery are imported inside the tasks that
# use them: importing prefect_gcp loads all of it (Cloud Storage, BigQuery, pandas-gbq, Vertex AI,
# Cloud Run: about 33 MB over prefect, pyarrow and pandas), which the Postgres flow never needs
# and the GCS flow needs only for its upload, after the conversion has given its memory back.
from nyctaxi import lake, postgres
from nyctaxi.convert import SourceDataError, csv_gz_to_parquet, fill_missing, passenger_counts
from nyctaxi.dataset import TaxiMonth
from nyctaxi.schema import SchemaError, kinds
from nyctaxi.source import NotGzipError, NotPublishedError, discard, download, downloaded_version

GCS_BLOCK = "zoom-gcs"
CREDS_BLOCK = "zoom-gcp-creds"
POSTGRES_BLOCK = "postgres-connector"
MAKE_GCP_BLOCKS = "python blocks/make_gcp_blocks.py --help"
UPLOAD_TIMEOUT_S = 600
# Global concurrency limits (``prefect gcl``) around the loads: inactive until someone sets them,
# e.g. ``python deployments/backfill_deploy.py --load-limit 2``. They hold in every way of running,
# including inside one Dask task of a backfill.
POSTGRES_LOADS = "postgres-loads"
BIGQUERY_LOADS = "bigquery-loads"
LOAD_SLOT_TIMEOUT_S = 3600
SLOT_WAIT_WARNING_S = 120
VERSION_METADATA = "source_version"
# Upload chunk of the lake file (GCS wants a multiple of 256 KiB). google-cloud-storage sends a
# file over 8 MiB in resumable chunks of 100 MiB by default, each read whole into memory: that
# added about 200 MB to the flow's peak for a 7.8 M-row month (220 MB of parquet).
UPLOAD_CHUNK_BYTES = 8 << 20


def load_block(block_type, name: str, how_to_make: str):
    """``block_type.load(name)``, with the command that makes the block when it is missing."""
    try:
        return block_type.load(name)
    except ValueError as e:
        if "Unable to find block document" not in str(e):
            raise
        raise RuntimeError(f"no {block_type.__name__} block named {name!r} on this Prefect server: "
                           f"create it with `{how_to_make}`") from None


def gcs_bucket():
    """The ``zoom-gcs`` block."""
    from prefect_gcp.cloud_storage import GcsBucket

    return load_block(GcsBucket, GCS_BLOCK, MAKE_GCP_BLOCKS)


def bucket_key(gcs_block, key: str) -> str:
    """``key`` inside the block's ``bucket_folder``: the object's name in the bucket."""
    return "/".join(part for part in (gcs_block.bucket_folder.strip("/"), key) if part)


def cache_key_while_downloaded(context: TaskRunContext, parameters: dict) -> str | None:
    """The course's ``task_input_hash`` cache, valid only where the cached file exists.

    A cache hit returns a path, so it is offered only when that path exists in this
    process, and the key names this host and result store: a container never reuses a
    path (or a persisted result) that only another machine has (PrefectHQ/prefect#8637).
    Like ``task_input_hash`` it hashes the task's code and inputs, but not the task key,
    which includes the code's file path: Prefect runs each Process deployment run from a
    new temporary copy of flows/, so that path never repeats and the cache would never hit.
    """
    path = lake.raw_path(parameters["dataset_url"])
    if not path.is_file():
        return None
    where = f"{socket.gethostname()}:{PREFECT_LOCAL_STORAGE_PATH.value()}:{path}"
    return hash_objects(context.task.name, context.task.fn.__code__.co_code.hex(), parameters, where)


def worth_retrying(task, task_run, state) -> bool:
    """Retry network failures and broken transfers; a 404 or a web page instead of the file
    will not change on retry."""
    try:
        state.result()
    except (NotPublishedError, NotGzipError):
        return False
    except Exception:
        return True
    return False


@task(
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=3),
    retry_condition_fn=worth_retrying,
    cache_key_fn=cache_key_while_downloaded,
    cache_expiration=timedelta(days=1),
    persist_result=True,
)
def fetch(dataset_url: str) -> Path:
    """Download the taxi data from the web to a local csv.gz and return its path."""
    return download(dataset_url, lake.raw_path(dataset_url), logger=get_run_logger())


@dataclass(frozen=True)
class Cleaned:
    """A month converted to the declared schema, waiting in staging to be written."""

    path: Path
    rows: int


@task()
def clean(path: Path, color: str) -> Cleaned:
    """Fix the dtypes (the declared schema of ``color``) and report data quality."""
    logger = get_run_logger()
    staged = lake.staging_path(path.name.split(".")[0])
    try:
        report = csv_gz_to_parquet(path, staged, color, source_version=downloaded_version(path), logger=logger)
    except (SourceDataError, SchemaError):
        # The download itself is bad: drop it so that the next attempt fetches again.
        discard(path)
        raise
    logger.info(f"first rows:\n{report.head}")
    logger.info("columns: " + ", ".join(f"{name}: {dtype}" for name, dtype in report.dtypes.items()))
    logger.info(f"rows: {report.rows:,}")
    if report.before and report.after:
        logger.info(f"pre: missing passenger count: {report.before.missing:,}, zero: {report.before.zero:,}")
        logger.info(
            f"post: missing passenger count: {report.after.missing:,}, zero: {report.after.zero:,} "
            "(kept as null and 0 in the lake: no fill)"
        )
    return Cleaned(staged, report.rows)


@task()
def write_local(cleaned: Cleaned, color: str, dataset_file: str) -> Path:
    """Write the cleaned month into the local lake as parquet, atomically."""
    path = lake.publish(cleaned.path, lake.lake_path(color, dataset_file))
    get_run_logger().info(f"wrote {cleaned.rows:,} rows to {path}")
    return path


@task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=3))
def write_gcs(path: Path) -> str:
    """Upload the local parquet file to the ``zoom-gcs`` bucket; return its ``gs://`` URI."""
    gcs_block = gcs_bucket()
    # The lake path ends in {color}/{dataset_file}.parquet wherever the data root is.
    key = lake.object_key(path.parent.name, path.stem)
    # What gcs_block.upload_from_path does (the key under the block's bucket_folder), with a
    # blob of bounded chunk size, which upload_from_path has no argument for.
    uploaded = bucket_key(gcs_block, key)
    get_run_logger().info(f"Uploading from {path!r} to the bucket {gcs_block.bucket!r} path {uploaded!r}.")
    blob = gcs_block.get_bucket().blob(uploaded, chunk_size=UPLOAD_CHUNK_BYTES)
    # The edition of the release file it holds: what a backfill compares (set with the object).
    version = lake.source_version(path)
    if version:
        blob.metadata = {VERSION_METADATA: version}
    blob.upload_from_filename(str(path), timeout=UPLOAD_TIMEOUT_S)
    return f"gs://{gcs_block.bucket}/{uploaded}"


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


def postgres_connector():
    """The ``postgres-connector`` block."""
    from prefect_sqlalchemy import SqlAlchemyConnector

    return load_block(SqlAlchemyConnector, POSTGRES_BLOCK, "python blocks/make_postgres_block.py --help")


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=3), tags=["postgres"])
def load_postgres(cleaned: Cleaned, color: str, table: str, source_file: str) -> int:
    """COPY the cleaned month into ``table``, replacing that month's rows; return the rows loaded."""
    with postgres_connector().get_connection(begin=False) as connection, load_slot(POSTGRES_LOADS):
        # COPY needs the driver's own connection; replace_month commits on it.
        loaded = postgres.replace_month(connection.connection.dbapi_connection, table, color, cleaned.path,
                                        source_file, logger=get_run_logger())
    if lake.is_staged(cleaned.path):  # staged only for this load (a lake file stays)
        cleaned.path.unlink(missing_ok=True)
    return loaded


@task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=3))
def extract_from_gcs(color: str, year: int, month: int) -> Path:
    """Download the month's parquet from the ``zoom-gcs`` bucket to a local (staging) file."""
    dataset_file = TaxiMonth(color, year, month).dataset_file
    gcs_block = gcs_bucket()
    key = lake.object_key(color, dataset_file)
    name = bucket_key(gcs_block, key)  # download_object_to_path adds the bucket_folder itself
    if not gcs_block.get_bucket().blob(name).exists():
        raise FileNotFoundError(f"gs://{gcs_block.bucket}/{name} does not exist: "
                                f"run etl_web_to_gcs(year={year}, month={month}, color={color!r}) first")
    path = lake.staging_path(dataset_file)  # its folder exists: no doubled data/data path
    try:
        gcs_block.download_object_to_path(from_path=key, to_path=path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


@task()
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
    filled = lake.staging_path(path.stem.split(".")[0])
    fill_missing(path, filled, "passenger_count", fill_passenger_count)
    path.unlink()
    after = passenger_counts(filled)
    logger.info(f"post: missing passenger count: {after.missing:,} "
                f"(filled {before.missing:,} with {fill_passenger_count}, as asked)")
    return filled


def bigquery_client():
    """A BigQuery client with the credentials and project of the ``zoom-gcp-creds`` block."""
    from prefect_gcp import GcpCredentials

    return load_block(GcpCredentials, CREDS_BLOCK, MAKE_GCP_BLOCKS).get_bigquery_client()


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=3), tags=["bigquery"])
def write_bq(path: Path, color: str, source_file: str) -> int:
    """Write the month to BigQuery with pandas-gbq (credentials and project of ``zoom-gcp-creds``),
    replacing that month's rows; return the month's rows in the table."""
    from nyctaxi import bigquery

    logger = get_run_logger()
    client = bigquery_client()
    with load_slot(BIGQUERY_LOADS):
        rows = bigquery.load_month(
            client, color, source_file,
            lambda staging_id: bigquery.stage_with_pandas_gbq(path, staging_id, client, logger),
            lake.source_version(path), logger=logger,
        )
    path.unlink(missing_ok=True)  # staged only for this load
    return rows


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=3), tags=["bigquery"])
def load_bq_from_gcs(color: str, dataset_file: str, source_file: str) -> int:
    """Load the month's lake object into BigQuery with a load job (no data through this machine),
    replacing that month's rows; return the month's rows in the table."""
    from nyctaxi import bigquery

    gcs_block = gcs_bucket()
    key = bucket_key(gcs_block, lake.object_key(color, dataset_file))
    uri = f"gs://{gcs_block.bucket}/{key}"
    blob = gcs_block.get_bucket().get_blob(key)
    version = (blob.metadata or {}).get(VERSION_METADATA) if blob else None
    client = bigquery_client()
    with load_slot(BIGQUERY_LOADS):
        return bigquery.load_month(
            client, color, source_file,
            lambda staging_id: bigquery.stage_with_load_job(client, uri, staging_id, color),
            version, logger=get_run_logger(),
        )

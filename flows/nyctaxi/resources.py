"""Every name and setting of the outside world, in one place, and how each resource is loaded.

To point the flows at another bucket, dataset or database, change it here or in the
blocks and variables named here: the blocks the flows load and the scripts that save
them, the lake's layout, the BigQuery dataset and tables, the PostgreSQL tables, the
load limits and deployments, and every environment variable the code reads, with its
default (``ENVIRONMENT``; docs/configuration.md lists the same, and a test keeps the two
equal). Loading a block that is missing fails with the command that makes it.

Prefect and its collections are imported only inside the loaders that need them.
"""
from __future__ import annotations

import base64
import importlib.metadata
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import failures
from .failures import CONNECT_TIMEOUT_S, reaching
from .frozen import watched

# --- blocks: what the flows load, and the scripts that save them -----------------------------
GCS_BLOCK = "zoom-gcs"                  # GcsBucket: the lake's bucket
CREDS_BLOCK = "zoom-gcp-creds"          # GcpCredentials: Cloud Storage and BigQuery
POSTGRES_BLOCK = "postgres-connector"   # SqlAlchemyConnector: the ny_taxi database
DOCKER_BLOCK = "zoom"                   # DockerContainer: the image docker-flow runs in
NOTIFICATION_BLOCK = "failure-webhook"  # CustomWebhookNotificationBlock: failed and crashed runs
MAKE_GCP_BLOCKS = "python blocks/make_gcp_blocks.py --help"
MAKE_POSTGRES_BLOCK = "python blocks/make_postgres_block.py --help"
# Block -> (its type's slug in the Prefect API, the command that makes it): what set_up_problem checks.
FLOW_BLOCKS = {
    GCS_BLOCK: ("gcs-bucket", MAKE_GCP_BLOCKS),
    CREDS_BLOCK: ("gcp-credentials", MAKE_GCP_BLOCKS),
    POSTGRES_BLOCK: ("sqlalchemy-connector", MAKE_POSTGRES_BLOCK),
}
# What to do when a service cannot be reached (on the local stack: `make stack`, see failures.py).
GCS_FIX = f"check the network and the {GCS_BLOCK!r} block (`{MAKE_GCP_BLOCKS}`)"
BIGQUERY_FIX = f"check the network and the {CREDS_BLOCK!r} block (`{MAKE_GCP_BLOCKS}`)"
POSTGRES_FIX = f"check that PostgreSQL runs there and the {POSTGRES_BLOCK!r} block (`{MAKE_POSTGRES_BLOCK}`)"

# --- the lake: {LAKE_PREFIX}/{color}/{color}_tripdata_{year}-{MM}.parquet in the bucket ------
LAKE_PREFIX = "data"

# --- the warehouses --------------------------------------------------------------------------
DATASET = "dezoomcamp"          # BigQuery
LOADS_TABLE = "nyc_tlc_loads"   # BigQuery and PostgreSQL: which edition of each month each table holds
POSTGRES_ROLE = "ny_taxi_etl"   # what the flows connect to PostgreSQL as (owns the project's tables)
POSTGRES_DATABASE = "ny_taxi"


def table_name(color: str) -> str:
    """One table per colour in each warehouse: ``yellow_tripdata``, ``green_tripdata``, ``fhv_tripdata``."""
    return f"{color}_tripdata"


# --- orchestration ---------------------------------------------------------------------------
# Global concurrency limits around the loads (`prefect gcl`), inactive until set
# (`python deployments/backfill_deploy.py --load-limit N`).
POSTGRES_LOADS = "postgres-loads"
BIGQUERY_LOADS = "bigquery-loads"
WORK_QUEUE = "default"
MONTH_DEPLOYMENT = "etl-month/backfill-month"
# The work pools of prefect.yaml (which spells them too: YAML imports nothing).
PROCESS_POOL = "local-process"
DOCKER_POOL = "docker-pool"                # made by blocks/make_docker_pool.py


# --- environment variables -------------------------------------------------------------------
@dataclass(frozen=True)
class Variable:
    """An environment variable the code reads: its default (None: unset) and what it sets."""

    default: str | None
    meaning: str


DEFAULT_BASE_URL = "https://github.com/DataTalksClub/nyc-tlc-data/releases/download"
BASE_URL_ENV = "NYC_TLC_BASE_URL"
DATA_DIR_ENV = "NYC_TLC_DATA_DIR"

ENVIRONMENT: dict[str, Variable] = {
    # The flows
    BASE_URL_ENV: Variable(DEFAULT_BASE_URL, "where the release files are read from "
                                 "({base}/{color}/{color}_tripdata_{year}-{MM}.csv.gz)"),
    DATA_DIR_ENV: Variable(None, "the local data root (unset: the data/ of the checkout the project is "
                                 "installed from, also for a deployment Prefect runs from a temporary copy; in the "
                                 "image /opt/prefect/data; else ~/nyc-tlc-data)"),
    "STORAGE_EMULATOR_HOST": Variable(None, "a GCS emulator to use instead of Google (the local stack sets it)"),
    "BIGQUERY_EMULATOR_HOST": Variable(None, "a BigQuery emulator to use instead of Google (the local stack sets it)"),
    "NYC_TLC_RETRY_DELAY_S": Variable("3", "seconds before a step's first retry, doubled for each next one "
                                      "(3, 6, 12 s; the tests' stack waits less)"),
    "NYC_TLC_BQ_LOCATION": Variable(None, "where write_bq makes the BigQuery dataset if it is missing (unset: the "
                                    "lake bucket's location, else BigQuery's default, US)"),
    "NYC_TLC_SERVICE_TIMEOUT_S": Variable("60", "seconds the bucket or BigQuery may take to answer one request (a "
                                          "chunk of an upload), and PostgreSQL to take the data sent to it or to "
                                          "answer a new connection (asked this often while a load runs), before "
                                          "the step fails naming it: a frozen service"),
    "NYC_TLC_API_LOST_GRACE_S": Variable("30", "seconds a flow script gives its run to end once Prefect has "
                                         "logged it crashed on a lost Prefect API; then the script ends itself "
                                         "with one line (Prefect 2.20 can wait for ever there)"),
    "MIMALLOC_PURGE_DELAY": Variable("0", "Arrow's allocator gives freed memory back after this many ms"),
    "MIMALLOC_ARENA_EAGER_COMMIT": Variable("0", "Arrow's allocator commits arenas lazily"),
    # The block scripts
    "GCS_BUCKET": Variable(None, "the bucket of the zoom-gcs block (make_gcp_blocks.py --bucket)"),
    "GCP_SERVICE_ACCOUNT_FILE": Variable(None, "the service-account key of zoom-gcp-creds (make_gcp_blocks.py --key)"),
    "GOOGLE_CLOUD_PROJECT": Variable(None, "the project of the local stack's zoom-gcp-creds (--local)"),
    "GOOGLE_APPLICATION_CREDENTIALS": Variable(None, "application-default credentials (the local stack's are offline)"),
    "NO_GCE_CHECK": Variable(None, "true: the Google clients do not look for a GCE metadata server (the local stack)"),
    "POSTGRES_HOST": Variable("localhost", "PostgreSQL's host (make_postgres_block.py --host)"),
    "POSTGRES_PORT": Variable("5432", "PostgreSQL's port (--port)"),
    "POSTGRES_USER": Variable(POSTGRES_ROLE, "the role the flows connect as (--user)"),
    "POSTGRES_DB": Variable(POSTGRES_DATABASE, "the database (--database)"),
    "POSTGRES_PASSWORD": Variable(None, "the role's password (or POSTGRES_PASSWORD_FILE, or a prompt)"),
    "POSTGRES_PASSWORD_FILE": Variable(None, "a file holding the role's password (--password-file)"),
    "POSTGRES_ADMIN_USER": Variable(None, "the local stack's superuser (the benchmark's CHECKPOINT)"),
    "POSTGRES_ADMIN_PASSWORD_FILE": Variable(None, "the file of the local stack superuser's password"),
    "NOTIFY_WEBHOOK_URL": Variable(None, "where failed and crashed runs are posted (make_notification_block.py --url)"),
    "ZOOM_IMAGE": Variable("dezoomcamp/prefect:zoom", "the image of the zoom DockerContainer block"),
    # The local stack
    "STACK_DIR": Variable(None, "where the local stack keeps its state (unset: the checkout's .stack/)"),
    "NYC_TLC_MIRROR_ROWS": Variable("100000", "rows per month served by the local mirror (full: the real sizes)"),
    "NYC_TLC_STACK_PORTS": Variable("preferred", "preferred: the local stack takes 4200, 9023, 9050, 8765 and 5432 "
                                    "when free; any: free ports only (the tests' stacks, which start side by side)"),
    "NYC_TLC_SERVER_LOOP_S": Variable(None, "seconds between the local Prefect server's scheduler loops, which make "
                                      "a cron deployment's runs (unset: Prefect's 60)"),
    "NYC_TLC_HEARTBEAT_S": Variable("30", "Prefect 3: seconds between a flow run's heartbeats on the local stack "
                                    "(Prefect's minimum is 30)"),
    "NYC_TLC_SILENCE_S": Variable("90", "Prefect 3: a run without a heartbeat for this long is marked Crashed "
                                  "(the local stack's automation)"),
    "NYC_TLC_BQ_TRANSACTION_S": Variable("1", "the local stack's BigQuery holds each transaction open at least this "
                                         "long (Google's take seconds): another one changing the same table "
                                         "meanwhile is cancelled, as on Google (stack/bq_rules.py)"),
    "NYC_TAXI_CACHE": Variable(None, "where make image caches the offline base image and wheels "
                               "(unset: ~/.cache/nyctaxi-prefect)"),
    "NYC_TLC_BENCH_CACHE": Variable(None, "where the benchmark keeps the full-size months it generated "
                                    "(unset: ~/.cache/nyctaxi-bench)"),
    "PREFECT_API_URL": Variable(None, "the Prefect API (the local stack's env file sets it; "
                                "stack/crashed_runs.py reads it)"),
    "PREFECT_API_AUTH_STRING": Variable(None, "Prefect 3: the API's basic-auth user:password (the local "
                                        "stack's env file reads it from the stack's prefect-api-auth)"),
}

# Arrow's allocator, mimalloc, keeps freed memory committed for reuse, per thread; with the
# background threads of the CSV and parquet readers it held far more than Arrow ever had
# allocated at once. These options make it return freed memory at once (the conversion's peak
# and cost: bench/README.md).
ARROW_ALLOCATOR_ENV = {name: ENVIRONMENT[name].default for name in ("MIMALLOC_PURGE_DELAY",
                                                                     "MIMALLOC_ARENA_EAGER_COMMIT")}

# --- the flows' container: the `zoom` DockerContainer block (agents), the docker work pool (workers) --
CONTAINER_ADC = "/opt/prefect/.config/adc.json"
# What the flows read from the environment on the local stack (no secrets among them).
CONTAINER_LOCAL_ENV = ("STORAGE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST", "NYC_TLC_BASE_URL", "GOOGLE_CLOUD_PROJECT",
                       "NO_GCE_CHECK")


def container_settings(local: bool) -> tuple[dict[str, str], list[str]]:
    """The environment and volumes of a container that runs the flows. An agent or worker passes its
    Prefect settings in; its PREFECT_HOME is a path on the host, so the container gets its own (the
    cached tasks' results are kept there). With ``local``: the local stack's addresses (from this
    shell's environment) and its offline credentials file, mounted read-only."""
    env = {"PREFECT_HOME": "/opt/prefect/.prefect", **ARROW_ALLOCATOR_ENV}
    if not local:
        return env, []
    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        raise SystemExit("--local needs the local stack's environment: run `make stack` and `source .stack/env` first")
    env.update({k: os.environ[k] for k in CONTAINER_LOCAL_ENV if os.environ.get(k)})
    env["GOOGLE_APPLICATION_CREDENTIALS"] = CONTAINER_ADC
    return env, [f"{os.environ['GOOGLE_APPLICATION_CREDENTIALS']}:{CONTAINER_ADC}:ro"]


def setting(name: str) -> str | None:
    """The value of environment variable ``name`` (one of ``ENVIRONMENT``), or its default; empty counts as unset."""
    return os.environ.get(name) or ENVIRONMENT[name].default


def seconds(name: str) -> float:
    """A setting that is a number of seconds."""
    return float(setting(name))


def retry_delays(retries: int) -> list[float]:
    """The waits before each of ``retries`` retries: ``NYC_TLC_RETRY_DELAY_S``, doubling (3, 6, 12 s),
    as Prefect's ``exponential_backoff(backoff_factor=3)``. Read when the tasks are defined."""
    first = seconds("NYC_TLC_RETRY_DELAY_S")
    return [first * 2**attempt for attempt in range(retries)]


DISTRIBUTION = "nyc-taxi-etl"  # pyproject.toml's project name


def _installed_checkout() -> Path | None:
    """The folder the project is installed from, editable (``make venv``, the image), if it is."""
    try:
        direct_url = importlib.metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    info = json.loads(direct_url or "{}")
    url = urllib.parse.urlparse(info.get("url", ""))
    return Path(urllib.parse.unquote(url.path)) if url.scheme == "file" and info.get("dir_info", {}).get("editable") \
        else None


# The checkout: the one the project is installed from, else the one this file is in. Not the folder
# the code runs from: Prefect runs a Process deployment from a temporary copy of it (the CLI-built
# deployment copies the whole repository), and its data belongs in the checkout's data/.
REPO = _installed_checkout() or Path(__file__).resolve().parents[2]


def stack_dir() -> Path:
    """Where the local stack keeps its state: ``$STACK_DIR`` or the checkout's ``.stack/``."""
    return Path(setting("STACK_DIR") or REPO / ".stack").resolve()


# --- is it set up? ---------------------------------------------------------------------------

def blocks_for(destinations: list[str]) -> list[str]:
    """The blocks the steps to ``destinations`` (``lake``, ``bigquery``, ``postgres``) load."""
    needs = {"lake": [GCS_BLOCK], "bigquery": [GCS_BLOCK, CREDS_BLOCK], "postgres": [POSTGRES_BLOCK]}
    return list(dict.fromkeys(block for d in destinations for block in needs[d]))


def set_up_problem(blocks: list[str]) -> str | None:
    """What stops a flow that needs ``blocks`` before it starts, in one line with the fix, or None:
    a shell without the local stack's environment, a Prefect API out of reach, a missing block.

    Asked of the API over HTTP: importing the blocks' collections here would cost the flow's
    process the memory the conversion needs."""
    api = setting("PREFECT_API_URL")
    env_file = stack_dir() / "env"
    if not api:
        if env_file.is_file():
            return f"this shell does not have the local stack's environment: run `source {env_file}` first"
        return None  # Prefect's own temporary API: what the block check below cannot see, Prefect says
    try:
        urllib.request.urlopen(f"{api.rstrip('/')}/health", timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        fix = ("start the local stack with `make stack`, then `source .stack/env` in this shell"
               if failures.is_local(api) else "start your Prefect server, or set PREFECT_API_URL to it")
        return f"cannot reach the Prefect API at {api} ({failures.cannot_connect(e) or e}): {fix}"
    auth = setting("PREFECT_API_AUTH_STRING")
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    for block in blocks:
        slug, how_to_make = FLOW_BLOCKS[block]
        url = f"{api.rstrip('/')}/block_types/slug/{slug}/block_documents/name/{block}"
        try:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=CONNECT_TIMEOUT_S).close()
        except urllib.error.HTTPError as e:
            if e.code == 401:  # Prefect 3's server with basic auth
                fix = f"run `source {env_file}`" if failures.is_local(api) else "set it to the server's"
                return (f"the Prefect API at {api} refused this shell's credentials (PREFECT_API_AUTH_STRING "
                        f"{'is wrong' if auth else 'is not set'}): {fix}")
            if e.code != 404:
                raise
            local = "`make stack` saves the local stack's blocks; for real GCP or your own database, " \
                if failures.is_local(api) else ""
            return (f"no {slug} block named {block!r} on the Prefect server at {api}: "
                    f"{local}create it with `{how_to_make}`")
    return None


# --- loading the blocks ----------------------------------------------------------------------

def load_block(block_type, name: str, how_to_make: str):
    """``block_type.load(name)``, with the command that makes the block when it is missing."""
    try:
        return block_type.load(name)
    except ValueError as e:
        if "Unable to find block document" not in str(e):
            raise
        raise RuntimeError(f"no {block_type.__name__} block named {name!r} on this Prefect server: "
                           f"create it with `{how_to_make}`") from None


@dataclass(frozen=True)
class GcsBlock:
    """The fields of the ``zoom-gcs`` block (a prefect-gcp ``GcsBucket``) the flows use: the
    bucket, the folder in it, and those of its ``GcpCredentials`` (``service_account_info``,
    ``service_account_file``, ``project``: None when unset)."""
    bucket: str
    bucket_folder: str
    credentials: dict

    @classmethod
    def from_fields(cls, fields: dict) -> GcsBlock:
        """From the block document's fields, with ``GcsBucket``'s defaults for those left out (a
        block made in the UI without credentials uses Application Default Credentials)."""
        return cls(fields["bucket"], fields.get("bucket_folder") or "", fields.get("gcp_credentials") or {})


def gcs_bucket() -> GcsBlock:
    """The ``zoom-gcs`` block, read as a block document: loading it as a ``GcsBucket`` imports
    all of prefect-gcp (its BigQuery client and pandas: about 53 MB in every process that
    uploads a month, bench/README.md) for three fields."""
    return GcsBlock.from_fields(_block_fields(GCS_BLOCK))


def _block_fields(name: str) -> dict:
    """A flow block's fields, secrets included, nested blocks' as dicts, from the Prefect API."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    slug, how_to_make = FLOW_BLOCKS[name]

    async def read() -> dict:  # Prefect 2.20's sync client cannot read block documents
        async with get_client() as client:
            return (await client.read_block_document_by_name(name, block_type_slug=slug, include_secrets=True)).data

    try:  # in a thread of its own: the caller may be inside a running event loop
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, read()).result()
    except ObjectNotFound:
        raise RuntimeError(f"no {slug} block named {name!r} on this Prefect server: "
                           f"create it with `{how_to_make}`") from None


def bucket_key(gcs_block: GcsBlock, key: str) -> str:
    """``key`` inside the block's ``bucket_folder``: the object's name in the bucket."""
    return "/".join(part for part in (gcs_block.bucket_folder.strip("/"), key) if part)


def lake_bucket(gcs_block: GcsBlock):
    """The block's bucket, as a google-cloud-storage ``Bucket``, with the credentials and project
    prefect-gcp's ``GcpCredentials.get_cloud_storage_client()`` would use. Not its
    ``get_bucket()``: that asks the server for the bucket with the client's default retry (two
    minutes of retrying a refused connection) before any work is done."""
    from google.cloud import storage

    credentials, project = google_credentials(gcs_block.credentials)
    return storage.Client(project=project, credentials=credentials).bucket(gcs_block.bucket)


def google_credentials(fields: dict) -> tuple:
    """Credentials and project from a ``GcpCredentials`` block's fields, as prefect-gcp makes
    them: the service account's info, else its key file, else Application Default Credentials;
    the block's project, else the one the credentials name."""
    import google.auth
    from google.oauth2 import service_account

    scopes = ["https://www.googleapis.com/auth/cloud-platform"]
    if fields.get("service_account_info"):
        credentials = service_account.Credentials.from_service_account_info(fields["service_account_info"],
                                                                            scopes=scopes)
    elif fields.get("service_account_file"):
        credentials = service_account.Credentials.from_service_account_file(
            os.path.expanduser(fields["service_account_file"]), scopes=scopes)
    else:
        credentials, default_project = google.auth.default()
        return credentials, fields.get("project") or credentials.quota_project_id or default_project
    return credentials, fields.get("project") or credentials.project_id


def gcp_credentials():
    """The ``zoom-gcp-creds`` block (a prefect-gcp ``GcpCredentials``)."""
    from prefect_gcp import GcpCredentials

    return load_block(GcpCredentials, CREDS_BLOCK, MAKE_GCP_BLOCKS)


def bigquery_client():
    """A BigQuery client with the credentials and project of the ``zoom-gcp-creds`` block, whose
    requests (pandas-gbq's too) wait ``NYC_TLC_SERVICE_TIMEOUT_S`` at most for each answer."""
    client = gcp_credentials().get_bigquery_client()
    failures.bound_requests(client._http, (CONNECT_TIMEOUT_S, seconds("NYC_TLC_SERVICE_TIMEOUT_S")))
    return client


def postgres_connector(connect_timeout_s: int = CONNECT_TIMEOUT_S):
    """The ``postgres-connector`` block (a prefect-sqlalchemy ``SqlAlchemyConnector``), connecting
    within ``connect_timeout_s`` (a host that drops packets fails fast)."""
    from prefect_sqlalchemy import SqlAlchemyConnector

    connector = load_block(SqlAlchemyConnector, POSTGRES_BLOCK, MAKE_POSTGRES_BLOCK)
    # A frozen server (its port open, nothing read): data it does not take for the service timeout
    # closes the connection (TCP_USER_TIMEOUT counts a zero window too), so a COPY fails instead of
    # hanging; keepalives find a connection whose far end is gone.
    frozen_ms = int(seconds("NYC_TLC_SERVICE_TIMEOUT_S") * 1000)
    connector.connect_args = {"connect_timeout": connect_timeout_s, "tcp_user_timeout": frozen_ms,
                              "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                              "keepalives_count": 3, **(connector.connect_args or {})}
    return connector


@contextmanager
def postgres_connection() -> Iterator:
    """A psycopg2 connection to the ``postgres-connector`` block's database (what COPY needs); a
    server out of reach is a ``ServiceUnreachableError`` naming it."""
    connector = postgres_connector()
    info = connector.connection_info
    address = f"{info.host}:{info.port}" if hasattr(info, "host") else "the address in the block"
    with reaching("PostgreSQL", address, POSTGRES_FIX, frozen=True), \
            connector.get_connection(begin=False) as connection:
        conn = connection.connection.dbapi_connection
        # A frozen server while a statement awaits its answer (nothing is being sent, so the TCP
        # timeout above cannot see it): found by the watch, and told as a timeout.
        every_s = seconds("NYC_TLC_SERVICE_TIMEOUT_S")
        with watched(conn, every_s) as frozen:
            try:
                yield conn
            except Exception as e:
                if frozen():
                    raise TimeoutError(f"no new connection answered in {every_s:g} s") from e
                raise


def set_load_limits(limit: int) -> None:
    """Create or update the load limits, active, at ``limit`` slots each."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    async def apply() -> None:  # Prefect 2.20's sync client has no concurrency-limit calls
        async with get_client() as client:
            for name in (POSTGRES_LOADS, BIGQUERY_LOADS):
                try:
                    await client.update_global_concurrency_limit(
                        name, GlobalConcurrencyLimitUpdate(limit=limit, active=True))
                except ObjectNotFound:
                    await client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=limit, active=True))
                print(f"concurrency limit {name!r}: {limit} at once")

    asyncio.run(apply())

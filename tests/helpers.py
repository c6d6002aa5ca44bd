"""Shared test helpers: the stack's destinations read back, the Prefect CLI, API and agent, flow processes."""
from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

import pyarrow.parquet as pq
import pytest
from stack.static_server import serve_directory  # noqa: F401 - re-exported for the tests

from nyctaxi.runtime import PREFECT_MAJOR, PREFECT_VERSION  # noqa: F401 - re-exported for the tests

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MIRROR_ROWS = 3000  # rows per generated month served by the test stack's mirror
# The UI tests: Debian's chromium driven by Playwright; screenshots go to test-artifacts/.
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")


def quick_run(page, deployment: str) -> str:
    """Press Run -> Quick run on ``deployment``'s page in the Prefect UI (``page`` shows its list of
    deployments); return the name of the flow run it scheduled."""
    from playwright.sync_api import expect

    page.get_by_role("link", name=deployment, exact=True).click()
    page.wait_for_url("**/deployments/deployment/**")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Quick run").click()
    toast = page.get_by_text("scheduled to start now").first
    expect(toast).to_be_visible()
    return toast.inner_text().split(" scheduled")[0].strip()


def flow_run_named(name: str):
    """The one flow run called ``name``."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    runs = api(lambda c: c.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))))
    assert len(runs) == 1, f"{len(runs)} flow runs named {name!r}"
    return runs[0]


@contextmanager
def browser_page(width: int = 1400, height: int = 900):
    """A page of headless Chromium (Playwright gives it a new, empty user-data dir of its own).
    Prefect's API cannot be called inside: Playwright's event loop runs until the block ends."""
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    # The UI on a busy machine (the suite's workers side by side): 30 s where Playwright waits 5.
    expect.set_options(timeout=30_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            if auth := os.environ.get("PREFECT_API_AUTH_STRING"):  # where Prefect 3's UI keeps its login
                token = base64.b64encode(auth.encode()).decode()
                page.add_init_script(f"localStorage.setItem('prefect-password', '{token}')")
            yield page
        finally:
            browser.close()


def pandas_modules_after(code: str) -> str:
    """The pandas modules a new Python process has imported after running ``code`` (in flows/), as
    printed: ``[]`` when none."""
    done = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\n"
                           "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pandas'))"],
                          cwd=REPO / "flows", capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


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


# --- Prefect: the CLI, the API, an agent -------------------------------------------------

def run(*cmd: str, cwd: Path = REPO, env: dict | None = None) -> str:
    """Run a command with the test environment (or ``env``); fail with its output unless it succeeds."""
    result = subprocess.run(cmd, cwd=cwd, env=env or dict(os.environ), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def save_blocks(script: str, *args: str) -> str:
    """``python blocks/<script> args``, run in this process; its output. For putting the stack's
    blocks back after a test: a process of its own would cost an import of Prefect (about 5 s of CPU)."""
    import contextlib
    import runpy

    argv, path = sys.argv, sys.path[:]
    sys.argv, sys.path[:0] = [script, *args], [str(REPO / "blocks")]  # the scripts import their neighbours
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            runpy.run_path(str(REPO / "blocks" / script), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = argv, path
    return output.getvalue()


def delete_block(slug: str, name: str) -> None:
    """Delete the block ``slug/name`` from the stack's Prefect server."""
    async def delete(client):
        document = await client.read_block_document_by_name(name, block_type_slug=slug)
        await client.delete_block_document(document.id)
    api(delete)


def deploy_prefect_yaml(*docker_pool_args: str) -> str:
    """prefect.yaml's work pools (the docker pool for the local stack, with ``docker_pool_args``), then
    ``prefect deploy --all`` from the checkout; the output."""
    prefect = str(BIN / "prefect")
    return (run(prefect, "work-pool", "create", "-t", "process", "local-process", "--overwrite")
            + run(str(BIN / "python"), str(REPO / "blocks" / "make_docker_pool.py"), "--local", *docker_pool_args)
            + run(prefect, "--no-prompt", "deploy", "--all", cwd=REPO))


def api(fn):
    """Run ``fn(client)`` with an async Prefect client."""
    from prefect.client.orchestration import get_client

    async def go():
        async with get_client() as client:
            return await fn(client)
    return asyncio.run(go())


def artifacts_of(run_id) -> dict[str, object]:
    """The markdown and table artifacts of one flow run (not of its subflows), by key (unkeyed ones
    by description)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    found = api(lambda c: c.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))))
    return {a.key or a.description: a for a in found if a.type in ("markdown", "table")}


def run_logs(flow_run_id) -> list[str]:
    """Every log line of a flow run and its task runs, as the UI shows them. Prefect 3 sends logs in
    background batches: what this process logged is sent first."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)
    return [log.message for log in api(lambda c: c.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))))]


def task_runs_of(state) -> list:
    """The task runs of the flow run whose final state is ``state``."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    return api(lambda c: c.read_task_runs(flow_run_filter=runs))


def start_run(deployment: str, **parameters) -> UUID:
    """A flow run of ``deployment`` (``flow/deployment``) with ``parameters``, made through the API as
    `prefect deployment run` makes it (without that command's process: about 5 s of CPU)."""
    async def create(client):
        found = await client.read_deployment_by_name(deployment)
        return (await client.create_flow_run_from_deployment(found.id, parameters=parameters)).id
    return api(create)


def flow_run_id(cli_output: str) -> UUID:
    return UUID(re.search(r"UUID: ([0-9a-f-]{36})", cli_output)[1])


def wait_final(run_id: UUID, timeout_s: float = 240):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        flow_run = api(lambda c: c.read_flow_run(run_id))
        if flow_run.state and flow_run.state.is_final():
            return flow_run
        time.sleep(1)
    raise AssertionError(f"flow run {run_id} did not finish in {timeout_s} s (state {flow_run.state})")




def start_agent(log: Path, *args: str, **env: str) -> subprocess.Popen:
    """`prefect agent start -q default [args]`, polling every second, in a process group of its own
    (the flow runs it starts join that group)."""
    return _start(log, ["agent", "start", "-q", "default", *args],
                  {"PREFECT_AGENT_QUERY_INTERVAL": "1", "PREFECT_AGENT_PREFETCH_SECONDS": "5", **env})


@contextmanager
def running_agent(log: Path, *args: str, **env: str) -> Iterator[Path]:
    """An agent (``start_agent``) for the ``with`` block, stopped by PID afterwards with its flow runs."""
    process = start_agent(log, *args, **env)
    try:
        yield log
    finally:
        stop_group(process)


@contextmanager
def running_worker(log: Path, pool: str, **env: str) -> Iterator[Path]:
    """`prefect worker start -p pool`, polling every second, for the ``with`` block; stopped as an agent is."""
    process = _start(log, ["worker", "start", "-p", pool],
                     {"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "5", **env})
    try:
        yield log
    finally:
        stop_group(process)


def _start(log: Path, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([str(BIN / "prefect"), *args], env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop_group(process: subprocess.Popen, signals=(signal.SIGTERM, signal.SIGTERM, signal.SIGKILL)) -> None:
    """Signal ``process``'s process group until it ends (an agent may want a second SIGTERM)."""
    for sig in signals:
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def submitted_runs(agent_log: Path) -> set[str]:
    """The flow runs an agent started (its own log says so)."""
    return set(re.findall(r"Completed submission of flow run '([0-9a-f-]{36})'", agent_log.read_text()))


def bq_client():
    """The stack's BigQuery emulator, through the real google-cloud-bigquery client."""
    from google.cloud import bigquery

    return bigquery.Client(project=os.environ["GOOGLE_CLOUD_PROJECT"])


def bq_counts(table: str) -> dict[str, int]:
    """Rows per source file in ``dezoomcamp.<table>``."""
    client = bq_client()
    sql = f"SELECT source_file, COUNT(*) FROM `{client.project}.dezoomcamp.{table}` GROUP BY 1"
    return {source: rows for source, rows in client.query(sql).result()}


def bq_staging_tables() -> set[str]:
    """The staging tables in ``dezoomcamp`` (a load leaves none behind unless it was killed)."""
    return {t.table_id for t in bq_client().list_tables("dezoomcamp") if "__staging_" in t.table_id}


def kill_flow_when(script: str, args: list[str], ready, *, env: dict | None = None, timeout_s: float = 120) -> None:
    """Run ``flows/<script>`` and SIGKILL it as soon as ``ready()`` is true; fail if it never is."""
    process = subprocess.Popen([sys.executable, str(REPO / "flows" / script), *args], env=env or dict(os.environ),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while not ready():
            assert process.poll() is None, f"{script} ended (code {process.returncode}) before the moment to kill it"
            assert time.monotonic() < deadline, f"{script}: the moment to kill it never came"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def run_flows_at_once(script: str, args: list[str], times: int = 2, timeout_s: float = 300) -> None:
    """Start ``flows/<script> args`` ``times`` times at once; each must complete."""
    processes = [subprocess.Popen([sys.executable, str(REPO / "flows" / script), *args], env=dict(os.environ),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(times)]
    outputs = [p.communicate(timeout=timeout_s)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]


def new_private_key() -> str:
    """A real, throw-away RSA key in PEM (google-auth parses the key when credentials are built)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def staged_files(data_dir: Path) -> list[Path]:
    """The files in ``data_dir``'s staging folder: a run that ended, however it ended, leaves none."""
    staging = data_dir / ".staging"
    return [p for p in staging.rglob("*") if p.is_file()] if staging.exists() else []


@contextmanager
def private_bigquery(root: Path) -> Iterator[tuple[object, str]]:
    """A BigQuery emulator of the test's own, started under ``root`` (its dataset made, as the stack's):
    a client of it, and its address (for BIGQUERY_EMULATOR_HOST). Stopped at the end."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery
    from stack import ctl
    from stack.services import BigQueryEmulator, free_port

    emulator, port = BigQueryEmulator(), free_port()
    ctl.start(emulator, port, root)
    try:
        host = f"http://127.0.0.1:{port}"
        yield bigquery.Client(project=os.environ["GOOGLE_CLOUD_PROJECT"], credentials=AnonymousCredentials(),
                              client_options=ClientOptions(api_endpoint=host)), host
    finally:
        ctl.stop(emulator, root)

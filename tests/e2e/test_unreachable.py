"""A service that goes away mid-run: the flow fails within 90 s, in one line that names the service,
its address and the fix, instead of retrying for minutes; and it leaves no partial file.

Each test kills a server of its own (a release server, a GCS emulator, a PostgreSQL cluster), so
the session's stack stays up.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from stack import ctl
from stack.generator import generate
from stack.services import BigQueryEmulator, GcsEmulator, Postgres, free_port

from faults import DyingApi, FaultServer
from helpers import BIN, REPO, bq_client, bq_staging_tables, run, save_blocks, serve_directory

FAIL_WITHIN_S = 90
LOCAL_FIX = "start the local stack with `make stack`, then `source .stack/env` in this shell"


def start_flow(script: str, args: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, str(REPO / "flows" / script), *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def wait_for(condition, flow: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert flow.poll() is None, f"the flow ended before the service went away:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "the moment to kill the service never came"
        time.sleep(0.05)


def fails_fast(flow: subprocess.Popen, killed_at: float, log: Path) -> str:
    """The flow's output, once it has failed within FAIL_WITHIN_S of the kill."""
    try:
        code = flow.wait(timeout=FAIL_WITHIN_S + 30)
    finally:
        if flow.poll() is None:
            flow.kill()
    took = time.monotonic() - killed_at
    output = log.read_text()
    assert code != 0, output[-3000:]
    assert took < FAIL_WITHIN_S, f"failed only after {took:.0f} s:\n{output[-3000:]}"
    return output


def partial_files(data: Path) -> list[Path]:
    return [p for p in data.rglob("*") if p.is_file() and (".staging" in p.parts or p.name.endswith(".part"))]


def big_month(tmp_path: Path, color: str, year: int, month: int, rows: int) -> Path:
    generate(color, year, month, rows, tmp_path / "release" / color / f"{color}_tripdata_{year}-{month:02}.csv.gz")
    return tmp_path / "release"


def test_the_release_server_killed_mid_download(tmp_path):
    data, log = tmp_path / "data", tmp_path / "flow.log"
    with FaultServer(tmp_path / "release", slow_s=30) as release:
        url = release.script("yellow", 2019, 5, "slow")
        env = {**os.environ, "NYC_TLC_BASE_URL": release.base_url, "NYC_TLC_DATA_DIR": str(data)}
        flow = start_flow("etl_web_to_gcs.py", ["--year", "2019", "--month", "5"], env, log)
        wait_for(lambda: release.requests[release.path_of(url)] > 0, flow, log)
        time.sleep(1)  # well into the transfer
        killed_at = time.monotonic()
        release.kill()
    output = fails_fast(flow, killed_at, log)
    assert f"cannot reach the release server at {release.base_url} (connection refused): {LOCAL_FIX}" in output
    assert partial_files(data) == []


def killed_mid_run(service, root: Path, month: Path, script: str, args: list[str], env: dict, ready) -> str:
    """Run ``flows/<script>`` on the release files under ``month`` until ``ready()``, stop ``service``
    (started under ``root``); return the flow's output once it has failed fast."""
    log = root.parent / "flow.log"
    try:
        with serve_directory(month) as base:
            flow = start_flow(script, args, {**os.environ, "NYC_TLC_BASE_URL": base, **env}, log)
            wait_for(ready, flow, log)
            killed_at = time.monotonic()
            ctl.stop(service, root)
            return fails_fast(flow, killed_at, log)
    finally:
        ctl.stop(service, root)


@pytest.mark.plain
def test_the_gcs_endpoint_killed_mid_run(tmp_path):
    data, emulator, root, port = tmp_path / "data", GcsEmulator(), tmp_path / "gcs-stack", free_port()
    ctl.start(emulator, port, root)
    output = killed_mid_run(
        emulator, root, big_month(tmp_path, "yellow", 2019, 6, 300_000), "etl_web_to_gcs.py",
        ["--year", "2019", "--month", "6"],
        {"NYC_TLC_DATA_DIR": str(data), "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}"},
        # The lake file is written: write_gcs is about to upload it, or uploading.
        ready=(data / "yellow" / "yellow_tripdata_2019-06.parquet").exists)
    assert f"cannot reach the GCS bucket at http://127.0.0.1:{port} (connection refused): {LOCAL_FIX}" in output
    assert partial_files(data) == []


def admin_connection(root: Path, port: int):
    """A superuser's connection to the PostgreSQL started under ``root``."""
    return psycopg2.connect(host="127.0.0.1", port=port, user="root", dbname="ny_taxi",
                            password=(root / "postgres-password").read_text().strip())


def block_on_private_postgres(root: Path, port: int):
    """Point the ``postgres-connector`` block at a PostgreSQL started under ``root`` (the caller puts
    the stack's back); return a check of whether a COPY is running there."""

    def copying() -> bool:
        with admin_connection(root, port) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %%' AND state = 'active'")
            return cur.fetchone()[0] > 0

    run(str(BIN / "python"), str(REPO / "blocks" / "make_postgres_block.py"), "--host", "127.0.0.1", "--port",
        str(port), "--user", "ny_taxi_etl", "--database", "ny_taxi", "--password-file",
        str(root / "postgres-ny_taxi_etl-password"))
    return copying


@pytest.fixture
def pg_root() -> Iterator[Path]:
    """A folder for a private PostgreSQL, outside pytest's: pytest takes the other users' access to its
    own root back (chmod 0700) whenever a session starts, and PostgreSQL runs as a user of its own
    when we are root (its initdb was refused mid-way in a CI run where the other suite started one)."""
    root = Path(tempfile.mkdtemp(prefix="nyctaxi-test-pg-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_postgresql_killed_mid_copy(tmp_path, pg_root):
    data, server, root, port = tmp_path / "data", Postgres(), pg_root, free_port()
    ctl.start(server, port, root)
    copying = block_on_private_postgres(root, port)
    try:
        output = killed_mid_run(server, root, big_month(tmp_path, "yellow", 2019, 7, 600_000),
                                "etl_web_to_postgres.py", ["--year", "2019", "--month", "7", "--table", "t_gone"],
                                {"NYC_TLC_DATA_DIR": str(data)}, ready=copying)
    finally:
        save_blocks("make_postgres_block.py", "--local")
    # Refused, or (the retry came while the killed server was still stopping) shutting down.
    assert re.search(rf"cannot reach PostgreSQL at 127\.0\.0\.1:{port} \((connection refused|it is shutting down)\): "
                     + re.escape(LOCAL_FIX), output)
    assert partial_files(data) == []


def month_in_lake(data: Path, year: int, month: int, color: str) -> None:
    """Run etl_web_to_gcs for the month here, with its lake under ``data``."""
    from etl_web_to_gcs import etl_web_to_gcs

    os.environ["NYC_TLC_DATA_DIR"], saved = str(data), os.environ["NYC_TLC_DATA_DIR"]
    try:
        etl_web_to_gcs(year=year, month=month, color=color)
    finally:
        os.environ["NYC_TLC_DATA_DIR"] = saved


def test_bigquery_out_of_reach_fails_at_once(tmp_path):
    data, log = tmp_path / "data", tmp_path / "flow.log"
    month_in_lake(data, 2019, 8, "green")
    nobody = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "BIGQUERY_EMULATOR_HOST": nobody, "NYC_TLC_DATA_DIR": str(data)}
    for how in ([], ["--load-job"]):
        started = time.monotonic()
        flow = start_flow("etl_gcs_to_bq.py", ["--year", "2019", "--months", "8", "--color", "green", *how], env, log)
        output = fails_fast(flow, started, log)
        assert f"cannot reach BigQuery at {nobody} (connection refused): {LOCAL_FIX}" in output


@pytest.mark.plain
def test_bigquery_gone_as_the_upload_starts_fails_in_seconds_naming_it(tmp_path):
    """BigQuery goes away at write_bq's first upload request (a pass-through to the stack's that dies
    there): the library's own retry of an upload waited a minute in silence (6 retries); now about
    7 s, then the one line."""
    data, log = tmp_path / "data", tmp_path / "flow.log"
    month_in_lake(data, 2019, 10, "green")
    staging_before = bq_staging_tables()
    bq = DyingApi(os.environ["BIGQUERY_EMULATOR_HOST"], lambda method, path, seen: path.startswith("/upload/"))
    env = {**os.environ, "BIGQUERY_EMULATOR_HOST": bq.url, "NYC_TLC_DATA_DIR": str(data)}
    started = time.monotonic()
    flow = start_flow("etl_gcs_to_bq.py", ["--year", "2019", "--months", "10", "--color", "green"], env, log)
    output = fails_fast(flow, started, log)
    # Its staging table stays: BigQuery was out of reach to drop it (a later load drops it once a day
    # old). Dropped here, as the tests that follow count the staging tables.
    [left] = bq_staging_tables() - staging_before
    assert left.startswith("green_tripdata__staging_")
    bq_client().delete_table(f"{bq_client().project}.dezoomcamp.{left}")
    assert bq.dead.is_set(), "BigQuery never went away: the flow made no upload"
    assert time.monotonic() - started < 40, output[-3000:]
    assert f"cannot reach BigQuery at {bq.url} (connection refused): {LOCAL_FIX}" in output
    assert partial_files(data) == []


@pytest.mark.plain
def test_a_frozen_bigquery_fails_the_step_within_its_timeout_naming_it(tmp_path):
    """A BigQuery emulator of the test's, SIGSTOPped: the client's calls set no timeout of their own
    (they waited for ever); each request now waits NYC_TLC_SERVICE_TIMEOUT_S at most."""
    import signal

    data, emulator, root, port = tmp_path / "data", BigQueryEmulator(), tmp_path / "bq-stack", free_port()
    month_in_lake(data, 2019, 9, "green")
    pid = ctl.start(emulator, port, root)
    log = tmp_path / "flow.log"
    env = {**os.environ, "NYC_TLC_DATA_DIR": str(data), "BIGQUERY_EMULATOR_HOST": f"http://127.0.0.1:{port}",
           "NYC_TLC_SERVICE_TIMEOUT_S": "5"}
    os.kill(pid, signal.SIGSTOP)
    try:
        frozen_at = time.monotonic()
        flow = start_flow("etl_gcs_to_bq.py", ["--year", "2019", "--months", "9", "--color", "green"], env, log)
        output = fails_fast(flow, frozen_at, log)
    finally:
        os.kill(pid, signal.SIGCONT)
        ctl.stop(emulator, root)
    assert time.monotonic() - frozen_at < 60
    assert f"cannot reach BigQuery at http://127.0.0.1:{port} (no answer in time: frozen or overloaded)" in output
    assert partial_files(data) == []


@pytest.mark.plain
def test_a_frozen_gcs_endpoint_fails_the_step_within_its_timeout_naming_it(tmp_path):
    """SIGSTOP: the emulator's port still accepts connections (the kernel does), nothing answers."""
    import signal

    data, emulator, root, port = tmp_path / "data", GcsEmulator(), tmp_path / "gcs-stack", free_port()
    pid = ctl.start(emulator, port, root)
    log = tmp_path / "flow.log"
    env = {**os.environ, "NYC_TLC_DATA_DIR": str(data), "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}",
           "NYC_TLC_SERVICE_TIMEOUT_S": "5"}
    try:
        with serve_directory(big_month(tmp_path, "yellow", 2019, 10, 300_000)) as base:
            flow = start_flow("etl_web_to_gcs.py", ["--year", "2019", "--month", "10"],
                              {**env, "NYC_TLC_BASE_URL": base}, log)
            wait_for((data / "yellow" / "yellow_tripdata_2019-10.parquet").exists, flow, log)
            os.kill(pid, signal.SIGSTOP)
            frozen_at = time.monotonic()
            output = fails_fast(flow, frozen_at, log)
    finally:
        os.kill(pid, signal.SIGCONT)
        ctl.stop(emulator, root)
    assert time.monotonic() - frozen_at < 60  # 5 s per request, not the 600 s it waited before
    assert f"cannot reach the GCS bucket at http://127.0.0.1:{port} (no answer in time: frozen or overloaded)" in output
    assert partial_files(data) == []


@pytest.mark.plain
def test_a_frozen_postgresql_fails_the_copy_within_its_timeout_naming_it(tmp_path, pg_root):
    """SIGSTOP of the whole server (postmaster and backends) mid-COPY: the data it no longer takes
    closes the connection after the service timeout, instead of a COPY that waits for ever."""
    import signal

    data, server, root, port = tmp_path / "data", Postgres(), pg_root, free_port()
    pid = ctl.start(server, port, root)
    copying = block_on_private_postgres(root, port)
    log = tmp_path / "flow.log"
    frozen: list[int] = []
    try:
        with serve_directory(big_month(tmp_path, "yellow", 2019, 11, 600_000)) as base:
            flow = start_flow("etl_web_to_postgres.py", ["--year", "2019", "--month", "11", "--table", "t_frozen"],
                              {**os.environ, "NYC_TLC_BASE_URL": base, "NYC_TLC_DATA_DIR": str(data),
                               "NYC_TLC_SERVICE_TIMEOUT_S": "5"}, log)
            wait_for(copying, flow, log)
            frozen = stop_all(pid, signal.SIGSTOP)
            output = fails_fast(flow, time.monotonic(), log)
    finally:
        for process in frozen:
            os.kill(process, signal.SIGCONT)
        ctl.stop(server, root)
        save_blocks("make_postgres_block.py", "--local")
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port} (no answer in time: frozen or overloaded)" in output
    assert partial_files(data) == []


def stop_all(pid: int, sig) -> list[int]:
    """Send ``sig`` to PostgreSQL's postmaster ``pid`` and each of its processes (PostgreSQL 18 gives
    each a session of its own); return their pids."""
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    processes = [pid, *map(int, children.stdout.split())]
    for process in processes:
        os.kill(process, sig)
    return processes


@pytest.mark.plain
def test_a_postgresql_frozen_while_a_load_awaits_its_answer_fails_naming_it(tmp_path, pg_root):
    """The load waits for a lock another session holds: nothing is sent either way, as for any long
    statement, so TCP's timeouts cannot tell. A live server keeps it waiting past the watch's
    period (the wait is not cut); frozen, the load fails within two periods, naming the server."""
    import signal

    data, server, root, port = tmp_path / "data", Postgres(), pg_root, free_port()
    pid = ctl.start(server, port, root)
    block_on_private_postgres(root, port)
    holder = admin_connection(root, port)
    holder.autocommit = True
    log = tmp_path / "flow.log"
    frozen: list[int] = []

    def waiting() -> bool:
        with admin_connection(root, port) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'ny_taxi_etl' "
                        "AND wait_event_type = 'Lock'")
            return cur.fetchone()[0] > 0

    try:
        with holder.cursor() as cur:  # the lock a first load of the table takes (postgres.replace_month)
            cur.execute("SELECT pg_advisory_lock(hashtext('t_waits'))")
        with serve_directory(big_month(tmp_path, "green", 2019, 12, 2_000)) as base:
            flow = start_flow("etl_web_to_postgres.py",
                              ["--color", "green", "--year", "2019", "--month", "12", "--table", "t_waits"],
                              {**os.environ, "NYC_TLC_BASE_URL": base, "NYC_TLC_DATA_DIR": str(data),
                               "NYC_TLC_SERVICE_TIMEOUT_S": "3"}, log)
            wait_for(waiting, flow, log)
            time.sleep(7)  # two of the watch's periods and more: the server answers, the load waits on
            assert flow.poll() is None, log.read_text()[-3000:]
            frozen = stop_all(pid, signal.SIGSTOP)
            frozen_at = time.monotonic()
            output = fails_fast(flow, frozen_at, log)
    finally:
        for process in frozen:
            os.kill(process, signal.SIGCONT)
        holder.close()
        ctl.stop(server, root)
        save_blocks("make_postgres_block.py", "--local")
    assert time.monotonic() - frozen_at < 30  # the watch's 3 s, twice, and the flow's exit
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port} (no answer in time: frozen or overloaded)" in output
    assert partial_files(data) == []

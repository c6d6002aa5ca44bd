"""Set-up mistakes a learner makes in the first hour, each answered at once in one line with the fix,
before anything is downloaded: a new shell without the stack's environment, the stack stopped, a
missing block. From inside flows/, as from the repository."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from stack.services import free_port

from helpers import ARTIFACTS, PREFECT_MAJOR, REPO, browser_page, delete_block, needs_chromium, save_blocks


def run_script(script: str, env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, script, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def last_line(result: subprocess.CompletedProcess) -> str:
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture
def shell(server, tmp_path) -> dict:
    """A shell's environment with the release server the test watches and a data root of its own."""
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NYC_TLC_BASE_URL": server.base_url,
            "NYC_TLC_DATA_DIR": str(tmp_path / "data")}


@pytest.mark.parametrize("cwd", ["flows", "."])
def test_a_new_shell_without_the_stack_s_environment_is_told_to_source_it(shell, server, tmp_path, cwd):
    env = {**shell, "STACK_DIR": os.environ["STACK_DIR"]}  # `make stack` ran in this checkout
    script = "etl_web_to_gcs.py" if cwd == "flows" else "flows/etl_web_to_gcs.py"
    started = time.monotonic()
    result = run_script(script, env, REPO / cwd, "--month", "3")
    assert result.returncode == 2
    assert last_line(result) == ("etl_web_to_gcs.py: this shell does not have the local stack's environment: "
                                 f"run `source {Path(os.environ['STACK_DIR']) / 'env'}` first")
    assert time.monotonic() - started < 30
    assert sum(server.requests.values()) == 0 and not (tmp_path / "data").exists()


def test_a_stopped_stack_is_told_to_start(shell, server, tmp_path):
    api = f"http://127.0.0.1:{free_port()}/api"  # the stack's old address, nothing listening
    result = run_script("flows/etl_web_to_postgres.py", {**shell, "PREFECT_API_URL": api}, REPO, "--month", "3")
    assert result.returncode == 2
    assert last_line(result) == (f"etl_web_to_postgres.py: cannot reach the Prefect API at {api} (connection "
                                 "refused): start the local stack with `make stack`, then `source .stack/env` "
                                 "in this shell")
    assert sum(server.requests.values()) == 0


def test_a_missing_block_is_named_with_the_script_that_makes_it(shell, server, tmp_path):
    api = os.environ["PREFECT_API_URL"]
    delete_block("gcs-bucket", "zoom-gcs")
    try:  # the server's address (and on Prefect 3 its credentials), as the stack's env file gives them
        prefect_env = {k: v for k, v in os.environ.items() if k.startswith("PREFECT_")}
        result = run_script("flows/etl_gcs_to_bq.py", {**shell, **prefect_env}, REPO, "--months", "3")
    finally:
        save_blocks("make_gcp_blocks.py", "--local")
    assert result.returncode == 2
    assert last_line(result) == (f"etl_gcs_to_bq.py: no gcs-bucket block named 'zoom-gcs' on the Prefect server "
                                 f"at {api}: `make stack` saves the local stack's blocks; for real GCP or your "
                                 "own database, create it with `python blocks/make_gcp_blocks.py --help`")
    assert sum(server.requests.values()) == 0


def test_a_failed_run_ends_its_output_with_one_line_saying_why(shell, server):
    url = server.script("green", 2020, 2, "404")
    env = {**os.environ, "NYC_TLC_BASE_URL": server.base_url, "NYC_TLC_DATA_DIR": shell["NYC_TLC_DATA_DIR"]}
    result = run_script("flows/etl_web_to_gcs.py", env, REPO, "--year", "2020", "--month", "2", "--color", "green")
    assert result.returncode == 1
    assert last_line(result) == (f"etl_web_to_gcs.py: etl-web-to-gcs ended Failed: NotPublishedError: "
                                 f"green_tripdata_2020-02.csv.gz is not published at {url} (HTTP 404): check the "
                                 "colour, year and month")


@pytest.mark.plain
def test_make_sql_opens_psql_on_the_stack_s_postgres_as_the_flows_role():
    password = (Path(os.environ["POSTGRES_PASSWORD_FILE"])).read_text().strip()

    def make_sql(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["make", "-s", "sql", f"PREFECT={PREFECT_MAJOR}", *args], cwd=REPO, env=dict(os.environ), input=stdin,
                              capture_output=True, text=True, timeout=60)

    one = make_sql("SQL=select current_user, current_database()")
    assert one.returncode == 0, one.stderr
    assert "ny_taxi_etl  | ny_taxi" in one.stdout
    assert one.stderr.startswith(f"PGPASSWORD=$(cat {os.environ['POSTGRES_PASSWORD_FILE']}) ")  # the exact command
    piped = make_sql(stdin="select 40 + 2 as answer;\n")  # psql reads what it is given, as a shell would
    assert piped.returncode == 0 and "42" in piped.stdout
    assert password not in one.stdout + one.stderr + piped.stdout + piped.stderr


def test_the_ui_asks_the_stack_s_own_api_whatever_its_port():
    """Prefect's UI reads the API's address from /ui-settings, which says port 4200 unless told otherwise:
    on another port the UI showed "Can't connect to Server API", and on Prefect 3 sent the stack's
    credentials to whatever listened on 4200. The tests' stacks are never on 4200."""
    import json
    import urllib.request

    api = os.environ["PREFECT_API_URL"]
    assert not api.startswith("http://127.0.0.1:4200/")
    with urllib.request.urlopen(api.removesuffix("/api") + "/ui-settings", timeout=30) as response:
        assert json.loads(response.read())["api_url"] == api


@needs_chromium
def test_the_ui_on_another_port_connects_and_sends_nothing_to_port_4200():
    """In Chromium: with a listener on 4200 (Prefect's default), the UI of a stack on another port
    shows its flow runs, and nothing (no credentials) reaches the listener."""
    from playwright.sync_api import expect

    with listening_on(4200) as seen:
        ui = os.environ["PREFECT_API_URL"].removesuffix("/api")
        with browser_page() as page:
            answered = []
            page.on("response", lambda r: answered.append(r.status) if r.url.startswith(f"{ui}/api/") else None)
            page.goto(f"{ui}/flow-runs", wait_until="networkidle")
            expect(page.get_by_text("Can't connect to Server API")).to_have_count(0)
            page.screenshot(path=ARTIFACTS / "ui-own-api-port.png", full_page=True)
    assert answered and set(answered) <= {200, 201, 204}  # the UI asked its own API, which answered
    assert seen == []


@contextlib.contextmanager
def listening_on(port: int):
    """A listener on ``port`` that records what each connection sends. Another test (the other
    runtime's suite, side by side) may hold the port for a few seconds: wait for it."""
    listener = socket.socket()
    deadline = time.monotonic() + 120
    while True:
        try:
            listener.bind(("127.0.0.1", port))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    listener.listen()
    listener.settimeout(0.2)
    seen: list[bytes] = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(2)
                seen.append(connection.recv(65536))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
        listener.close()

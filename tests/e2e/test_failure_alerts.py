"""A failed flow run ends Failed, says why, and can alert someone through a webhook."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from stack import ctl
from stack.services import PrefectServer, free_port

from etl_web_to_gcs import etl_web_to_gcs
from faults import DyingApi, FaultServer
from helpers import BIN, REPO, api, run, staged_files
from nyctaxi.runtime import heartbeat_s, silence_s, stop_alerts


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Hook.received
    server.shutdown()
    asyncio.run(stop_alerts())  # later failures in the session should alert nobody


def test_a_failed_run_is_failed_says_why_and_posts_to_the_webhook(webhook, tmp_path, monkeypatch):
    url, received = webhook
    run(str(BIN / "python"), str(REPO / "blocks" / "make_notification_block.py"), "--url", url)
    monkeypatch.setenv("NYC_TLC_DATA_DIR", str(tmp_path / "data"))
    with FaultServer(tmp_path / "release") as server:
        monkeypatch.setenv("NYC_TLC_BASE_URL", server.base_url)
        server.script("green", 2021, 7, "404")
        state = etl_web_to_gcs(year=2021, month=7, color="green", return_state=True)
    assert state.is_failed()
    assert "green_tripdata_2021-07.csv.gz is not published at" in state.message
    flow_run = api(lambda c: c.read_flow_run(state.state_details.flow_run_id))
    assert flow_run.state.type.value == "FAILED"

    deadline = time.monotonic() + 90  # the server's notification service runs every few seconds
    while time.monotonic() < deadline and not any(flow_run.name in m.get("text", "") for m in received):
        time.sleep(1)
    [alert] = [m for m in received if flow_run.name in m.get("text", "")]
    assert "Failed" in alert["text"] and "is not published at" in alert["text"]
    assert "etl-web-to-gcs" in alert["text"]


@pytest.mark.prefect2  # Prefect 3 keeps the flow waiting for its server; its heartbeats answer this (below)
def test_a_run_whose_prefect_server_died_ends_crashed_when_the_server_starts_again_and_alerts(webhook, tmp_path,
                                                                                          request):
    """The Prefect server is killed while a flow runs; the flow's process dies at its next call to the
    API (it cannot report its own crash). Starting the server again, as `make stack` does, marks the
    run Crashed, and the failure notification fires."""
    url, received = webhook
    server, root, port = PrefectServer(), tmp_path / "prefect-stack", free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    ctl.start(server, port, root)
    request.addfinalizer(lambda: ctl.stop(server, root))  # whatever fails first (stopping twice is harmless)
    env = {**os.environ, "PREFECT_API_URL": api_url, "NYC_TLC_DATA_DIR": str(tmp_path / "data")}
    run(str(BIN / "python"), str(REPO / "blocks" / "make_notification_block.py"), "--url", url, env=env)
    # The flow checks its block before it starts (cli.run): this server gets the stack's.
    run(str(BIN / "python"), str(REPO / "blocks" / "make_gcp_blocks.py"), "--local", env=env)
    with slow_flow(tmp_path, env, month=4, slow_s=12) as flow:
        deadline = time.monotonic() + 60
        while not (running := [r for r in call(api_url, "/flow_runs/filter", {})
                               if r["state_type"] == "RUNNING" and r["infrastructure_pid"]]):
            assert time.monotonic() < deadline and flow.poll() is None, "the flow never ran"
            time.sleep(0.5)
        [flow_run] = running
        assert flow_run["infrastructure_pid"].endswith(f":{flow.pid}")  # the run recorded its process
        ctl.stop(server, root)  # the server goes away mid-run
        assert flow.wait(timeout=120) != 0  # the flow dies when it next needs the API
    assert staged_files(tmp_path / "data") == []  # nor the partial download
    # Its output ends with one line saying what happened and what to do.
    assert (tmp_path / "flow.log").read_text().strip().splitlines()[-1] == (
        f"etl_web_to_gcs.py: the Prefect API at {api_url} stopped answering mid-run (connection refused): once it "
        "is back (make stack), the run is marked Crashed; then run the script again (a month is replaced whole, "
        "never doubled)")

    # The same port at once, though the server's last connections wait in TIME_WAIT: as `make stack` does.
    assert ctl.port_free(port)
    ctl.start(server, port, root)
    try:
        state = call(api_url, f"/flow_runs/{flow_run['id']}")["state"]
        assert state["type"] == "CRASHED"
        assert f"(pid {flow.pid} on " in state["message"]
        assert "ended while the Prefect server was unreachable" in state["message"]
        deadline = time.monotonic() + 90  # the restarted server's notification service runs every few seconds
        while time.monotonic() < deadline and not any(flow_run["name"] in m.get("text", "") for m in received):
            time.sleep(1)
        [alert] = [m for m in received if flow_run["name"] in m.get("text", "")]
        assert "Crashed" in alert["text"]
    finally:
        ctl.stop(server, root)


@pytest.mark.prefect2  # the hang is Prefect 2.20's engine's
def test_a_server_gone_while_a_task_run_is_set_up_ends_the_script_with_one_line(tmp_path):
    """The Prefect API dies exactly while the first task run resolves its result storage: Prefect 2.20
    logs the flow run's crash, and then waits for ever for the task (the CI run that found it was killed
    after 120 s). The script ends itself NYC_TLC_API_LOST_GRACE_S after the crash, with the one line."""
    api = DyingApi(os.environ["PREFECT_API_URL"], lambda method, path, seen: (
        ("POST", "/api/task_runs/") in seen and path.startswith("/api/block_types/slug/local-file-system")))
    env = {**os.environ, "PREFECT_API_URL": api.url + "/api", "NYC_TLC_DATA_DIR": str(tmp_path / "data")}
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(REPO / "flows" / "etl_web_to_gcs.py"), "--year", "2019", "--month", "4"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert api.dead.is_set(), "the API never died where it should: Prefect's calls have changed"
    assert "Crash detected! Request to" in done.stderr  # Prefect logged the crash, then waited
    assert done.returncode == 1
    assert time.monotonic() - started < 60
    assert done.stderr.strip().splitlines()[-1] == (
        f"etl_web_to_gcs.py: the Prefect API at {api.url}/api stopped answering mid-run (connection refused): once "
        "it is back (make stack), the run is marked Crashed; then run the script again (a month is replaced whole, "
        "never doubled)")


@pytest.mark.prefect2  # as above
def test_a_server_gone_with_a_month_staged_ends_the_script_and_removes_what_it_staged(tmp_path):
    """The API dies as write_local's task run is made, the month staged by clean: the script ends in
    the one line, and leaves no staged file (not even when it ends itself past Prefect's hang)."""
    api = DyingApi(os.environ["PREFECT_API_URL"], lambda method, path, seen: (
        (method, path) == ("POST", "/api/task_runs/") and seen.count(("POST", "/api/task_runs/")) == 2))
    data = tmp_path / "data"
    env = {**os.environ, "PREFECT_API_URL": api.url + "/api", "NYC_TLC_DATA_DIR": str(data)}
    done = subprocess.run([sys.executable, str(REPO / "flows" / "etl_web_to_gcs.py"), "--year", "2019", "--month", "4"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert api.dead.is_set(), "the API never died where it should: Prefect's calls have changed"
    assert done.returncode == 1
    assert "the Prefect API at" in done.stderr.strip().splitlines()[-1]
    assert list((data / "yellow").glob("*.parquet")) == []  # it died before write_local
    assert staged_files(data) == []


@pytest.mark.prefect3
def test_a_run_whose_process_is_killed_ends_crashed_on_its_own_and_alerts(webhook, tmp_path):
    """Prefect 3: the flow's heartbeats stop with its process; the stack's automation marks the run
    Crashed once they have been missing for a while, with no restart of anything, and that alerts."""
    url, received = webhook
    run(str(BIN / "python"), str(REPO / "blocks" / "make_notification_block.py"), "--url", url)
    env = {**os.environ, "NYC_TLC_DATA_DIR": str(tmp_path / "data")}
    assert env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == str(heartbeat_s())  # from the stack's env
    with slow_flow(tmp_path, env, month=5, slow_s=60) as flow:
        flow_run = wait_for_running_run_of(flow)
        flow.kill()  # the machine goes away: no hook runs, nothing reports
        flow.wait()
    killed_at = time.monotonic()
    deadline = killed_at + silence_s() + 3 * heartbeat_s() + 60
    while (state := api(lambda c: c.read_flow_run(flow_run.id)).state).type.value == "RUNNING":
        assert time.monotonic() < deadline, "the run stayed Running"
        time.sleep(2)
    assert state.type.value == "CRASHED"
    assert "no heartbeat" in state.message
    while time.monotonic() < deadline and not any(flow_run.name in m.get("text", "") for m in received):
        time.sleep(1)
    [alert] = [m for m in received if flow_run.name in m.get("text", "")]
    assert "Crashed" in alert["text"] and "no heartbeat" in alert["text"]


@contextmanager
def slow_flow(tmp_path, env: dict[str, str], month: int, slow_s: float) -> Iterator[subprocess.Popen]:
    """etl_web_to_gcs for yellow 2019-``month`` in a process of its own, its download held for
    ``slow_s`` seconds by a release server of the test's; killed at the end if it still runs."""
    with FaultServer(tmp_path / "release", slow_s=slow_s) as release:
        release.script("yellow", 2019, month, "slow")
        with open(tmp_path / "flow.log", "wb") as log:  # its output, for the test to read
            flow = subprocess.Popen([sys.executable, str(REPO / "flows" / "etl_web_to_gcs.py"), "--year", "2019",
                                     "--month", str(month)], env={**env, "NYC_TLC_BASE_URL": release.base_url},
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            yield flow
        finally:
            if flow.poll() is None:
                flow.kill()
                flow.wait()


def wait_for_running_run_of(flow: subprocess.Popen, timeout_s: float = 60):
    """The Running flow run of the process ``flow`` (its pid is the run's infrastructure_pid)."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = api(lambda c: c.read_flow_runs())
        mine = [r for r in runs if r.state and r.state.is_running() and (r.infrastructure_pid or "").endswith(f":{flow.pid}")]
        if mine:
            return mine[0]
        assert time.monotonic() < deadline and flow.poll() is None, "the flow never ran"
        time.sleep(0.5)


def call(api_url: str, path: str, body: dict | None = None):
    """The Prefect REST API (POST with ``body``, else GET) of a server of the test's own."""
    request = urllib.request.Request(api_url + path, method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())

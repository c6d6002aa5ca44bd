"""A failed flow run ends Failed, says why, and can alert someone through a webhook."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from etl_web_to_gcs import etl_web_to_gcs
from faults import FaultServer
from helpers import BIN, REPO, api, run


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

    async def remove_policies(client):  # later failures in the session should alert nobody
        from prefect.client.schemas.filters import FlowRunNotificationPolicyFilter

        for policy in await client.read_flow_run_notification_policies(FlowRunNotificationPolicyFilter()):
            await client.delete_flow_run_notification_policy(policy.id)

    api(remove_policies)


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

"""Which process runs a flow run, so that a run whose process died can be told from a live one.

Prefect 2 has no heartbeat for flow runs: a process that dies while the API is out of
reach (it cannot report its own crash) leaves its run Running for ever, and no failure
notification fires. So each flow run records its process as Prefect's agents do for
theirs (``infrastructure_pid`` = ``host:pid``), and when the local stack starts its
Prefect server it marks Crashed the Running runs whose process is gone
(``stack/crashed_runs.py``).
"""
from __future__ import annotations

import os
import socket

from prefect.client.orchestration import get_client


async def record_process(flow, flow_run, state) -> None:
    """``on_running`` hook: record this process as the run's ``infrastructure_pid``, unless the
    agent that started it recorded its own (a container's id, say)."""
    async with get_client() as client:
        if (await client.read_flow_run(flow_run.id)).infrastructure_pid:
            return
        await client.update_flow_run(flow_run.id, infrastructure_pid=f"{socket.gethostname()}:{os.getpid()}")

"""Mark Crashed the flow runs left Running by a process that died while the Prefect server was away.

Prefect 2 has no heartbeat for flow runs. A flow whose process dies while the API is
unreachable cannot report its own crash, so its run stays Running for ever and no
failure notification fires. Each run records its process (``flows/run_hooks.py``, and
Prefect's agents for theirs) as ``infrastructure_pid`` = ``host:pid``; when the local
stack starts its Prefect server, the Running runs of this host whose process is gone
(or is a later process with the same id) are set Crashed, which notifies as any crash.
Runs of other hosts, or in containers, are left alone: this host cannot tell.
"""
from __future__ import annotations

import json
import os
import socket
import urllib.request
from datetime import datetime
from pathlib import Path

from nyctaxi.resources import setting

PAGE = 200


def _api(api_url: str, path: str, body: dict) -> object:
    request = urllib.request.Request(f"{api_url}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def _started_at(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if there is no such process."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        try:  # no /proc (macOS): whether the process exists is all there is to know
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0.0
    except (OSError, IndexError, ValueError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _process_gone(infrastructure_pid: str | None, run_started: str | None) -> int | None:
    """The pid of a run of this host whose process is gone, else None (alive, elsewhere, or unknown)."""
    host, _, pid = (infrastructure_pid or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    started = _started_at(int(pid))
    if started is None:
        return int(pid)
    if run_started:  # a process with that id that started after the run is another process
        run_start = datetime.fromisoformat(run_started.replace("Z", "+00:00")).timestamp()
        if started > run_start + 1:
            return int(pid)
    return None


def mark_crashed(api_url: str) -> list[str]:
    """Set Crashed every Running run of this host whose process is gone; return their names."""
    marked, offset = [], 0
    while True:
        runs = _api(api_url, "/flow_runs/filter", {
            "flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}, "limit": PAGE, "offset": offset})
        for run in runs:
            pid = _process_gone(run.get("infrastructure_pid"), run.get("start_time"))
            if pid is None:
                offset += 1  # still Running: the next page starts after it
                continue
            _api(api_url, f"/flow_runs/{run['id']}/set_state", {"force": True, "state": {
                "type": "CRASHED", "name": "Crashed",
                "message": f"The process running this flow run (pid {pid} on {socket.gethostname()}) ended while "
                           "the Prefect server was unreachable, so it could not report its end: marked Crashed "
                           "when the server started again.",
            }})
            marked.append(run["name"])
        if len(runs) < PAGE:
            return marked


def main() -> None:
    """``python stack/crashed_runs.py``: the same for any Prefect 2 server (``PREFECT_API_URL``), run on
    the machine that runs the flows, once the server is back."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api-url", default=setting("PREFECT_API_URL"),
                        help="the Prefect API (default: $PREFECT_API_URL)")
    args = parser.parse_args()
    if not args.api_url:
        parser.error("no API: pass --api-url or set PREFECT_API_URL (the local stack's: source .stack/env)")
    marked = mark_crashed(args.api_url.rstrip("/"))
    print(f"marked Crashed: {', '.join(marked)}" if marked else "no Running flow run of this machine lost its process")


if __name__ == "__main__":
    main()

"""Start, stop and describe the embedded local stack.

``python stack/ctl.py up`` starts, bound to 127.0.0.1 and in the background:
a Prefect server (SQLite, analytics off), gcp-storage-emulator on disk with the
lake bucket, and the HTTP mirror of the release files; then writes the
environment the flows need to ``<stack dir>/env`` and saves the local blocks.
It is idempotent: running parts are kept, stopped ones are started again.
``down`` stops, by PID, what ``up`` started. The stack dir is ``$STACK_DIR`` or
the repository's ``.stack/``.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROJECT = "dezoomcamp-local"
BUCKET = "dezoomcamp-local-lake"
DEFAULT_MIRROR_ROWS = "100000"


def stack_dir() -> Path:
    return Path(os.environ.get("STACK_DIR") or REPO / ".stack").resolve()


@dataclass(frozen=True)
class Service:
    name: str
    preferred_port: int
    health_path: str
    start_timeout_s: float

    def command(self, port: int, root: Path) -> list[str]:
        if self.name == "prefect-server":
            return [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        if self.name == "gcs":
            return [str(BIN / "gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(port),
                    "--default-bucket", BUCKET, "-q"]
        rows = os.environ.get("NYC_TLC_MIRROR_ROWS", DEFAULT_MIRROR_ROWS)
        return [sys.executable, str(REPO / "stack" / "mirror.py"), "--port", str(port),
                "--dir", str(root / "mirror"), "--rows", rows]

    def env(self, root: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "STORAGE_"))}
        if self.name == "prefect-server":
            env.update(PREFECT_HOME=str(root / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
        elif self.name == "gcs":
            env.update(STORAGE_BASE=str(root / "gcs"))
        return env


SERVICES = (
    # 4200 is the course's UI address; any taken port is replaced by a free one.
    Service("prefect-server", 4200, "/api/health", 120.0),
    Service("gcs", 9023, "/storage/v1/b", 30.0),
    Service("mirror", 8765, "/healthz", 30.0),
)


# --- processes ---------------------------------------------------------------------------

def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a PID apart from a later reuse of it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _read_pid(root: Path, name: str) -> int | None:
    try:
        record = json.loads((root / "pids" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None
    pid = record.get("pid")
    return pid if pid and _start_time(pid) == record.get("start_time") else None


def _healthy(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # No SO_REUSEADDR: `prefect server start` refuses a port still in TIME_WAIT, so we do too.
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ports(root: Path) -> dict[str, int]:
    try:
        return json.loads((root / "ports.json").read_text())
    except (OSError, ValueError):
        return {}


def _start(service: Service, port: int, root: Path) -> int:
    log = open(root / "logs" / f"{service.name}.log", "ab")
    process = subprocess.Popen(
        service.command(port, root), cwd=root, env=service.env(root), stdin=subprocess.DEVNULL,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,  # own group: down stops children too
    )
    (root / "pids" / f"{service.name}.json").write_text(
        json.dumps({"pid": process.pid, "start_time": _start_time(process.pid), "port": port})
    )
    return process.pid


def _wait_healthy(service: Service, port: int, pid: int, root: Path) -> None:
    deadline = time.monotonic() + service.start_timeout_s
    while time.monotonic() < deadline:
        if _healthy(port, service.health_path):
            return
        if _start_time(pid) is None:
            break
        time.sleep(0.5)
    tail = (root / "logs" / f"{service.name}.log").read_text(errors="replace")[-3000:]
    raise SystemExit(f"{service.name} did not become healthy on port {port}; its log ends:\n{tail}")


# --- commands ----------------------------------------------------------------------------

def up(register_blocks: bool = True) -> Path:
    root = stack_dir()
    for sub in ("logs", "pids", "gcs", "mirror", "prefect"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ports = _ports(root)
    started = []
    for service in SERVICES:
        pid, port = _read_pid(root, service.name), ports.get(service.name)
        if pid and port and _healthy(port, service.health_path):
            print(f"{service.name}: running (pid {pid}, port {port})")
            continue
        if pid:
            _kill(pid)
        port = next((p for p in (port, service.preferred_port) if p and _port_free(p)), None) or _free_port()
        ports[service.name] = port
        started.append((service, port, _start(service, port, root)))
    for service, port, pid in started:
        _wait_healthy(service, port, pid, root)
        print(f"{service.name}: started (pid {pid}, port {port})")
    (root / "ports.json").write_text(json.dumps(ports))
    env_file = write_env(root, ports)
    if register_blocks:
        subprocess.run([sys.executable, str(REPO / "blocks" / "make_gcp_blocks.py"), "--local"],
                       env={**os.environ, **read_env(env_file)}, check=True)
    print(f"environment: source {env_file}")
    print(f"Prefect UI:  http://127.0.0.1:{ports['prefect-server']}")
    return env_file


def write_env(root: Path, ports: dict[str, int]) -> Path:
    """Write the sourceable environment of the stack and the offline Google credentials."""
    adc = root / "adc.json"
    # An authorized_user token that never expires: the Google clients ask nobody for it.
    adc.write_text(json.dumps({
        "type": "authorized_user", "client_id": "emulator.apps.googleusercontent.com",
        "client_secret": "emulator", "refresh_token": "emulator", "token": "emulator-token",
        "expiry": "2099-01-01T00:00:00Z", "quota_project_id": PROJECT,
    }))
    env = {
        "PREFECT_HOME": root / "prefect",
        "PREFECT_API_URL": f"http://127.0.0.1:{ports['prefect-server']}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{ports['gcs']}",
        "NYC_TLC_BASE_URL": f"http://127.0.0.1:{ports['mirror']}",
        "GOOGLE_APPLICATION_CREDENTIALS": adc,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "NO_GCE_CHECK": "true",
        "GCS_BUCKET": BUCKET,
        "GCS_STORAGE_DIR": root / "gcs" / ".cloudstorage",
    }
    path = root / "env"
    path.write_text("# The local stack's environment: source it (written by stack/ctl.py up).\n"
                    + "".join(f"export {k}={shlex.quote(str(v))}\n" for k, v in env.items()))
    return path


def read_env(path: Path) -> dict[str, str]:
    """The variables of an env file written by ``write_env``."""
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def _kill(pid: int) -> None:
    for sig, wait_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if _start_time(pid) is None or Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z":
                return
            time.sleep(0.2)


def down() -> None:
    root = stack_dir()
    for service in SERVICES:
        pid = _read_pid(root, service.name)
        if pid:
            _kill(pid)
            print(f"{service.name}: stopped (pid {pid})")
        (root / "pids" / f"{service.name}.json").unlink(missing_ok=True)


def status() -> int:
    root, ports, down_count = stack_dir(), _ports(stack_dir()), 0
    for service in SERVICES:
        pid, port = _read_pid(root, service.name), ports.get(service.name)
        ok = bool(pid and port and _healthy(port, service.health_path))
        down_count += not ok
        print(f"{service.name}: {'running' if ok else 'not running'}" + (f" (pid {pid}, port {port})" if ok else ""))
    return 1 if down_count else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--no-blocks", action="store_true", help="up: do not save the local blocks")
    args = parser.parse_args()
    if args.command == "up":
        up(register_blocks=not args.no_blocks)
    elif args.command == "down":
        down()
    else:
        sys.exit(status())


if __name__ == "__main__":
    main()

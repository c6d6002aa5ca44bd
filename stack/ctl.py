"""Start, stop and describe the embedded local stack.

``python stack/ctl.py up`` starts, bound to 127.0.0.1 and in the background, the
services of ``services.py`` (a Prefect server, the GCS emulator, the release mirror,
PostgreSQL), then writes the environment the flows need to ``<stack dir>/env`` and
saves the local blocks. It is idempotent: running parts are kept, stopped ones are
started again. ``down`` stops, by PID, what ``up`` started. ``sql`` opens psql on its
PostgreSQL as the flows' role (``make sql``). The stack dir is
``$STACK_DIR`` or the repository's ``.stack/``.
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
from pathlib import Path

from nyctaxi import resources
from stack import pg_cluster
from stack.services import PROJECT, REPO, SERVICES, FileContent, Service, client_env, free_port


def stack_dir() -> Path:
    return resources.stack_dir()


# --- processes ---------------------------------------------------------------------------

def _start_time(pid: int) -> str | None:
    """The kernel's start time of a live ``pid`` (tells a PID apart from a later reuse of it)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def _pid_file(root: Path, service: Service) -> Path:
    return root / "pids" / f"{service.name}.json"


def _read_pid(root: Path, service: Service) -> int | None:
    try:
        record = json.loads(_pid_file(root, service).read_text())
    except (OSError, ValueError):
        return None
    pid = record.get("pid")
    return pid if pid and _start_time(pid) == record.get("start_time") else None


def port_free(port: int) -> bool:
    # With SO_REUSEADDR, as every server of the stack binds: a port whose last connections still
    # wait in TIME_WAIT (for a minute after a server stopped) is free to them, so it is kept.
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(service: Service, before: int | None, env_file: Path) -> int:
    """The port ``service`` had before, else its preferred one, else any free one. Shells and
    bookmarks keep working across restarts; if the old port is taken, say so in one line. With
    ``NYC_TLC_STACK_PORTS=any`` (the tests' stacks), never the preferred one: stacks started side
    by side would race for it."""
    preferred = service.preferred_port if resources.setting("NYC_TLC_STACK_PORTS") != "any" else None
    port = next((p for p in (before, preferred) if p and port_free(p)), None) or free_port()
    if before and port != before:
        print(f"{service.name}: port {before} is taken by another program, so it moves to {port}: "
              f"run `source {env_file}` again in the shells that use the stack")
    return port


def _ports(root: Path) -> dict[str, int]:
    try:
        return json.loads((root / "ports.json").read_text())
    except (OSError, ValueError):
        return {}


def _start(service: Service, port: int, root: Path) -> int:
    with open(root / "logs" / f"{service.name}.log", "ab") as log:
        process = subprocess.Popen(
            service.command(port, root), cwd=root, env=service.env(root, port), **service.identity(),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: down stops its children too
        )
    _pid_file(root, service).write_text(
        json.dumps({"pid": process.pid, "start_time": _start_time(process.pid), "port": port})
    )
    return process.pid


def _wait_healthy(service: Service, port: int, pid: int, root: Path) -> None:
    deadline = time.monotonic() + service.start_timeout_s
    while time.monotonic() < deadline:
        if service.healthy(root, port):
            return
        if _start_time(pid) is None:
            break
        time.sleep(0.3)
    tail = (root / "logs" / f"{service.name}.log").read_text(errors="replace")[-3000:]
    raise SystemExit(f"{service.name} did not become healthy on port {port}; its log ends:\n{tail}")


def _kill(pid: int, first: signal.Signals) -> None:
    for sig, wait_s in ((first, 20.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if _start_time(pid) is None:
                return
            time.sleep(0.1)


# --- commands ----------------------------------------------------------------------------

def start(service: Service, port: int, root: Path) -> int:
    """Start ``service`` on ``port`` with its state under ``root``, wait until it answers, run its
    ``started`` and ``ready`` steps; return its pid. (``up`` starts them all at once instead.)"""
    for sub in ("logs", "pids"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    service.prepare(root)
    pid = _start(service, port, root)
    _wait_healthy(service, port, pid, root)
    service.started(root, port)
    service.ready(root, port)
    return pid


def stop(service: Service, root: Path) -> None:
    """Stop ``service`` of the stack under ``root``, by PID."""
    pid = _read_pid(root, service)
    if pid:
        _kill(pid, service.stop_signal)
    _pid_file(root, service).unlink(missing_ok=True)


def up(register_blocks: bool = True) -> Path:
    root = stack_dir()
    for sub in ("logs", "pids"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ports = _ports(root)
    started = []
    for service in SERVICES:
        pid, port = _read_pid(root, service), ports.get(service.name)
        if pid and port and service.healthy(root, port):
            print(f"{service.name}: running (pid {pid}, port {port})")
            continue
        if pid:
            _kill(pid, service.stop_signal)
        service.prepare(root)
        port = choose_port(service, port, root / "env")
        ports[service.name] = port
        started.append((service, port, _start(service, port, root)))
    for service, port, pid in started:
        _wait_healthy(service, port, pid, root)
        service.started(root, port)
        print(f"{service.name}: started (pid {pid}, port {port})")
    for service in SERVICES:
        service.ready(root, ports[service.name])
    (root / "ports.json").write_text(json.dumps(ports))
    env_file = write_env(root, ports)
    if register_blocks:
        env = {**os.environ, **read_env(env_file)}
        for script in ("make_gcp_blocks.py", "make_postgres_block.py"):
            subprocess.run([sys.executable, str(REPO / "blocks" / script), "--local"], env=env, check=True)
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
    env: dict[str, object] = {
        "GOOGLE_APPLICATION_CREDENTIALS": adc,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "NO_GCE_CHECK": "true",
    }
    for service in SERVICES:
        env.update(service.exports(root, ports[service.name]))
    path = root / "env"
    path.write_text("# The local stack's environment: source it (written by stack/ctl.py up).\n"
                    + "".join(f"export {k}={_shell_value(v)}\n" for k, v in env.items()))
    return path


def _shell_value(value: object) -> str:
    # A secret stays in its owner-only file: the env file reads it when sourced.
    return f'"$(cat {shlex.quote(str(value))})"' if isinstance(value, FileContent) else shlex.quote(str(value))


def read_env(path: Path) -> dict[str, str]:
    """The variables of an env file written by ``write_env``, as a shell that sources it has them."""
    exports = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            if value.startswith('"$(cat ') and value.endswith(')"'):
                exports[key] = FileContent(shlex.split(value[len('"$(cat '):-len(')"')])[0])
            else:
                exports[key] = shlex.split(value)[0] if value else ""
    return client_env(exports)


def down() -> None:
    root = stack_dir()
    for service in reversed(SERVICES):
        pid = _read_pid(root, service)
        stop(service, root)
        if pid:
            print(f"{service.name}: stopped (pid {pid})")


def status() -> int:
    root, ports, not_running = stack_dir(), _ports(stack_dir()), 0
    for service in SERVICES:
        pid, port = _read_pid(root, service), ports.get(service.name)
        ok = bool(pid and port and service.healthy(root, port))
        not_running += not ok
        print(f"{service.name}: " + (f"running (pid {pid}, port {port})" if ok else "not running"))
    return 1 if not_running else 0


def sql(statement: str | None = None) -> None:
    """Open psql on the stack's PostgreSQL as the flows' role (database ``ny_taxi``), or run ``statement``.

    The command is printed first (the password comes from its file, never from the command line)."""
    env_file = stack_dir() / "env"
    if not env_file.is_file():
        sys.exit("no local stack here: run `make stack` first")
    env = read_env(env_file)
    postgres = next(s for s in SERVICES if s.name == "postgres")
    if not _read_pid(stack_dir(), postgres):  # another program may hold its port now
        sys.exit("the local stack's PostgreSQL is not running: run `make stack` first")
    psql = str(pg_cluster.bin_dir() / "psql")
    command = [psql, "-h", env["POSTGRES_HOST"], "-p", env["POSTGRES_PORT"], "-U", env["POSTGRES_USER"],
               env["POSTGRES_DB"], *(["-c", statement] if statement else [])]
    print(f"PGPASSWORD=$(cat {env['POSTGRES_PASSWORD_FILE']}) {shlex.join(command)}", file=sys.stderr, flush=True)
    password = Path(env["POSTGRES_PASSWORD_FILE"]).read_text().strip()
    os.execve(psql, command, {**os.environ, "PGPASSWORD": password})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "sql"])
    parser.add_argument("--no-blocks", action="store_true", help="up: do not save the local blocks")
    parser.add_argument("-c", dest="statement", default=None, help="sql: run this statement and exit")
    args = parser.parse_args()
    if args.command == "up":
        up(register_blocks=not args.no_blocks)
    elif args.command == "down":
        down()
    elif args.command == "sql":
        sql(args.statement)
    else:
        sys.exit(status())


if __name__ == "__main__":
    main()

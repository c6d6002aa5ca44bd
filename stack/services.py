"""The parts of the local stack: how each is started, checked and described to the flows."""
from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from nyctaxi.resources import DATASET, setting
from nyctaxi.runtime import PREFECT_MAJOR, heartbeat_s
from stack import crashed_runs, pg_cluster

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROJECT = "dezoomcamp-local"
BUCKET = "dezoomcamp-local-lake"


def free_port() -> int:
    """A port on 127.0.0.1 that nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_ok(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class FileContent(type(Path())):
    """An exported value read from this file when used: the env file names the file, not the secret."""


def client_env(exports: dict[str, object]) -> dict[str, str]:
    """``exports`` as environment variables, files' contents read."""
    return {k: v.read_text().strip() if isinstance(v, FileContent) else str(v) for k, v in exports.items()}


class Service:
    """A background server of the stack, on one port of 127.0.0.1."""

    name = ""
    preferred_port = 0
    health_path = "/"
    start_timeout_s = 30.0
    stop_signal = signal.SIGTERM

    def prepare(self, root: Path) -> None:
        """One-time set-up before the first start."""

    def command(self, port: int, root: Path) -> list[str]:
        raise NotImplementedError

    def env(self, root: Path, port: int) -> dict[str, str]:
        """The server process's environment: ours, without the flows' settings."""
        return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "STORAGE_", "BIGQUERY_"))}

    def identity(self) -> dict:
        """subprocess arguments for the user the server runs as (default: ours)."""
        return {}

    def healthy(self, root: Path, port: int) -> bool:
        return _http_ok(port, self.health_path)

    def ready(self, root: Path, port: int) -> None:
        """Set-up once the server answers (databases, datasets)."""

    def started(self, root: Path, port: int) -> None:
        """What to do when this server has just been started (not when it was running already)."""

    def exports(self, root: Path, port: int) -> dict[str, object]:
        """What the flows need to know about this server, for the env file."""
        return {}


class PrefectServer(Service):
    name, preferred_port, health_path, start_timeout_s = "prefect-server", 4200, "/api/health", 120.0

    def command(self, port, root):
        # What `prefect server start` runs, without its check of the port: that binds without
        # SO_REUSEADDR, so it refuses the stack's own port for a minute after a restart.
        app_dir = Path(importlib.util.find_spec("prefect").origin).parents[1]
        return [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory",
                "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
                "--timeout-keep-alive", "5"]

    def env(self, root, port):
        env = {**super().env(root, port), "PREFECT_HOME": str(root / "prefect"),
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               # The UI asks this address for the API. Prefect's default is port 4200's, whatever ours is:
               # on Prefect 3 the UI sent the stack's credentials to whatever listened there.
               "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
               # Where the server copies the UI it serves (Prefect's default is inside the venv, shared:
               # two servers of one venv starting at once raced to delete and copy it, and one died).
               "PREFECT_UI_STATIC_DIRECTORY": str(root / "prefect" / "ui")}
        if loop_s := setting("NYC_TLC_SERVER_LOOP_S"):  # both releases read the 2.x name
            env["PREFECT_API_SERVICES_SCHEDULER_LOOP_SECONDS"] = loop_s
        if PREFECT_MAJOR >= 3:  # only Prefect 3's server can ask for credentials
            env["PREFECT_SERVER_API_AUTH_STRING"] = self.auth_file(root).read_text().strip()
        return env

    @staticmethod
    def auth_file(root: Path) -> Path:
        """The API's basic-auth credentials (``user:password``), owner-only, made once per stack."""
        path = root / "prefect-api-auth"
        if not path.exists():
            root.mkdir(parents=True, exist_ok=True)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(f"nyctaxi:{secrets.token_urlsafe(24)}\n")
        return path

    def started(self, root, port):
        # Prefect 2: runs whose process died while this server was down: Crashed now, so their
        # notifications fire. (Prefect 3's heartbeats tell, see ready.)
        if PREFECT_MAJOR < 3:
            for name in crashed_runs.mark_crashed(f"http://127.0.0.1:{port}/api"):
                print(f"{self.name}: flow run {name!r} was left Running by a process that is gone: marked Crashed")

    def ready(self, root, port):
        # Prefect 3: runs whose heartbeats stop are Crashed by an automation (nyctaxi/runtime.py). In a
        # process of its own: this one may not read Prefect's settings yet (the tests set them later).
        if PREFECT_MAJOR >= 3:
            env = {**super().env(root, port), **client_env(self.exports(root, port))}
            subprocess.run([sys.executable, "-c", "import asyncio; from nyctaxi.runtime import crash_silent_runs; "
                            "asyncio.run(crash_silent_runs())"], env=env, check=True)

    def exports(self, root, port):
        exports = {"PREFECT_HOME": root / "prefect", "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        if PREFECT_MAJOR >= 3:
            exports["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = heartbeat_s()
            exports["PREFECT_API_AUTH_STRING"] = FileContent(self.auth_file(root))
        return exports


class GcsEmulator(Service):
    name, preferred_port, health_path = "gcs", 9023, "/storage/v1/b"

    def command(self, port, root):
        return [str(BIN / "gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(port),
                "--default-bucket", BUCKET, "-q"]

    def env(self, root, port):
        return {**super().env(root, port), "STORAGE_BASE": str(root / "gcs")}

    def exports(self, root, port):
        return {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}", "GCS_BUCKET": BUCKET,
                "GCS_STORAGE_DIR": root / "gcs" / ".cloudstorage"}


class Mirror(Service):
    name, preferred_port, health_path = "mirror", 8765, "/healthz"

    def command(self, port, root):
        rows = setting("NYC_TLC_MIRROR_ROWS")
        return [sys.executable, str(REPO / "stack" / "mirror.py"), "--port", str(port),
                "--dir", str(root / "mirror"), "--rows", rows]

    def exports(self, root, port):
        return {"NYC_TLC_BASE_URL": f"http://127.0.0.1:{port}"}


class BigQueryEmulator(Service):
    name, preferred_port, health_path = "bigquery", 9050, "/healthz"

    def command(self, port, root):
        grpc_port = free_port()  # nobody here uses its gRPC API: any free port will do
        return [sys.executable, str(REPO / "stack" / "bq_emulator.py"), "start",
                "--rest-host", "127.0.0.1", "--rest-port", str(port), "--grpc-host", "127.0.0.1",
                "--grpc-port", str(grpc_port), "--persistent", "--data-dir", str(root / "bigquery"),
                "--project", PROJECT]

    def env(self, root, port):
        # gs:// loads read the GCS emulator's objects straight from its folder.
        return {**super().env(root, port), "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
                "BQEMU_GCS_LOCAL_ROOT": str(root / "gcs" / ".cloudstorage")}

    def prepare(self, root):
        (root / "bigquery").mkdir(parents=True, exist_ok=True)

    def ready(self, root, port):
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        client = bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(),
                                 client_options=ClientOptions(api_endpoint=f"http://127.0.0.1:{port}"))
        dataset = bigquery.Dataset(f"{PROJECT}.{DATASET}")
        dataset.location = "US"
        client.create_dataset(dataset, exists_ok=True)

    def exports(self, root, port):
        return {"BIGQUERY_EMULATOR_HOST": f"http://127.0.0.1:{port}"}


class Postgres(Service):
    name, preferred_port = "postgres", 5432
    stop_signal = signal.SIGINT  # "fast" shutdown: does not wait for clients to leave

    def prepare(self, root):
        pg_cluster.ensure_cluster(root)

    def command(self, port, root):
        return pg_cluster.server_command(root / "postgres" / "data", port)

    def identity(self):
        return pg_cluster.identity()

    def healthy(self, root, port):
        try:
            pg_cluster.connect(root, port).close()
            return True
        except Exception:  # noqa: BLE001 - any failure to connect means "not yet"
            return False

    def ready(self, root, port):
        pg_cluster.ensure_database(root, port)

    def exports(self, root, port):
        # POSTGRES_USER is the flows' role (the postgres-connector block); the superuser is for setting up.
        return {"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": port, "POSTGRES_DB": pg_cluster.DATABASE,
                "POSTGRES_USER": pg_cluster.ETL_USER,
                "POSTGRES_PASSWORD_FILE": pg_cluster.password_file(root, pg_cluster.ETL_USER),
                "POSTGRES_ADMIN_USER": pg_cluster.DB_USER,
                "POSTGRES_ADMIN_PASSWORD_FILE": pg_cluster.password_file(root, pg_cluster.DB_USER)}


SERVICES: tuple[Service, ...] = (PrefectServer(), GcsEmulator(), BigQueryEmulator(), Mirror(), Postgres())

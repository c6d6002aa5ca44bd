"""The flows connect to PostgreSQL as a role that owns the project's tables and can do nothing more."""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest
from psycopg2.errors import InsufficientPrivilege

from etl_web_to_postgres import etl_web_to_postgres
from helpers import REPO, postgres_connection, save_blocks

ETL_ROLE = "ny_taxi_etl"


def admin_connection():
    conn = psycopg2.connect(host=os.environ["POSTGRES_HOST"], port=int(os.environ["POSTGRES_PORT"]),
                            user=os.environ["POSTGRES_ADMIN_USER"], dbname=os.environ["POSTGRES_DB"],
                            password=Path(os.environ["POSTGRES_ADMIN_PASSWORD_FILE"]).read_text().strip())
    conn.autocommit = True
    return conn


@contextmanager
def as_the_flows_role():
    """A cursor of an autocommit connection as the block's role: each statement on its own (psycopg2's
    ``with connection`` would open a transaction, where CREATE DATABASE cannot run)."""
    conn = postgres_connection()
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def test_the_block_connects_as_a_role_that_is_no_superuser_and_cannot_create_databases_or_roles(tmp_path,
                                                                                                monkeypatch):
    from prefect_sqlalchemy import SqlAlchemyConnector

    assert SqlAlchemyConnector.load("postgres-connector").connection_info.username == ETL_ROLE
    monkeypatch.setenv("NYC_TLC_DATA_DIR", str(tmp_path / "data"))
    etl_web_to_postgres(year=2019, month=3, color="green", table="t_owned")

    with as_the_flows_role() as cur:
        cur.execute("SELECT current_user, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles "
                    "WHERE rolname = current_user")
        assert cur.fetchone() == (ETL_ROLE, False, False, False, False)
        cur.execute("SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relname LIKE 't_owned%%'")
        assert cur.fetchall() == [(ETL_ROLE,)]  # the table and its partition are the role's own
        for statement in ("CREATE DATABASE not_allowed", "CREATE ROLE not_allowed", "ALTER ROLE CURRENT_USER SUPERUSER",
                          "CREATE FUNCTION not_allowed() RETURNS int LANGUAGE sql AS 'SELECT 1'",
                          "CREATE FUNCTION not_allowed() RETURNS int LANGUAGE plpgsql AS 'BEGIN RETURN 1; END'",
                          "CREATE TEMPORARY TABLE not_allowed (a int)"):
            with pytest.raises(InsufficientPrivilege):
                cur.execute(statement)
    for database in ("postgres", "template1"):  # PUBLIC's right to connect anywhere was revoked
        with pytest.raises(psycopg2.OperationalError, match=f'permission denied for database "{database}"'):
            postgres_connection(database)


@pytest.mark.plain
def test_a_table_the_role_does_not_own_is_out_of_its_reach():
    admin = admin_connection()
    with admin.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS t_admins_own; CREATE TABLE t_admins_own (secret text)")
    admin.close()
    with as_the_flows_role() as cur:
        for statement in ("SELECT * FROM t_admins_own", "TRUNCATE t_admins_own", "DROP TABLE t_admins_own"):
            with pytest.raises(InsufficientPrivilege):
                cur.execute(statement)


def test_saving_the_block_with_a_superuser_warns_and_says_what_to_do():
    admin_password = Path(os.environ["POSTGRES_ADMIN_PASSWORD_FILE"]).read_text().strip()
    env = {**os.environ, "POSTGRES_PASSWORD": admin_password, "POSTGRES_PASSWORD_FILE": ""}
    try:
        result = subprocess.run([sys.executable, str(REPO / "blocks" / "make_postgres_block.py"), "--host",
                                 os.environ["POSTGRES_HOST"], "--port", os.environ["POSTGRES_PORT"],
                                 "--user", os.environ["POSTGRES_ADMIN_USER"]],
                                env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
        assert "'root' is a superuser" in result.stderr and "create a role for them" in result.stderr
        assert admin_password not in result.stdout + result.stderr
    finally:
        local = save_blocks("make_postgres_block.py", "--local")
    assert "superuser" not in local  # the stack's own block uses the flows' role

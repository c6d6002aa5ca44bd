"""blocks/make_gcp_blocks.py, for real GCP and for the local stack, against the stack's Prefect server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect_gcp import GcpCredentials
from prefect_gcp.cloud_storage import GcsBucket

from helpers import delete_block, new_private_key, save_blocks
from nyctaxi.resources import GcsBlock, gcs_bucket, google_credentials, lake_bucket

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "blocks" / "make_gcp_blocks.py"

PRIVATE_KEY = new_private_key()
KEY_BODY = PRIVATE_KEY.splitlines()[1]  # a line of the key's secret body


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env or dict(os.environ),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def restore_local_blocks():
    yield
    save_blocks("make_gcp_blocks.py", "--local")


def test_service_account_blocks_keep_the_key_secret(tmp_path, restore_local_blocks):
    key = tmp_path / "sa.json"
    key.write_text(json.dumps({
        "type": "service_account", "project_id": "my-dtc-project", "private_key_id": "abc123",
        "private_key": PRIVATE_KEY, "client_email": "prefect@my-dtc-project.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token",
    }))
    result = run("--key", str(key), "--bucket", "dtc_data_lake_my-dtc-project")
    assert result.returncode == 0, result.stderr
    assert KEY_BODY not in result.stdout + result.stderr and "abc123" not in result.stdout + result.stderr

    creds = GcpCredentials.load("zoom-gcp-creds")
    assert creds.project == "my-dtc-project"
    assert creds.service_account_info.get_secret_value()["private_key"] == PRIVATE_KEY
    assert KEY_BODY not in repr(creds) and KEY_BODY not in str(creds.service_account_info)
    bucket = GcsBucket.load("zoom-gcs")
    assert bucket.bucket == "dtc_data_lake_my-dtc-project"
    assert bucket.gcp_credentials.project == "my-dtc-project"
    # What the flows read of it, without prefect-gcp's classes: the same bucket, key and project.
    block = gcs_bucket()
    assert (block.bucket, block.bucket_folder) == ("dtc_data_lake_my-dtc-project", "")
    credentials, project = google_credentials(block.credentials)
    assert project == "my-dtc-project"
    assert credentials.service_account_email == "prefect@my-dtc-project.iam.gserviceaccount.com"
    assert lake_bucket(block).client.project == "my-dtc-project"


def test_key_and_bucket_can_come_from_the_environment(tmp_path, restore_local_blocks):
    key = tmp_path / "sa.json"
    key.write_text(json.dumps({"type": "service_account", "project_id": "p2", "private_key": PRIVATE_KEY,
                               "client_email": "x@p2.iam.gserviceaccount.com",
                               "token_uri": "https://oauth2.googleapis.com/token"}))
    env = {**os.environ, "GCP_SERVICE_ACCOUNT_FILE": str(key), "GCS_BUCKET": "lake-p2"}
    assert run(env=env).returncode == 0
    assert GcsBucket.load("zoom-gcs").bucket == "lake-p2"


@pytest.mark.plain
def test_a_file_that_is_not_a_service_account_key_is_refused(tmp_path):
    key = tmp_path / "adc.json"
    key.write_text(json.dumps({"type": "authorized_user", "refresh_token": "secret-refresh"}))
    result = run("--key", str(key), "--bucket", "b")
    assert result.returncode != 0 and "is not a service-account key" in result.stderr
    assert "secret-refresh" not in result.stdout + result.stderr


@pytest.mark.plain
def test_an_incomplete_or_broken_key_is_refused_without_quoting_it(tmp_path):
    key = tmp_path / "sa.json"
    key.write_text(json.dumps({"type": "service_account", "private_key": PRIVATE_KEY, "client_email": "x@p"}))
    result = run("--key", str(key), "--bucket", "b")
    assert result.returncode != 0 and "lacks the fields ['token_uri']" in result.stderr
    broken = PRIVATE_KEY.replace(KEY_BODY, KEY_BODY[::-1])
    key.write_text(json.dumps({"type": "service_account", "private_key": broken, "client_email": "x@p",
                               "token_uri": "https://oauth2.googleapis.com/token"}))
    result = run("--key", str(key), "--bucket", "b")
    assert result.returncode != 0 and "is not a usable service-account key" in result.stderr
    assert KEY_BODY[::-1] not in result.stdout + result.stderr


@pytest.mark.plain
def test_local_mode_needs_the_stack_environment():
    env = {k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"}
    result = run("--local", env=env)
    assert result.returncode != 0 and "source .stack/env" in result.stderr


def test_local_blocks_point_at_the_stack():
    assert run("--local").returncode == 0
    bucket = GcsBucket.load("zoom-gcs")
    assert bucket.bucket == os.environ["GCS_BUCKET"]
    assert bucket.gcp_credentials.service_account_info is None
    assert bucket.gcp_credentials.project == os.environ["GOOGLE_CLOUD_PROJECT"]
    block = gcs_bucket()
    assert block.bucket == os.environ["GCS_BUCKET"] and block.credentials["service_account_info"] is None
    assert google_credentials(block.credentials)[1] == os.environ["GOOGLE_CLOUD_PROJECT"]


def test_a_missing_bucket_block_says_how_to_make_it(restore_local_blocks):
    delete_block("gcs-bucket", "zoom-gcs")
    with pytest.raises(RuntimeError, match=r"no gcs-bucket block named 'zoom-gcs' on this Prefect server: "
                                           r"create it with `python blocks/make_gcp_blocks.py --help`"):
        gcs_bucket()


@pytest.mark.plain
def test_a_key_file_named_in_the_credentials_block_is_used(tmp_path):
    """``service_account_file`` (a block made in the UI may name a key file instead of holding it)."""
    key = tmp_path / "sa.json"
    key.write_text(json.dumps({"type": "service_account", "project_id": "p3", "private_key": PRIVATE_KEY,
                               "client_email": "x@p3.iam.gserviceaccount.com",
                               "token_uri": "https://oauth2.googleapis.com/token"}))
    credentials, project = google_credentials({"service_account_info": None, "service_account_file": str(key),
                                               "project": None})
    assert (project, credentials.service_account_email) == ("p3", "x@p3.iam.gserviceaccount.com")
    assert google_credentials({"service_account_file": str(key), "project": "other"})[1] == "other"


@pytest.mark.plain
def test_a_bucket_block_made_without_credentials_uses_application_default_credentials():
    block = GcsBlock.from_fields({"bucket": "b"})  # what a GcsBucket saved from the UI may hold
    assert block == GcsBlock("b", "", {})
    assert google_credentials(block.credentials)[1] == os.environ["GOOGLE_CLOUD_PROJECT"]  # the stack's ADC


PG_SCRIPT = REPO / "blocks" / "make_postgres_block.py"


def run_pg(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PG_SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def restore_local_postgres_block():
    yield
    save_blocks("make_postgres_block.py", "--local")


def test_postgres_block_keeps_the_password_secret(restore_local_postgres_block):
    from prefect_sqlalchemy import SqlAlchemyConnector

    secret = "s3cr3t-" + os.urandom(6).hex()
    env = {**os.environ, "POSTGRES_PASSWORD": secret, "POSTGRES_PASSWORD_FILE": ""}
    result = run_pg("--host", "db.example", "--port", "6543", "--user", "taxi", "--database", "ny_taxi", env=env)
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout + result.stderr
    connector = SqlAlchemyConnector.load("postgres-connector")
    info = connector.connection_info
    assert (info.host, str(info.port), info.username, info.database) == ("db.example", "6543", "taxi", "ny_taxi")
    assert getattr(info.driver, "value", info.driver) == "postgresql+psycopg2"  # an enum on Prefect 2, a str on 3
    assert info.password.get_secret_value() == secret and secret not in repr(info)


@pytest.mark.plain
def test_postgres_block_without_a_password_says_how_to_give_one():
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD", "POSTGRES_PASSWORD_FILE")}
    result = run_pg("--host", "db.example", env=env)
    assert result.returncode != 0 and "POSTGRES_PASSWORD" in result.stderr

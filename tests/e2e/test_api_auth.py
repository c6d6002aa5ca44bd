"""Prefect 3: the local stack's server asks for basic auth. The credentials live in the stack's
folder, owner-only; its env file reads them when sourced and does not hold them."""
from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import REPO

pytestmark = pytest.mark.prefect3

BLOCK = "/block_types/slug/sqlalchemy-connector/block_documents/name/postgres-connector?include_secrets=true"


def get(path: str, auth: str | None) -> tuple[int, bytes]:
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    request = urllib.request.Request(os.environ["PREFECT_API_URL"] + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_the_credentials_are_owner_only_and_the_env_file_reads_them_when_sourced():
    stack = Path(os.environ["STACK_DIR"])
    auth_file = stack / "prefect-api-auth"
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    secret = auth_file.read_text().strip()
    assert secret.startswith("nyctaxi:") and len(secret) > 30
    env_file = (stack / "env").read_text()
    assert secret not in env_file and f'PREFECT_API_AUTH_STRING="$(cat {auth_file})"' in env_file
    sourced = subprocess.run(["bash", "-c", f'source {stack / "env"} && printf %s "$PREFECT_API_AUTH_STRING"'],
                             capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]})
    assert sourced.stdout == secret == os.environ["PREFECT_API_AUTH_STRING"]


def test_without_the_credentials_the_api_and_the_block_secrets_are_refused():
    secret = os.environ["PREFECT_API_AUTH_STRING"]
    password = Path(os.environ["POSTGRES_PASSWORD_FILE"]).read_text().strip()
    for auth in (None, "nyctaxi:wrong", secret + "x"):
        for path in (BLOCK, "/admin/settings", "/flow_runs/filter"):  # the last a POST route: refused first
            status, body = get(path, auth)
            assert status == 401, (path, auth, status)
            assert password.encode() not in body
    status, body = get(BLOCK, secret)
    assert status == 200 and json.loads(body)["data"]["connection_info"]["password"] == password
    assert get("/health", None)[0] == 200  # health probes stay open


def test_a_shell_without_the_credentials_is_told_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_AUTH_STRING"}
    env["NYC_TLC_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run([sys.executable, str(REPO / "flows" / "etl_web_to_postgres.py"), "--month", "3"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"etl_web_to_postgres.py: the Prefect API at {os.environ['PREFECT_API_URL']} refused this shell's "
        f"credentials (PREFECT_API_AUTH_STRING is not set): run `source {Path(os.environ['STACK_DIR']) / 'env'}`")
    assert not (tmp_path / "data").exists()

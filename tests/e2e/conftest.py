"""The end-to-end tests run against a private local stack of their own.

Before any of their modules is imported (and so before Prefect reads its settings), a
stack is started in a temporary folder, with small generated months and short clocks
(``TEST_CLOCKS``), and its environment is put into os.environ; it is stopped when the
session ends. Lake files go to a temporary data root, never the repository's ``data/``.
Under pytest-xdist (``make test``) each worker process starts a stack of its own, on free
ports; the controller, which runs no test, starts none. Unit tests (``make unit``) start no
server.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_stack_dir: Path | None = None

# What users wait for (docs/configuration.md), shortened for the tests' stacks: retries after
# 0.2, 0.4, 0.8 s instead of 3, 6, 12; a cron deployment's runs made within 2 s instead of 60;
# a Prefect 3 run with no heartbeat for 45 s (not 90) is Crashed (heartbeats stay at Prefect's
# minimum, 30 s); a script whose Prefect run crashed on a lost API but hangs ends itself after 5 s
# (not 30); the stack's BigQuery holds a transaction open 0.5 s (not 1); free ports only, so that stacks started side by side do not race.
TEST_CLOCKS = {
    "NYC_TLC_RETRY_DELAY_S": "0.2",
    "NYC_TLC_SERVER_LOOP_S": "2",
    "NYC_TLC_SILENCE_S": "45",
    "NYC_TLC_API_LOST_GRACE_S": "5",
    "NYC_TLC_BQ_TRANSACTION_S": "0.5",
    "NYC_TLC_STACK_PORTS": "any",
}


def runs_tests(config) -> bool:
    """False in the controller of an xdist session: its workers run the tests."""
    return hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None)


def pytest_configure(config) -> None:
    global _stack_dir
    if not runs_tests(config):
        return
    from stack import ctl

    from helpers import MIRROR_ROWS

    _stack_dir = Path(tempfile.mkdtemp(prefix="nyctaxi-test-stack-"))
    os.environ.update(TEST_CLOCKS)
    os.environ["STACK_DIR"] = str(_stack_dir)
    os.environ["NYC_TLC_MIRROR_ROWS"] = str(MIRROR_ROWS)
    os.environ["NYC_TLC_DATA_DIR"] = str(_stack_dir / "data")
    env_file = ctl.up()
    os.environ.update(ctl.read_env(env_file))


def pytest_unconfigure(config) -> None:
    if _stack_dir is None:
        return
    from stack import ctl

    ctl.down()
    shutil.rmtree(_stack_dir, ignore_errors=True)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh data root per test."""
    monkeypatch.setenv("NYC_TLC_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A release server that misbehaves on request (``tests/faults.py``), as ``NYC_TLC_BASE_URL``."""
    from faults import FaultServer
    from helpers import MIRROR_ROWS

    with FaultServer(tmp_path / "release", rows=MIRROR_ROWS) as fault_server:
        monkeypatch.setenv("NYC_TLC_BASE_URL", fault_server.base_url)
        yield fault_server

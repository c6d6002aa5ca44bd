"""The end-to-end tests run against a private local stack of their own.

Before any of their modules is imported (and so before Prefect reads its settings), a
stack is started in a temporary folder, with small generated months, and its environment
is put into os.environ; it is stopped when the session ends. Lake files go to a temporary
data root, never the repository's ``data/``. Unit tests (``make unit``) start no server.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_stack_dir: Path | None = None


def pytest_configure(config) -> None:
    global _stack_dir
    from stack import ctl

    from helpers import MIRROR_ROWS

    _stack_dir = Path(tempfile.mkdtemp(prefix="nyctaxi-test-stack-"))
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

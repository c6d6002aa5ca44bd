"""Fixtures of the end-to-end tests: a fresh data root, a release server the test controls."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import MIRROR_ROWS
from faults import FaultServer


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh data root per test."""
    monkeypatch.setenv("NYC_TLC_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A release server that misbehaves on request (``tests/faults.py``), as ``NYC_TLC_BASE_URL``."""
    with FaultServer(tmp_path / "release", rows=MIRROR_ROWS) as fault_server:
        monkeypatch.setenv("NYC_TLC_BASE_URL", fault_server.base_url)
        yield fault_server

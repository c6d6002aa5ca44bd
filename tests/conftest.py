"""The test session runs against a private local stack of its own.

Before any test module is imported (and so before Prefect reads its settings),
a stack is started in a temporary folder, with small generated months, and its
environment is put into os.environ. It is stopped when the session ends. Lake
files go to a temporary data root, never the repository's ``data/``.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIRROR_ROWS = 3000  # rows per generated month served by the test stack's mirror

_stack_dir: Path | None = None


def pytest_configure(config) -> None:
    global _stack_dir
    sys.path[:0] = [str(REPO / "stack"), str(REPO / "flows")]
    import ctl  # stack/ctl.py

    _stack_dir = Path(tempfile.mkdtemp(prefix="nyctaxi-test-stack-"))
    os.environ["STACK_DIR"] = str(_stack_dir)
    os.environ["NYC_TLC_MIRROR_ROWS"] = str(MIRROR_ROWS)
    os.environ["NYC_TLC_DATA_DIR"] = str(_stack_dir / "data")
    env_file = ctl.up()
    os.environ.update(ctl.read_env(env_file))


def pytest_unconfigure(config) -> None:
    if _stack_dir is None:
        return
    import ctl

    ctl.down()
    shutil.rmtree(_stack_dir, ignore_errors=True)

"""A flow run owns the files its steps stage: whatever they leave is gone when the run ends."""
from __future__ import annotations

import pytest
from prefect import flow

from helpers import staged_files
from run_hooks import RUN_HOOKS
from tasks import clean, fetch


@flow(**RUN_HOOKS)
def stage_a_month(url: str, fail: bool) -> str:
    """Stage a month and leave it there (no step consumes it); fail afterwards if asked."""
    cleaned = clean(fetch(url), "yellow")
    assert cleaned.path.is_file()
    if fail:
        raise RuntimeError("the flow fails after staging")
    return str(cleaned.path)


@pytest.mark.parametrize("fail", [False, True])
def test_what_a_run_staged_and_left_is_removed_when_it_ends(server, data_dir, fail):
    url = server.script("yellow", 2020, 10, "ok")
    state = stage_a_month(url, fail, return_state=True)
    assert state.is_failed() == fail
    assert staged_files(data_dir) == []
    assert (data_dir / "raw").is_dir()  # the download stays: fetch's cache

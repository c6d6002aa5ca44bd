"""Faults at the source: a misbehaving release server, and bad parameters.

Each failure must name its cause, retry only what a retry can mend, and leave
nothing behind: no file under the data root, no object in the bucket."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from etl_web_to_gcs import etl_web_to_gcs
from faults import FaultServer
from helpers import MIRROR_ROWS, artifacts_of, bucket, object_exists, read_object, run_logs, task_runs_of
from parameterized_flow import etl_parent_flow


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_503_twice_then_200_succeeds_and_the_retries_show_in_the_log(server, data_dir):
    url = server.script("yellow", 2020, 3, "503", "503")
    state = etl_web_to_gcs(year=2020, month=3, color="yellow", return_state=True)
    assert state.is_completed(), state.message
    assert server.requests[url.removeprefix(server.base_url)] == 3
    logs = "\n".join(run_logs(state.state_details.flow_run_id))
    assert logs.count(f"download of {url} failed: the server answered HTTP 503") == 2
    # Each retry is announced: Prefect 2 proposes AwaitingRetry, Prefect 3 says when the retry starts.
    assert len(re.findall(r"'AwaitingRetry'|- Retry \d/\d will start", logs)) == 2
    assert read_object("data/yellow/yellow_tripdata_2020-03.parquet").metadata.num_rows == MIRROR_ROWS


def test_a_connection_reset_mid_body_is_retried_then_fails_naming_url_and_cause(server, data_dir):
    url = server.script("green", 2020, 3, *["reset"] * 4)
    state = etl_web_to_gcs(year=2020, month=3, color="green", return_state=True)
    assert state.is_failed()
    assert server.requests[url.removeprefix(server.base_url)] == 4  # the first try and three retries
    assert f"download of {url} failed" in state.message
    assert "connection" in state.message.lower() or "IncompleteRead" in state.message
    assert files_under(data_dir) == []
    assert not object_exists("data/green/green_tripdata_2020-03.parquet")


def test_a_reset_once_is_mended_by_the_retry(server, data_dir):
    server.script("green", 2020, 4, "reset")
    state = etl_web_to_gcs(year=2020, month=4, color="green", return_state=True)
    assert state.is_completed(), state.message
    assert read_object("data/green/green_tripdata_2020-04.parquet").metadata.num_rows == MIRROR_ROWS


def test_a_month_that_is_not_published_fails_at_once(server, data_dir):
    url = server.script("fhv", 2020, 3, "404")
    state = etl_web_to_gcs(year=2020, month=3, color="fhv", return_state=True)
    assert state.is_failed()
    assert f"fhv_tripdata_2020-03.csv.gz is not published at {url}" in state.message
    assert server.requests[url.removeprefix(server.base_url)] == 1  # a 404 is not retried
    assert files_under(data_dir) == []
    assert not object_exists("data/fhv/fhv_tripdata_2020-03.parquet")


def test_a_truncated_gzip_is_retried_then_fails_naming_url_and_cause(server, data_dir):
    url = server.script("yellow", 2020, 7, *["truncated"] * 4)
    state = etl_web_to_gcs(year=2020, month=7, color="yellow", return_state=True)
    assert state.is_failed()
    assert server.requests[url.removeprefix(server.base_url)] == 4
    assert f"download of {url} failed: the gzip stream ends early (truncated file)" in state.message
    assert files_under(data_dir) == []
    assert not object_exists("data/yellow/yellow_tripdata_2020-07.parquet")


@pytest.mark.parametrize("action, says", [
    ("html", "did not send a gzip file but an HTML page"),
    ("header", "missing columns ['congestion_surcharge']; unexpected columns ['airport_fee']"),
])
def test_a_body_that_is_not_the_expected_csv_says_what_is_wrong_and_writes_nothing(server, data_dir, action, says):
    server.script("yellow", 2020, 5, action)
    state = etl_web_to_gcs(year=2020, month=5, color="yellow", return_state=True)
    assert state.is_failed()
    assert says in state.message and "yellow_tripdata_2020-05" in state.message
    assert sum(server.requests.values()) == 1  # retrying would fetch the same wrong thing
    assert files_under(data_dir) == []  # the bad download is dropped too, so the next run fetches again
    assert not object_exists("data/yellow/yellow_tripdata_2020-05.parquet")


# The project's own checks (tests/unit/test_dataset.py checks them too) run once; Prefect's parameter
# validation on both runtimes.
OWN_CHECK = pytest.mark.plain


@pytest.mark.parametrize("kwargs", [
    *(pytest.param(kwargs, marks=OWN_CHECK) for kwargs in ({"color": "purple"}, {"month": 0}, {"month": 13},
                                                           {"year": 1999})),
    {"month": "March"}, {"month": True}, {"year": True},  # not taken as month 1, year 1
])
def test_bad_parameters_fail_before_any_network_call(server, data_dir, kwargs):
    state = etl_web_to_gcs(**{"year": 2020, "month": 6, "color": "yellow", **kwargs}, return_state=True)
    assert state.is_failed()
    assert sum(server.requests.values()) == 0
    assert files_under(data_dir) == []
    # The run ran its hooks: its failure artifact gives the reason, Prefect's type check's included.
    [failure] = artifacts_of(state.state_details.flow_run_id).values()
    assert failure.data.startswith(f"### Failed: {state.message.split(':')[0]}: ")  # the error's type


@pytest.mark.parametrize("months", [pytest.param([], marks=OWN_CHECK), pytest.param([6, 13], marks=OWN_CHECK),
                                    [6, "x"], [True, 2]])
def test_bad_months_fail_the_parent_before_any_network_call(server, data_dir, months):
    state = etl_parent_flow(months=months, year=2020, color="yellow", return_state=True)
    assert state.is_failed()
    assert sum(server.requests.values()) == 0
    assert files_under(data_dir) == []
    [failure] = [a for a in artifacts_of(state.state_details.flow_run_id).values() if a.key is None]
    assert failure.data.startswith(f"### Failed: {state.message.split(':')[0]}: ")  # the error's type


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk("2m")``: a folder on a tmpfs of that size, a real full disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mounted = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk-{size}"
        folder.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
        mounted.append(folder)
        return folder
    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("size, where, fails_in", [
    ("2m", "raw", "fetch"),  # the download (2.7 MB) does not fit
    pytest.param("4500k", "", "clean", marks=pytest.mark.plain),  # the download fits, its parquet (2.9 MB) does not
])
def test_a_full_disk_fails_once_naming_the_folder_and_leaves_no_partial_file(tmp_path, small_disk, monkeypatch,
                                                                             size, where, fails_in):
    data = small_disk(size)
    monkeypatch.setenv("NYC_TLC_DATA_DIR", str(data))
    with FaultServer(tmp_path / "release", rows=100_000) as big:
        monkeypatch.setenv("NYC_TLC_BASE_URL", big.base_url)
        url = big.script("yellow", 2020, 9, "ok")
        state = etl_web_to_gcs(year=2020, month=9, color="yellow", return_state=True)
    assert state.is_failed()
    folder = data / where if where else data
    assert f"DiskFullError: [Errno 28] no space left on the disk of {folder}: the file needs " in state.message
    assert "MB are free; free some space there, or set NYC_TLC_DATA_DIR to a folder on a larger disk" in state.message
    assert big.requests[big.path_of(url)] == 1  # not retried: the disk is as full the next time
    failed = [t for t in task_runs_of(state) if t.state.is_failed()]
    assert [t.name.rsplit("-", 1)[0] for t in failed] == [fails_in]
    left = files_under(data)
    assert [p for p in left if ".staging" in p or p.endswith(".part")] == []
    assert left == ([] if fails_in == "fetch" else [p for p in left if p.startswith("raw/")])


@pytest.mark.plain
def test_a_full_disk_while_taking_a_month_from_the_bucket_names_the_data_root_and_what_is_free(tmp_path, small_disk,
                                                                                             monkeypatch):
    """Not the run's staging folder (gone when the message is read), and the space that is really free."""
    from etl_gcs_to_bq import etl_gcs_to_bq

    with FaultServer(tmp_path / "release", rows=100_000) as big:
        monkeypatch.setenv("NYC_TLC_BASE_URL", big.base_url)
        monkeypatch.setenv("NYC_TLC_DATA_DIR", str(tmp_path / "data"))
        etl_web_to_gcs(year=2020, month=10, color="yellow")  # a 2.9 MB object in the bucket
    data = small_disk("2m")
    monkeypatch.setenv("NYC_TLC_DATA_DIR", str(data))
    try:
        state = etl_gcs_to_bq(year=2020, month=10, color="yellow", return_state=True)
    finally:  # other tests load this month with the mirror's 3,000 rows: not smaller than what is there
        bucket().delete_blob("data/yellow/yellow_tripdata_2020-10.parquet")
    assert state.is_failed()
    assert f"no space left on the disk of {data}: the file needs " in state.message
    assert float(re.search(r"([\d.]+) MB are free", state.message)[1]) > 1.0  # the 2 MB disk, less what stays used
    assert [p for p in files_under(data) if ".staging" in p] == []

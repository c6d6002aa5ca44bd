import os
import subprocess
import sys
from pathlib import Path

import pytest

from nyctaxi import lake

REPO = Path(__file__).resolve().parents[2]


def test_default_data_root_is_the_repository_data_folder_whatever_the_cwd(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NYC_TLC_DATA_DIR"}
    out = subprocess.run(
        [sys.executable, "-c", "from nyctaxi import lake; print(lake.data_root())"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO / "flows")}, capture_output=True, text=True, check=True,
    )
    assert Path(out.stdout.strip()) == REPO / "data"


def test_data_root_can_be_overridden(monkeypatch, tmp_path):
    monkeypatch.setenv("NYC_TLC_DATA_DIR", str(tmp_path))
    assert lake.lake_path("yellow", "yellow_tripdata_2021-01") == tmp_path / "yellow" / "yellow_tripdata_2021-01.parquet"


def test_object_key_uses_slashes():
    assert lake.object_key("green", "green_tripdata_2020-01") == "data/green/green_tripdata_2020-01.parquet"


def test_raw_downloads_of_different_servers_do_not_share_a_file(tmp_path):
    a = lake.raw_path("http://a/yellow/yellow_tripdata_2021-01.csv.gz", tmp_path)
    b = lake.raw_path("http://b/yellow/yellow_tripdata_2021-01.csv.gz", tmp_path)
    assert a != b and a.name.startswith("yellow_tripdata_2021-01.") and a.name.endswith(".csv.gz")


def test_publish_creates_folders_and_replaces_atomically(tmp_path):
    staged = lake.staging_path("m", tmp_path)
    staged.write_bytes(b"new")
    dest = tmp_path / "yellow" / "m.parquet"
    assert lake.publish(staged, dest) == dest
    assert dest.read_bytes() == b"new" and not staged.exists()


def test_publish_failure_removes_the_staged_file(tmp_path):
    staged = lake.staging_path("m", tmp_path)
    staged.write_bytes(b"new")
    blocker = tmp_path / "yellow"
    blocker.write_text("a file where the colour folder should be")
    with pytest.raises(OSError):
        lake.publish(staged, blocker / "m.parquet")
    assert not staged.exists()


def test_staged_files_live_in_a_folder_of_this_process_and_are_recognised(tmp_path):
    staged = lake.staging_path("m", tmp_path)
    assert staged.parent.parent == tmp_path / ".staging" and staged.parent.is_dir()
    assert lake.is_staged(staged, tmp_path)
    assert not lake.is_staged(lake.lake_path("yellow", "m", tmp_path), tmp_path)


def test_code_running_from_a_copy_outside_the_checkout_does_not_write_next_to_it(tmp_path):
    # What Prefect's Process infrastructure does: copy flows/ into a temporary folder and run it there.
    import shutil

    copy = tmp_path / "tmpabcprefect"
    shutil.copytree(REPO / "flows", copy, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "NYC_TLC_DATA_DIR"}
    out = subprocess.run(
        [sys.executable, "-c", "from nyctaxi import lake; print(lake.data_root())"],
        cwd=copy, env={**env, "PYTHONPATH": "."}, capture_output=True, text=True, check=True,
    )
    assert Path(out.stdout.strip()) == lake.FALLBACK_DATA_ROOT


def test_a_flow_run_s_staged_files_are_in_a_folder_of_their_own(tmp_path):
    staged = lake.staging_path("m", tmp_path, run="run-1")
    assert staged.parent == lake.run_staging_dir("run-1", tmp_path) and staged.parent.is_dir()
    assert lake.is_staged(staged, tmp_path)

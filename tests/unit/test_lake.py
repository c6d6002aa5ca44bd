import os
import subprocess
import sys
from pathlib import Path

import pytest

from nyctaxi import lake, resources

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


@pytest.mark.parametrize("copied", ["flows", "."])
def test_code_running_from_a_copy_writes_to_the_installed_checkout_s_data(tmp_path, copied):
    # What Prefect's Process infrastructure does: copy the deployment's folder (flows/, or the whole
    # repository for the course's `prefect deployment build` from the root) into a temporary folder
    # and run it there. Its files belong in the checkout, where the next run finds them.
    import shutil

    copy = tmp_path / "tmpabcprefect"
    ignored = [line.strip().rstrip("/") for line in (REPO / ".prefectignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]  # what Prefect leaves out of its copy
    shutil.copytree(REPO / copied, copy, ignore=shutil.ignore_patterns(*ignored))
    env = {k: v for k, v in os.environ.items() if k != "NYC_TLC_DATA_DIR"}
    out = subprocess.run(
        [sys.executable, "-c", "from nyctaxi import lake; print(lake.data_root(), lake.__file__)"],
        cwd=copy / "flows" if copied == "." else copy, env={**env, "PYTHONPATH": "."}, capture_output=True, text=True,
        check=True,
    )
    root, module = out.stdout.split()
    assert Path(module).is_relative_to(copy)  # the copy's code ran
    assert Path(root) == REPO / "data"


def test_code_outside_any_checkout_writes_to_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("NYC_TLC_DATA_DIR", raising=False)
    monkeypatch.setattr(resources, "REPO", tmp_path / "tmpabcprefect")
    assert lake.data_root() == lake.FALLBACK_DATA_ROOT


def test_a_flow_run_s_staged_files_are_in_a_folder_of_their_own(tmp_path):
    staged = lake.staging_path("m", tmp_path, run="run-1")
    assert staged.parent == lake.run_staging_dir("run-1", tmp_path) and staged.parent.is_dir()
    assert lake.is_staged(staged, tmp_path)

"""A real container run of `docker-flow`: podman behind a Docker API socket, the project's image
built from its unchanged Dockerfile, and a Prefect agent that starts the container."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.schemas.sorting import LogSort

from helpers import (
    MIRROR_ROWS,
    api,
    bucket,
    deploy_prefect_yaml,
    flow_run_id,
    read_object,
    run,
    running_agent,
    running_worker,
    save_blocks,
    wait_final,
)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENGINE = REPO / "stack" / "container" / "engine.sh"
IMAGE = "dezoomcamp/prefect:zoom-test"

pytestmark = [
    pytest.mark.skipif(shutil.which("podman") is None and os.environ.get("CI") != "true",
                       reason="podman is not installed (apt-get install podman runc debootstrap; .ci/run installs them)"),
    # The image is FROM prefecthq/prefect:2.20.26 (the course's): its flows talk to a 2.20 server only.
    pytest.mark.prefect2,
]


@pytest.fixture(scope="module")
def engine():
    out = subprocess.run(["bash", str(ENGINE), "up"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    docker_host = next(w.split("=", 1)[1] for w in out.stdout.split() if w.startswith("DOCKER_HOST="))
    built = subprocess.run(["bash", str(ENGINE), "image", IMAGE], capture_output=True, text=True, timeout=1800)
    assert built.returncode == 0, built.stderr[-3000:]
    yield docker_host
    subprocess.run(["bash", str(ENGINE), "down"], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def docker_agent(engine, tmp_path_factory):
    run(str(BIN / "python"), str(REPO / "blocks" / "make_docker_block.py"), "--local", "--image", IMAGE,
        "--pull", "NEVER")
    run(str(BIN / "python"), str(REPO / "deployments" / "docker_deploy.py"))
    with running_agent(tmp_path_factory.mktemp("docker-agent") / "agent.log", DOCKER_HOST=engine) as log:
        yield log
    # Put the block back as the other tests expect it.
    save_blocks("make_docker_block.py", "--local")


def test_docker_flow_runs_in_a_container_and_lands_both_months(docker_agent):
    keys = [f"data/green/green_tripdata_2020-{m:02}.parquet" for m in (1, 2)]
    for key in keys:
        blob = bucket().blob(key)
        if blob.exists():
            blob.delete()
    out = run(str(BIN / "prefect"), "deployment", "run", "etl-parent-flow/docker-flow",
              "-p", "months=[1,2]", "-p", "year=2020", "-p", "color=green")
    flow_run = wait_final(flow_run_id(out), timeout_s=600)
    assert flow_run.state.is_completed(), f"{flow_run.state}\nagent log:\n{docker_agent.read_text()[-4000:]}"
    assert flow_run.parameters["months"] == [1, 2]
    for key in keys:
        assert read_object(key).metadata.num_rows == MIRROR_ROWS
    # It really ran in the container: the lake files were written there, not on this host.
    data_dir = Path(os.environ["NYC_TLC_DATA_DIR"])
    assert not (data_dir / "green" / "green_tripdata_2020-02.parquet").exists()
    logs = api(lambda c: c.read_logs(limit=200, sort=LogSort.TIMESTAMP_DESC))
    assert any("/opt/prefect/data/green/green_tripdata_2020-01.parquet" in entry.message for entry in logs)


def test_docker_zoom_runs_in_a_container_taken_by_a_docker_worker(engine, tmp_path):
    """The same image the modern way: prefect.yaml's docker-zoom on the docker work pool, taken by a
    docker worker (prefect-docker 0.5, the line for Prefect 2) through podman's Docker API."""
    key = "data/green/green_tripdata_2021-04.parquet"
    if (blob := bucket().blob(key)).exists():
        blob.delete()
    deploy_prefect_yaml("--image", IMAGE, "--pull", "Never")
    try:
        with running_worker(tmp_path / "worker.log", "docker-pool", DOCKER_HOST=engine) as log:
            out = run(str(BIN / "prefect"), "deployment", "run", "etl-parent-flow/docker-zoom",
                      "-p", "months=[4]", "-p", "year=2021", "-p", "color=green")
            flow_run = wait_final(flow_run_id(out), timeout_s=600)
            assert flow_run.state.is_completed(), f"{flow_run.state}\nworker log:\n{log.read_text()[-4000:]}"
            worker_log = log.read_text()
    finally:  # the pool as the other tests expect it
        save_blocks("make_docker_pool.py", "--local")
    assert read_object(key).metadata.num_rows == MIRROR_ROWS
    assert "docker" in worker_log.lower() and str(flow_run.id) in worker_log
    # It ran in the container: the lake file was written there, not on this host.
    assert not (Path(os.environ["NYC_TLC_DATA_DIR"]) / "green" / "green_tripdata_2021-04.parquet").exists()
    logs = api(lambda c: c.read_logs(limit=200, sort=LogSort.TIMESTAMP_DESC))
    assert any("/opt/prefect/data/green/green_tripdata_2021-04.parquet" in entry.message for entry in logs)

"""Deployments the modern way, on Prefect 2.20 and 3: `prefect.yaml`, work pools and a worker, beside the
course's agents (test_deployments.py, Prefect 2 only)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from helpers import (
    ARTIFACTS,
    CHROMIUM,
    MIRROR_ROWS,
    REPO,
    api,
    browser_page,
    deploy_prefect_yaml,
    flow_run_id,
    flow_run_named,
    quick_run,
    read_object,
    run,
    running_worker,
    wait_final,
)
from nyctaxi import ARROW_ALLOCATOR_ENV

PREFECT = str(Path(sys.executable).parent / "prefect")


def test_prefect_deploy_all_then_a_process_worker_runs_the_parent_flow(tmp_path):
    deploy_prefect_yaml()

    names = ["etl-parent-flow/local-process", "etl-parent-flow/nightly", "etl-month/backfill-month-worker",
             "etl-parent-flow/docker-zoom"]

    async def read(client):
        return {name: await client.read_deployment_by_name(name) for name in names}

    deployments = api(read)
    local = deployments["etl-parent-flow/local-process"]
    assert local.work_pool_name == "local-process" and local.entrypoint == "flows/parameterized_flow.py:etl_parent_flow"
    # The worker changes into this checkout, and runs its code from there.
    assert local.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
    assert local.job_variables == {"env": ARROW_ALLOCATOR_ENV}
    [schedule] = deployments["etl-parent-flow/nightly"].schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == ("0 0 * * *", "UTC", True)
    assert deployments["etl-month/backfill-month-worker"].entrypoint == "flows/etl_month.py:etl_month"
    docker = deployments["etl-parent-flow/docker-zoom"]
    assert docker.work_pool_name == "docker-pool"
    defaults = api(lambda c: c.read_work_pool("docker-pool")).base_job_template["variables"]["properties"]
    assert (defaults["image"]["default"], defaults["network_mode"]["default"]) == ("dezoomcamp/prefect:zoom", "host")
    assert defaults["env"]["default"]["STORAGE_EMULATOR_HOST"] == os.environ["STORAGE_EMULATOR_HOST"]
    assert docker.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/prefect"}}]

    with running_worker(tmp_path / "worker.log", "local-process") as log:
        out = run(PREFECT, "deployment", "run", "etl-parent-flow/local-process",
                  "-p", "months=[10]", "-p", "year=2020", "-p", "color=yellow")
        flow_run = wait_final(flow_run_id(out))
        assert flow_run.state.is_completed(), f"{flow_run.state}\nworker log:\n{log.read_text()[-3000:]}"
        assert read_object("data/yellow/yellow_tripdata_2020-10.parquet").metadata.num_rows == MIRROR_ROWS

        # Quick run in the UI, as on an agent's deployment (test_deployments.py); CI always has chromium.
        if Path(CHROMIUM).exists() or os.environ.get("CI") == "true":
            with browser_page() as page:
                page.goto(os.environ["PREFECT_API_URL"].removesuffix("/api") + "/deployments",
                          wait_until="networkidle")
                run_name = quick_run(page, "local-process")
                page.screenshot(path=ARTIFACTS / "ui-quick-run-worker.png")
            flow_run = wait_final(flow_run_named(run_name).id)
            assert flow_run.state.is_completed(), f"{flow_run.state}\nworker log:\n{log.read_text()[-3000:]}"

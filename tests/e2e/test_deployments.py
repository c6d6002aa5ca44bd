"""Deployments on the stack's Prefect server, run by a real agent on work queue `default`."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

from helpers import (
    ARTIFACTS,
    MIRROR_ROWS,
    api,
    browser_page,
    bucket,
    flow_run_id,
    flow_run_named,
    needs_chromium,
    quick_run,
    read_object,
    run,
    running_agent,
    start_run,
    wait_final,
)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The course's agents and Deployment.build_from_flow: Prefect 3 removed both (its way: test_workers.py).
pytestmark = pytest.mark.prefect2


@pytest.fixture(scope="module")
def deployments():
    for script in ("process_deploy.py", "cron_deploy.py"):  # from any working directory
        run(str(BIN / "python"), str(REPO / "deployments" / script), "--data-dir", os.environ["NYC_TLC_DATA_DIR"],
            cwd=Path("/"))
    run(str(BIN / "python"), str(REPO / "blocks" / "make_docker_block.py"), "--local")
    run(str(BIN / "python"), str(REPO / "deployments" / "docker_deploy.py"), cwd=Path("/"))


@pytest.fixture(scope="module")
def agent(deployments, tmp_path_factory):
    with running_agent(tmp_path_factory.mktemp("agent") / "agent.log") as log:
        yield log


def test_process_deployment_run_by_the_agent_completes_with_both_months_in_the_lake(agent):
    keys = [f"data/yellow/yellow_tripdata_2021-{m:02}.parquet" for m in (1, 2)]
    for key in keys:
        blob = bucket().blob(key)
        if blob.exists():
            blob.delete()
    out = run(str(BIN / "prefect"), "deployment", "run", "etl-parent-flow/process-flow", "-p", "months=[1,2]")
    flow_run = wait_final(flow_run_id(out))
    assert flow_run.state.is_completed(), f"{flow_run.state}\nagent log:\n{agent.read_text()[-3000:]}"
    assert flow_run.parameters["months"] == [1, 2]
    for key in keys:
        assert read_object(key).metadata.num_rows == MIRROR_ROWS
    # Prefect ran a temporary copy of flows/; the files still went to the deployment's data root.
    for month in (1, 2):
        assert (Path(os.environ["NYC_TLC_DATA_DIR"]) / "yellow" / f"yellow_tripdata_2021-{month:02}.parquet").is_file()


def test_cron_deployment_has_runs_scheduled_at_midnight(deployments):
    async def scheduled(client):
        deployment = await client.read_deployment_by_name("etl-parent-flow/Parameterized ETL")
        runs = await client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))
        return deployment, [r for r in runs if r.state and r.state.is_scheduled()]

    deployment, runs = api(scheduled)
    schedule = deployment.schedules[0].schedule
    assert schedule.cron == "0 0 * * *" and schedule.timezone == "UTC"
    deadline = time.monotonic() + 120
    while not runs and time.monotonic() < deadline:  # the server's scheduler loop makes them
        time.sleep(2)
        _, runs = api(scheduled)
    assert runs, "no scheduled runs"
    for flow_run in runs:
        start = flow_run.expected_start_time.in_timezone("UTC")
        assert (start.hour, start.minute, start.second) == (0, 0, 0)


def test_the_course_cli_builds_the_cron_deployment(tmp_path):
    out = run(str(BIN / "prefect"), "deployment", "build", "flows/parameterized_flow.py:etl_parent_flow",
              "-n", "Parameterized ETL", "--cron", "0 0 * * *", "--timezone", "UTC", "-a",
              "-o", str(tmp_path / "etl_parent_flow-deployment.yaml"))
    assert "Parameterized ETL" in out
    deployment = api(lambda c: c.read_deployment_by_name("etl-parent-flow/Parameterized ETL"))
    assert deployment.entrypoint == "flows/parameterized_flow.py:etl_parent_flow"
    assert Path(deployment.path) == REPO
    assert deployment.work_queue_name == "default"
    assert deployment.schedules[0].schedule.cron == "0 0 * * *"
    run(str(BIN / "python"), str(REPO / "deployments" / "cron_deploy.py"),  # back to the script's version
        "--data-dir", os.environ["NYC_TLC_DATA_DIR"])


def test_docker_flow_run_is_created_with_the_months(deployments):
    out = run(str(BIN / "prefect"), "deployment", "run", "etl-parent-flow/docker-flow", "-p", "months=[1,2]")
    flow_run = api(lambda c: c.read_flow_run(flow_run_id(out)))
    assert flow_run.parameters == {"months": [1, 2]}
    deployment = api(lambda c: c.read_deployment(flow_run.deployment_id))
    assert deployment.name == "docker-flow" and deployment.work_queue_name == "default"
    assert deployment.path == "/opt/prefect/flows" and deployment.entrypoint == "parameterized_flow.py:etl_parent_flow"
    assert deployment.infrastructure_document_id is not None
    api(lambda c: c.delete_flow_run(flow_run.id))  # no container engine in this test: do not leave it to the agent


@needs_chromium
def test_quick_run_from_the_ui_completes_through_the_agent(agent):
    from playwright.sync_api import expect

    ui = os.environ["PREFECT_API_URL"].removesuffix("/api")
    with browser_page() as page:
        page.goto(f"{ui}/deployments", wait_until="networkidle")
        expect(page.get_by_role("link", name="docker-flow")).to_be_visible()
        expect(page.get_by_role("link", name="Parameterized ETL")).to_be_visible()
        expect(page.get_by_text("At 12:00 AM every day").first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "ui-deployments.png")

        run_name = quick_run(page, "process-flow")
        page.screenshot(path=ARTIFACTS / "ui-quick-run.png")
    flow_run = wait_final(flow_run_named(run_name).id)
    assert flow_run.state.is_completed(), f"{flow_run.state}\nagent log:\n{agent.read_text()[-3000:]}"


def fetch_state_of_a_run(deployment: str, month: int, year: int, agent_log: Path) -> str:
    """Run green ``year``-``month`` through ``deployment`` (the parent flow) and wait for it to complete;
    return the final state of its one ``fetch`` task (``Cached`` when the download was reused)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    parent = wait_final(start_run(deployment, months=[month], year=year, color="green"))
    assert parent.state.is_completed(), f"{parent.state}\nagent log:\n{agent_log.read_text()[-3000:]}"

    async def fetch_state(client):
        children = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])))
        tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[c.id for c in children])))
        return [t.state.name for t in tasks if t.name.startswith("fetch")]

    [state] = api(fetch_state)
    return state


def test_the_fetch_cache_holds_across_agent_runs_and_misses_cleanly_when_the_file_is_gone(agent):
    def run_once() -> str:
        return fetch_state_of_a_run("etl-parent-flow/process-flow", 4, 2020, agent)

    states = [run_once() for _ in range(3)]
    assert states[-1] == "Cached", states  # served from the cache by a later agent process
    raw = next(Path(os.environ["NYC_TLC_DATA_DIR"], "raw").glob("green_tripdata_2020-04.*.csv.gz"))
    raw.unlink()
    assert run_once() == "Completed"  # a clean miss: downloaded again, never a missing path
    assert raw.is_file()


def test_the_course_cli_deployment_keeps_its_files_in_the_checkout_and_its_cache_hits(tmp_path):
    """`prefect deployment build` from the repository root, as the course does: Prefect runs it from a
    temporary copy of the repository, and its lake file and download still land in the checkout's
    data/ (no NYC_TLC_DATA_DIR here), where the next run's fetch finds its cache."""

    run(str(BIN / "prefect"), "deployment", "build", "flows/parameterized_flow.py:etl_parent_flow",
        "-n", "course-cli", "-q", "course-cli", "-a", "-o", str(tmp_path / "etl_parent_flow-deployment.yaml"))
    lake_file = REPO / "data" / "green" / "green_tripdata_2019-11.parquet"
    raw_files = lambda: set((REPO / "data" / "raw").glob("green_tripdata_2019-11.*"))  # noqa: E731  (and .version)
    aside = tmp_path / "aside"
    kept = [p for p in [lake_file, *raw_files()] if p.exists()]  # a developer's own copies, put back after
    for p in kept:
        (aside / p.parent.name).mkdir(parents=True, exist_ok=True)
        p.rename(aside / p.parent.name / p.name)

    try:
        with running_agent(tmp_path / "agent.log", "-q", "course-cli", NYC_TLC_DATA_DIR="") as log:
            fetch_state_of_a_run("etl-parent-flow/course-cli", 11, 2019, log)
            assert lake_file.is_file() and pq.ParquetFile(lake_file).metadata.num_rows == MIRROR_ROWS
            assert len([p for p in raw_files() if p.name.endswith(".csv.gz")]) == 1
            # The first re-run records the cache key (the first had no file to key on); the next hits it.
            states = [fetch_state_of_a_run("etl-parent-flow/course-cli", 11, 2019, log) for _ in range(2)]
            assert states[-1] == "Cached", states
    finally:
        lake_file.unlink(missing_ok=True)
        for p in raw_files():
            p.unlink()
        for p in kept:
            (aside / p.parent.name / p.name).rename(p)
        api(lambda c: _delete_deployment(c, "etl-parent-flow/course-cli"))


async def _delete_deployment(client, name: str) -> None:
    deployment = await client.read_deployment_by_name(name)
    await client.delete_deployment(deployment.id)

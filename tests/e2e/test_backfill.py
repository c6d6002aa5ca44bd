"""The backfill on the local stack: on a Dask cluster, across two agents, after a killed agent, under a load limit.

Each test backfills months no other test touches, so the destinations' lineage is its own.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, TaskRunFilter, TaskRunFilterName

from helpers import (
    MIRROR_ROWS,
    api,
    bq_counts,
    bucket,
    postgres_connection,
    postgres_counts,
    run,
    running_agent,
    start_agent,
    stop_group,
    submitted_runs,
)
from nyctaxi.resources import set_load_limits

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOAD_LIMIT = 1


@pytest.fixture(scope="module", autouse=True)
def load_limit():
    """At most LOAD_LIMIT loads per database at once (for this module only: other tests kill loads,
    and a killed load keeps its slot on Prefect 2)."""
    set_load_limits(LOAD_LIMIT)
    yield
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    for limit in ("postgres-loads", "bigquery-loads"):
        api(lambda c, name=limit: c.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active=False)))


@pytest.fixture(scope="module")
def month_deployment():
    """etl-month/backfill-month on queue `default`, for the agents (Prefect 2)."""
    run(str(BIN / "python"), str(REPO / "deployments" / "backfill_deploy.py"), "--data-dir",
        os.environ["NYC_TLC_DATA_DIR"], cwd=Path("/"))


def backfill(*args: str) -> str:
    return run(str(BIN / "python"), str(REPO / "flows" / "etl_backfill.py"), *args)


def start_backfill(*args: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "python"), str(REPO / "flows" / "etl_backfill.py"), *args], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def files(color: str, year: int, months) -> list[str]:
    return [f"{color}_tripdata_{year}-{m:02}.csv.gz" for m in months]


def postgres_loads(table: str) -> dict[str, int]:
    """What ``nyc_tlc_loads`` records for ``table``: rows per source file."""
    with postgres_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT source_file, rows FROM nyc_tlc_loads WHERE table_name = %s", (table,))
        return dict(cur.fetchall())


def staged_months(prefix: str) -> set[str]:
    """The months whose cleaned file is staged under the data root now (the step before the load)."""
    staging = Path(os.environ["NYC_TLC_DATA_DIR"]) / ".staging"
    return {p.name.split(".")[0] for p in staging.rglob(f"{prefix}*.parquet")} if staging.exists() else set()


def month_runs(color: str, year: int) -> dict[str, list]:
    """The etl-month runs of a backfill by month (run name ``backfill {color}_tripdata_{year}-MM``)."""
    prefix = f"backfill {color}_tripdata_{year}-"
    runs = api(lambda c: c.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=prefix))))
    by_month: dict[str, list] = {}
    for r in runs:
        by_month.setdefault(r.name.removeprefix("backfill "), []).append(r)
    return by_month


def test_dask_backfill_on_two_workers_loads_every_month_once_and_a_rerun_skips_them():
    months = files("fhv", 2019, range(1, 5))
    out = backfill("--start", "2019-01", "--end", "2019-04", "--colors", "fhv", "--dask-workers", "2")
    assert "4 months asked, 0 already loaded and unchanged, 4 to run" in out
    assert "Finished in state Completed()" in out

    for counts in (postgres_counts("fhv_tripdata"), bq_counts("fhv_tripdata")):
        assert {f: counts.get(f) for f in months} == dict.fromkeys(months, MIRROR_ROWS)
    assert {f: postgres_loads("fhv_tripdata").get(f) for f in months} == dict.fromkeys(months, MIRROR_ROWS)
    for month in range(1, 5):
        blob = bucket().get_blob(f"data/fhv/fhv_tripdata_2019-{month:02}.parquet")
        assert blob is not None and blob.metadata.get("source_version")

    # Two workers: two months were in flight at the same time.
    tasks = api(lambda c: c.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="load-month"))))
    spans = sorted((t.start_time, t.end_time) for t in tasks if t.start_time and t.end_time)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)), spans

    again = backfill("--start", "2019-01", "--end", "2019-04", "--colors", "fhv", "--dask-workers", "2")
    assert "4 months asked, 4 already loaded and unchanged, 0 to run" in again
    assert postgres_counts("fhv_tripdata")[months[0]] == MIRROR_ROWS


def test_a_republished_month_is_loaded_again_and_only_that_one(tmp_path):
    args = ["--start", "2019-05", "--end", "2019-06", "--colors", "fhv", "--destinations", "lake", "postgres",
            "--runner", "sequential"]
    assert "2 to run" in backfill(*args)
    # The mirror serves a new edition of 2019-06: same name, new date, so a new ETag.
    mirrored = next(Path(os.environ["STACK_DIR"]).rglob("fhv_tripdata_2019-06.csv.gz"))
    os.utime(mirrored, ns=(time.time_ns(), time.time_ns()))
    out = backfill(*args)
    assert "2 months asked, 1 already loaded and unchanged, 1 to run" in out
    assert "fhv 2019-06 -> lake, postgres" in out
    assert postgres_counts("fhv_tripdata")["fhv_tripdata_2019-06.csv.gz"] == MIRROR_ROWS


@pytest.mark.prefect2
@pytest.mark.usefixtures("month_deployment")
def test_two_agents_split_a_four_month_backfill_and_run_each_month_once(tmp_path):
    months = files("fhv", 2021, range(1, 5))
    with running_agent(tmp_path / "a.log", "--limit", "1") as log_a, \
            running_agent(tmp_path / "b.log", "--limit", "1") as log_b:
        out = backfill("--start", "2021-01", "--end", "2021-04", "--colors", "fhv",
                       "--destinations", "lake", "postgres", "--runner", "agents")
    assert "4 of 4 months finished" in out

    runs = month_runs("fhv", 2021)
    assert sorted(runs) == [f.removesuffix(".csv.gz") for f in months]
    assert all(len(r) == 1 and r[0].state.is_completed() for r in runs.values()), runs
    ran_by_a, ran_by_b = submitted_runs(log_a), submitted_runs(log_b)
    month_run_ids = {str(r[0].id) for r in runs.values()}
    assert ran_by_a and ran_by_b, "one agent took every month"
    assert not ran_by_a & ran_by_b and (ran_by_a | ran_by_b) >= month_run_ids

    counts = postgres_counts("fhv_tripdata")
    assert {f: counts.get(f) for f in months} == dict.fromkeys(months, MIRROR_ROWS)


@pytest.mark.prefect2
@pytest.mark.usefixtures("month_deployment")
def test_a_backfill_cut_short_by_a_killed_agent_is_finished_by_running_it_again(tmp_path):
    months = files("fhv", 2020, range(7, 11))
    args = ["--start", "2020-07", "--end", "2020-10", "--colors", "fhv", "--destinations", "lake", "postgres",
            "--runner", "agents"]
    agent = start_agent(tmp_path / "first.log", "--limit", "1")
    process = start_backfill(*args)
    try:
        deadline = time.monotonic() + 240
        while len(set(postgres_loads("fhv_tripdata")) & set(months)) < 2:
            assert time.monotonic() < deadline, f"no two months loaded:\n{(tmp_path / 'first.log').read_text()[-3000:]}"
            time.sleep(0.2)
    finally:
        # The machine goes away: the agent with the run it was running, and the backfill itself.
        stop_group(agent, signals=(signal.SIGKILL,))
        stop_group(process, signals=(signal.SIGKILL,))
    done_before = set(postgres_loads("fhv_tripdata")) & set(months)
    assert 2 <= len(done_before) < 4
    # What the operator does after losing a machine (README): a load killed mid-way keeps its slot.
    run(str(BIN / "prefect"), "gcl", "update", "postgres-loads", "--active-slots", "0")
    # The dead backfill's queued runs would be harmless (docs/backfill.md: they reload their month, once),
    # but an agent taking one before the new backfill plans would change the count asserted below.
    cancel_unfinished(month_runs("fhv", 2020))

    with running_agent(tmp_path / "second.log", "--limit", "1"):
        out = backfill(*args)
    assert f"4 months asked, {len(done_before)} already loaded and unchanged, {4 - len(done_before)} to run" in out

    counts = postgres_counts("fhv_tripdata")
    assert {f: counts.get(f) for f in months} == dict.fromkeys(months, MIRROR_ROWS)
    assert {f: postgres_loads("fhv_tripdata").get(f) for f in months} == dict.fromkeys(months, MIRROR_ROWS)


def cancel_unfinished(runs: dict[str, list]) -> None:
    from prefect.states import Cancelled

    for flow_run in (r for rs in runs.values() for r in rs):
        if not flow_run.state.is_final():
            api(lambda c, run_id=flow_run.id: c.set_flow_run_state(run_id, Cancelled(), force=True))


def test_the_load_limit_holds_however_many_months_are_in_flight():
    """With the loads table locked, every load that reaches PostgreSQL blocks: with a limit of
    one, never more than one may be waiting there, though two Dask workers run months."""
    from nyctaxi.postgres import CREATE_LOADS_SQL

    lock = postgres_connection()
    lock.autocommit = False
    waiting: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        # pg_locks, not pg_stat_activity: the latter is a snapshot per transaction.
        conn = postgres_connection()
        with conn.cursor() as cur:
            while not stop.is_set():
                # Every load in PostgreSQL now waits for a lock: on the loads table, or behind the
                # first load on the colour's table.
                cur.execute("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted")
                waiting.append(cur.fetchone()[0])
                time.sleep(0.05)
        conn.close()

    with lock.cursor() as cur:
        cur.execute(CREATE_LOADS_SQL)
        lock.commit()
        cur.execute("LOCK TABLE nyc_tlc_loads IN EXCLUSIVE MODE")
    watcher = threading.Thread(target=watch)
    watcher.start()
    process = start_backfill("--start", "2019-07", "--end", "2019-10", "--colors", "fhv",
                             "--destinations", "postgres", "--dask-workers", "2")
    try:
        deadline = time.monotonic() + 120
        while not any(waiting) or len(staged_months("fhv_tripdata_2019-")) < 2:
            assert time.monotonic() < deadline and process.poll() is None, "no two loads reached PostgreSQL's step"
            time.sleep(0.1)
        # Both workers have cleaned a month: the second's load would be in PostgreSQL within a
        # second or two if the limit did not stop it.
        time.sleep(2)
    finally:
        lock.rollback()  # releases the lock: the loads go on, one at a time
        lock.close()
        output = process.communicate(timeout=240)[0]
        stop.set()
        watcher.join()
    assert process.returncode == 0, output[-3000:]
    assert max(waiting) == LOAD_LIMIT
    months = files("fhv", 2019, range(7, 11))
    counts = postgres_counts("fhv_tripdata")
    assert {f: counts.get(f) for f in months} == dict.fromkeys(months, MIRROR_ROWS)

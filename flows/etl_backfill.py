"""Backfill: a range of months of several colours into the lake, BigQuery and PostgreSQL, concurrently.

    python flows/etl_backfill.py --start 2019-01 --end 2021-07 --colors yellow green
    python flows/etl_backfill.py ... --runner agents    (one run of etl-month/backfill-month per month,
                                                         spread over every agent on the work queue)
    python flows/etl_backfill.py ... --dask-address tcp://scheduler:8786   (an existing Dask cluster)

Months already loaded from the edition of the file published now are skipped (the
destinations' own lineage says so), so running the same backfill again finishes one
that was cut short, and never duplicates a month.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, get_args
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.context import get_run_context
from prefect.deployments import run_deployment
from pydantic import StrictInt

import cli
from artifacts import Overview
from etl_month import etl_month, load_month
from nyctaxi import bigquery, lake, postgres
from nyctaxi.backfill import DESTINATIONS, Unit, check_destinations, months_between, plan
from nyctaxi.dataset import TaxiMonth
from nyctaxi.resources import (
    BIGQUERY_FIX,
    GCS_FIX,
    MONTH_DEPLOYMENT,
    bigquery_client,
    blocks_for,
    bucket_key,
    gcs_bucket,
    lake_bucket,
    postgres_connection,
    retry_delays,
    table_name,
)
from nyctaxi.runtime import final_state
from nyctaxi.schema import COLORS
from nyctaxi.source import remote_version
from run_hooks import RUN_HOOKS, reason_first

Runner = Literal["dask", "agents", "sequential"]


# --- what is loaded already ---------------------------------------------------------------

def _lake_versions(taxis: list[TaxiMonth]) -> dict[TaxiMonth, str | None]:
    from nyctaxi import gcs

    gcs_block = gcs_bucket()
    by_key = {}
    with gcs.reaching(GCS_FIX):
        for color in {t.color for t in taxis}:
            by_key.update(gcs.versions(lake_bucket(gcs_block), bucket_key(gcs_block, lake.object_prefix(color))))
    return {t: by_key.get(bucket_key(gcs_block, lake.object_key(t.color, t.dataset_file))) for t in taxis}


def _bigquery_versions(taxis: list[TaxiMonth]) -> dict[TaxiMonth, str | None]:
    client = bigquery_client()
    with bigquery.reaching(BIGQUERY_FIX):
        by_color = {color: bigquery.loaded_versions(client, color) for color in {t.color for t in taxis}}
    return {t: by_color[t.color].get(t.source_file) for t in taxis}


def _postgres_versions(taxis: list[TaxiMonth]) -> dict[TaxiMonth, str | None]:
    with postgres_connection() as conn:
        by_color = {color: postgres.loaded_versions(conn, table_name(color)) for color in {t.color for t in taxis}}
    return {t: by_color[t.color].get(t.source_file) for t in taxis}


LOADED = {"lake": _lake_versions, "bigquery": _bigquery_versions, "postgres": _postgres_versions}


@task(retries=2, retry_delay_seconds=retry_delays(2))
def plan_backfill(start: str, end: str, colors: list[str], destinations: list[str]) -> list[Unit]:
    """The (colour, month) units still to load, from the destinations' lineage and the source's versions."""
    logger = get_run_logger()
    taxis = months_between(start, end, colors)
    with ThreadPoolExecutor(max_workers=8) as pool:  # HEAD requests: a second for 80 files, not a minute
        published = dict(zip(taxis, pool.map(lambda t: remote_version(t.url()), taxis), strict=True))
    loaded = {d: LOADED[d](taxis) for d in check_destinations(destinations)}
    units = plan(taxis, destinations, published, loaded)
    logger.info(f"{len(taxis)} months asked, {len(taxis) - len(units)} already loaded and unchanged, "
                f"{len(units)} to run" + "".join(f"\n  {u.name}" for u in units))
    return units


# --- three ways to run the units ------------------------------------------------------------

def _unit_parameters(unit: Unit, allow_shrink: bool) -> dict:
    t = unit.taxi
    return {"year": t.year, "month": t.month, "color": t.color, "destinations": list(unit.destinations),
            "allow_shrink": allow_shrink}


@flow(name="etl-backfill-on-dask", **RUN_HOOKS)
@reason_first
def run_on_dask(units: dict[str, dict], overview: UUID) -> dict[str, str]:
    """Every unit (its month: ``etl_month``'s parameters) as one ``load-month`` task on the flow's
    task runner, a DaskTaskRunner: as many months in flight as the cluster has worker threads.
    Each month is set in the parent's ``overview`` as it finishes."""
    futures = {month: load_month.submit(**parameters) for month, parameters in units.items()}
    states = {}
    while futures:
        for month, future in list(futures.items()):
            state = final_state(future, timeout=0.2)
            if state is not None:
                Overview(overview).record(month, state)
                states[month] = state.type.value
                del futures[month]
    return states


def run_sequentially(units: list[Unit], allow_shrink: bool, overview: Overview) -> dict[str, str]:
    """Every unit as an ``etl-month`` subflow, one after another (the course's parent flow's way)."""
    states = {}
    for u in units:
        overview.update(u.month, "Running")
        state = etl_month(**_unit_parameters(u, allow_shrink), return_state=True)
        overview.record(u.month, state)
        states[u.month] = state.type.value
    return states


def run_on_agents(units: list[Unit], deployment: str, allow_shrink: bool, overview: Overview,
                  poll_s: float = 2.0) -> dict[str, str]:
    """Every unit as a run of ``deployment``, all created at once: every agent on its work
    queue takes runs, so they spread over all machines serving the queue."""
    logger = get_run_logger()
    parent = get_run_context().flow_run.id
    runs = {
        u.month: run_deployment(deployment, parameters=_unit_parameters(u, allow_shrink), timeout=0,
                                flow_run_name=f"backfill {u.taxi.dataset_file}",
                                # A retried backfill finds its runs instead of making new ones.
                                idempotency_key=f"{parent}:{u.taxi.dataset_file}:{','.join(u.destinations)}").id
        for u in units
    }
    logger.info(f"created {len(runs)} runs of {deployment}: waiting for the agents")
    months = {run_id: month for month, run_id in runs.items()}
    states: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        while len(states) < len(runs):
            time.sleep(poll_s)
            flow_runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(months))))
            for r in flow_runs:
                if r.state and r.state.is_final() and months[r.id] not in states:
                    # The run's result stays with the agent's process: the state only.
                    overview.record(months[r.id], r.state, with_result=False)
                    states[months[r.id]] = r.state.type.value
    return states


@flow(name="etl-backfill", **RUN_HOOKS)
@reason_first
def etl_backfill(start: str = "2019-01", end: str = "2021-07", colors: list[str] = ["yellow", "green"],
                 destinations: list[str] = list(DESTINATIONS), runner: Runner = "dask",
                 dask_address: str | None = None, dask_workers: StrictInt = 2, dask_memory_limit: str = "2GiB",
                 deployment: str = MONTH_DEPLOYMENT, allow_shrink: bool = False) -> dict[str, str]:
    """Load every (colour, month) from ``start`` to ``end`` that is not loaded yet; returns each unit's final state.

    ``runner``: ``dask`` (a DaskTaskRunner: a local cluster of ``dask_workers`` processes,
    one month at a time each, or the cluster at ``dask_address``), ``agents`` (runs of the
    per-month ``deployment``, taken by every agent on its queue) or ``sequential``.
    ``allow_shrink`` lets a month be replaced by an edition with no rows or far fewer (refused otherwise).
    """
    units = plan_backfill(start, end, colors, destinations)
    if not units:
        return {}
    # The destinations a month does not need hold the published edition already.
    overview = Overview.create("backfill", f"the months this backfill ran, {start} to {end}",
                               [u.month for u in units], destinations,
                               {u.month: {d: "up to date" for d in destinations if d not in u.destinations}
                                for u in units})
    if runner == "dask":
        # Dask logs every connection at INFO; its workers read this too (set before dask is imported).
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        from prefect_dask import DaskTaskRunner

        dask = (DaskTaskRunner(address=dask_address) if dask_address else DaskTaskRunner(
            cluster_kwargs={"n_workers": dask_workers, "threads_per_worker": 1, "memory_limit": dask_memory_limit}))
        states = run_on_dask.with_options(task_runner=dask)(
            {u.month: _unit_parameters(u, allow_shrink) for u in units}, overview.id)
    elif runner == "agents":
        states = run_on_agents(units, deployment, allow_shrink, overview)
    else:
        states = run_sequentially(units, allow_shrink, overview)
    failed = sorted(month for month, state in states.items() if state != "COMPLETED")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(states)} months did not complete: {'; '.join(failed)}. "
                           "Run the same backfill again to redo only those")
    return states


def main() -> None:
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("--start", default="2019-01", help="first month, YYYY-MM")
    parser.add_argument("--end", default="2021-07", help="last month, YYYY-MM")
    parser.add_argument("--colors", nargs="+", default=["yellow", "green"], choices=COLORS)
    parser.add_argument("--destinations", nargs="+", default=list(DESTINATIONS), choices=DESTINATIONS)
    parser.add_argument("--runner", default="dask", choices=get_args(Runner))
    parser.add_argument("--dask-address", default=None, help="an existing Dask scheduler (default: a local cluster)")
    parser.add_argument("--dask-workers", type=int, default=2, help="processes of the local Dask cluster")
    parser.add_argument("--deployment", default=MONTH_DEPLOYMENT, help="the per-month deployment (--runner agents)")
    parser.add_argument("--allow-shrink", action="store_true",
                        help="replace loaded months even with editions that have no rows or far fewer")
    args = parser.parse_args()
    cli.run(etl_backfill, blocks_for(args.destinations), start=args.start, end=args.end, colors=args.colors,
            destinations=args.destinations, runner=args.runner, dask_address=args.dask_address,
            dask_workers=args.dask_workers, deployment=args.deployment, allow_shrink=args.allow_shrink)


if __name__ == "__main__":
    main()

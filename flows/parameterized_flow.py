"""The course's parent flow: several months of one colour, one subflow each (or all at once)."""
from __future__ import annotations

import os

from prefect import flow
from pydantic import StrictInt

import cli
from artifacts import Overview
from etl_month import load_month
from etl_web_to_gcs import etl_web_to_gcs
from nyctaxi import lake
from nyctaxi.dataset import taxi_months
from nyctaxi.resources import GCS_BLOCK
from nyctaxi.runtime import final_state
from run_hooks import RUN_HOOKS, reason_first


@flow(name="etl-parent-flow", **RUN_HOOKS)
@reason_first
def etl_parent_flow(months: list[StrictInt] = [1, 2], year: StrictInt = 2021, color: str = "yellow",
                    concurrent: bool = False, allow_shrink: bool = False) -> list[str]:
    """Run ``etl_web_to_gcs`` for each month (every month is checked before the first runs);
    return the ``gs://`` URIs. The run's overview artifact shows each month's rows and state as it finishes.

    ``concurrent=True`` runs the months at the same time instead, each as one ``load-month``
    task (the same steps) on the flow's thread pool, as many at once as this machine has
    cores (each month's memory is bounded, so the flow's is too): the downloads,
    conversions and uploads of different months overlap. ``allow_shrink`` lets a month be
    replaced by an edition with no rows or far fewer (refused otherwise).
    """
    taxis = taxi_months(months, year, color)
    overview = Overview.create(f"overview-{color}-{year}", f"{color} {year}: each month into the lake",
                               [t.year_month for t in taxis], ["lake"])
    if not concurrent:
        uris = []
        for taxi in taxis:
            with overview.track(taxi.year_month) as got:
                uris.append(etl_web_to_gcs(year, taxi.month, color, allow_shrink))
                got["lake"] = lake.row_count(lake.lake_path(color, taxi.dataset_file))
        return uris
    in_flight = os.cpu_count() or 1
    futures = []
    for i, taxi in enumerate(taxis):
        if i >= in_flight:  # a month finishes before the next starts
            overview.record(taxis[i - in_flight].year_month, final_state(futures[i - in_flight]))
        overview.update(taxi.year_month, "Running")
        futures.append(load_month.submit(year, taxi.month, color, ["lake"], allow_shrink))
    for taxi, future in list(zip(taxis, futures, strict=True))[-in_flight:]:
        overview.record(taxi.year_month, final_state(future))
    return [future.result()["object"] for future in futures]


def main() -> None:
    parser = cli.parser(__doc__, months=[1, 2])
    parser.add_argument("--concurrent", action="store_true", help="run the months at the same time")
    args = parser.parse_args()
    cli.run(etl_parent_flow, [GCS_BLOCK], months=args.months, year=args.year, color=args.color,
            concurrent=args.concurrent, allow_shrink=args.allow_shrink)


if __name__ == "__main__":
    main()

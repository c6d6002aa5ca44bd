"""The course's parent flow: several months of one colour, one subflow each (or all at once)."""
from __future__ import annotations

import os

from prefect import flow
from pydantic import StrictInt

import cli
from etl_month import load_month
from etl_web_to_gcs import etl_web_to_gcs
from nyctaxi.dataset import taxi_months
from nyctaxi.resources import GCS_BLOCK
from run_hooks import RUN_HOOKS


@flow(name="etl-parent-flow", **RUN_HOOKS)
def etl_parent_flow(months: list[StrictInt] = [1, 2], year: StrictInt = 2021, color: str = "yellow",
                    concurrent: bool = False, allow_shrink: bool = False) -> list[str]:
    """Run ``etl_web_to_gcs`` for each month (every month is checked before the first runs);
    return the ``gs://`` URIs.

    ``concurrent=True`` runs the months at the same time instead, each as one ``load-month``
    task (the same steps) on the flow's thread pool, as many at once as this machine has
    cores (each month's memory is bounded, so the flow's is too): the downloads,
    conversions and uploads of different months overlap. ``allow_shrink`` lets a month be
    replaced by an edition with no rows or far fewer (refused otherwise).
    """
    taxi_months(months, year, color)
    if not concurrent:
        return [etl_web_to_gcs(year, month, color, allow_shrink) for month in months]
    in_flight = os.cpu_count() or 1
    futures = []
    for i, month in enumerate(months):
        if i >= in_flight:
            futures[i - in_flight].wait()  # a month finishes before the next starts
        futures.append(load_month.submit(year, month, color, ["lake"], allow_shrink))
    return [future.result()["lake"] for future in futures]


def main() -> None:
    parser = cli.parser(__doc__, months=[1, 2])
    parser.add_argument("--concurrent", action="store_true", help="run the months at the same time")
    args = parser.parse_args()
    cli.run(etl_parent_flow, [GCS_BLOCK], months=args.months, year=args.year, color=args.color,
            concurrent=args.concurrent, allow_shrink=args.allow_shrink)


if __name__ == "__main__":
    main()

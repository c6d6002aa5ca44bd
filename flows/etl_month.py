"""One month of one colour into the lake, BigQuery and PostgreSQL: the unit of work of a backfill.

    python flows/etl_month.py --year 2021 --month 1 --color yellow --destinations lake postgres

The same steps run as the ``etl-month`` flow (the per-month deployment a backfill spreads
over agents) or as one ``load-month`` task (on a Dask worker, or in a thread of the
parent flow run concurrently).
"""
from __future__ import annotations

from collections.abc import Callable

from prefect import flow, task
from pydantic import StrictInt

import cli
from nyctaxi.backfill import DESTINATIONS, check_destinations
from nyctaxi.dataset import TaxiMonth
from nyctaxi.resources import blocks_for, table_name
from run_hooks import RUN_HOOKS, reason_first
from tasks import (
    Cleaned,
    clean,
    drop_staged,
    fetch,
    load_bq_from_gcs,
    load_postgres,
    retrying,
    write_gcs,
    write_local,
)


def load_month_into(taxi: TaxiMonth, destinations: list[str], allow_shrink: bool = False,
                    run: Callable = lambda step: step) -> dict[str, str | int]:
    """The steps of one month, for the destinations asked; returns the rows each destination
    got, and the lake object's ``gs://`` URI under ``object``.

    ``run(step)`` is what gets called: the task itself inside a flow, or its plain
    function (``step.fn``) inside one Dask task, where the month's files stay on one worker.
    BigQuery loads the lake object with a load job, as ``etl_gcs_to_bq(load_job=True)`` does.
    """
    got: dict[str, str | int] = {}
    cleaned = None
    try:
        if "lake" in destinations or "postgres" in destinations:
            cleaned = run(clean)(run(fetch)(taxi.url()), taxi.color)
        if "lake" in destinations:
            path = run(write_local)(cleaned, taxi.color, taxi.dataset_file, allow_shrink)
            got["object"] = run(write_gcs)(path, allow_shrink)
            got["lake"] = cleaned.rows
            cleaned = Cleaned(path, cleaned.rows, cleaned.source)  # Postgres then loads the lake file
        if "bigquery" in destinations:
            got["bigquery"] = run(load_bq_from_gcs)(taxi.color, taxi.dataset_file, taxi.source_file, allow_shrink)
        if "postgres" in destinations:
            got["postgres"] = run(load_postgres)(cleaned, taxi.color, table_name(taxi.color), taxi.source_file,
                                                 allow_shrink)
    except BaseException as e:
        # Inside one task (step.fn) no step's failure hook runs: the month's staged file goes here.
        drop_staged([cleaned], e)
        raise
    return got


@flow(name="etl-month", **RUN_HOOKS)
@reason_first
def etl_month(year: StrictInt = 2021, month: StrictInt = 1, color: str = "yellow",
              destinations: list[str] = list(DESTINATIONS), allow_shrink: bool = False) -> dict[str, str | int]:
    """One month of one colour into the destinations asked: one unit of a backfill."""
    return load_month_into(TaxiMonth(color, year, month), check_destinations(destinations), allow_shrink)


@task(name="load-month", **retrying(2))
def load_month(year: int, month: int, color: str, destinations: list[str],
               allow_shrink: bool = False) -> dict[str, str | int]:
    """One month as one task: all its steps in the worker (thread, Dask worker) that runs it."""
    return load_month_into(TaxiMonth(color, year, month), destinations, allow_shrink, run=lambda step: step.fn)


def main() -> None:
    parser = cli.parser(__doc__)
    parser.add_argument("--destinations", nargs="+", default=list(DESTINATIONS), choices=DESTINATIONS)
    args = parser.parse_args()
    cli.run(etl_month, blocks_for(args.destinations), year=args.year, month=args.month, color=args.color,
            destinations=args.destinations, allow_shrink=args.allow_shrink)


if __name__ == "__main__":
    main()

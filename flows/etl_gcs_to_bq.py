"""GCS -> BigQuery: the course's second flow, one table per colour, safe to re-run."""
from __future__ import annotations

from prefect import flow
from pydantic import StrictInt

import cli
from artifacts import record_month
from nyctaxi.dataset import TaxiMonth, taxi_months
from nyctaxi.resources import DATASET, blocks_for, table_name
from run_hooks import RUN_HOOKS, reason_first
from tasks import extract_from_gcs, load_bq_from_gcs, transform, write_bq


@flow(name="etl-gcs-to-bq", **RUN_HOOKS)
@reason_first
def etl_gcs_to_bq(year: StrictInt = 2021, month: StrictInt = 1, color: str = "yellow", load_job: bool = False,
                  fill_passenger_count: StrictInt | None = None, allow_shrink: bool = False) -> int:
    """Load one lake month into ``dezoomcamp.{color}_tripdata``, replacing that month's rows.

    ``load_job=True`` loads the ``gs://`` object with a BigQuery load job instead of
    pulling it through this machine with pandas-gbq. A loaded month is never replaced by
    an edition with no rows or far fewer, unless ``allow_shrink``.
    """
    taxi = TaxiMonth(color, year, month)  # validates before anything is downloaded

    if load_job:
        rows = load_bq_from_gcs(color, taxi.dataset_file, taxi.source_file, allow_shrink)
    else:
        path = extract_from_gcs(color, year, month)
        path = transform(path, color, fill_passenger_count)
        rows = write_bq(path, color, taxi.source_file, allow_shrink)

    record_month("bigquery", color, year, month, {
        "table": f"{DATASET}.{table_name(color)}", "rows of the month": rows,
        "method": "load job from gs://" if load_job else "pandas-gbq",
    })
    return rows


@flow(name="etl-parent-gcs-to-bq", **RUN_HOOKS)
@reason_first
def etl_parent_gcs_to_bq(months: list[StrictInt] = [1, 2], year: StrictInt = 2021, color: str = "yellow",
                         load_job: bool = False, allow_shrink: bool = False) -> int:
    """The homework's parent flow: ``etl_gcs_to_bq`` for each month; returns the rows loaded in all."""
    taxi_months(months, year, color)
    return sum(etl_gcs_to_bq(year, month, color, load_job, allow_shrink=allow_shrink) for month in months)


def main() -> None:
    parser = cli.parser(__doc__, months=[1])
    parser.add_argument("--load-job", action="store_true", help="load the gs:// object with a BigQuery load job")
    args = parser.parse_args()
    blocks = blocks_for(["bigquery"])
    if len(args.months) == 1:
        cli.run(etl_gcs_to_bq, blocks, year=args.year, month=args.months[0], color=args.color,
                load_job=args.load_job, allow_shrink=args.allow_shrink)
    else:
        cli.run(etl_parent_gcs_to_bq, blocks, months=args.months, year=args.year, color=args.color,
                load_job=args.load_job, allow_shrink=args.allow_shrink)


if __name__ == "__main__":
    main()

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
                  fill_passenger_count: StrictInt | None = None, allow_shrink: bool = False,
                  pandas_gbq: bool = False) -> int:
    """Load one lake month into ``dezoomcamp.{color}_tripdata``, replacing that month's rows.

    The month goes through this machine: downloaded, then uploaded as one load job of its
    parquet file, or with the course's pandas-gbq ``to_gbq`` if ``pandas_gbq``.
    ``load_job=True`` loads the ``gs://`` object with a load job instead (no data through
    this machine). A loaded month is never replaced by an edition with no rows or far
    fewer, unless ``allow_shrink``.
    """
    taxi = TaxiMonth(color, year, month)  # validates before anything is downloaded
    if load_job and pandas_gbq:
        raise ValueError("load_job=True loads the gs:// object, pandas_gbq=True sends a local copy: choose one")

    if load_job:
        rows = load_bq_from_gcs(color, taxi.dataset_file, taxi.source_file, allow_shrink)
    else:
        path = extract_from_gcs(color, year, month)
        path = transform(path, color, fill_passenger_count)
        rows = write_bq(path, color, taxi.source_file, allow_shrink, pandas_gbq)

    method = "load job from gs://" if load_job else "pandas-gbq" if pandas_gbq else "load job from the local parquet"
    record_month("bigquery", color, year, month, {
        "table": f"{DATASET}.{table_name(color)}", "rows of the month": rows, "method": method,
    })
    return rows


@flow(name="etl-parent-gcs-to-bq", **RUN_HOOKS)
@reason_first
def etl_parent_gcs_to_bq(months: list[StrictInt] = [1, 2], year: StrictInt = 2021, color: str = "yellow",
                         load_job: bool = False, allow_shrink: bool = False, pandas_gbq: bool = False) -> int:
    """The homework's parent flow: ``etl_gcs_to_bq`` for each month; returns the rows loaded in all."""
    taxi_months(months, year, color)
    return sum(etl_gcs_to_bq(year, month, color, load_job, allow_shrink=allow_shrink, pandas_gbq=pandas_gbq)
               for month in months)


def main() -> None:
    parser = cli.parser(__doc__, months=[1])
    way = parser.add_mutually_exclusive_group()
    way.add_argument("--load-job", action="store_true", help="load the gs:// object with a BigQuery load job")
    way.add_argument("--pandas-gbq", action="store_true", help="send the month with pandas-gbq, as the course does")
    args = parser.parse_args()
    blocks = blocks_for(["bigquery"])
    common = dict(year=args.year, color=args.color, load_job=args.load_job, allow_shrink=args.allow_shrink,
                  pandas_gbq=args.pandas_gbq)
    if len(args.months) == 1:
        cli.run(etl_gcs_to_bq, blocks, month=args.months[0], **common)
    else:
        cli.run(etl_parent_gcs_to_bq, blocks, months=args.months, **common)


if __name__ == "__main__":
    main()

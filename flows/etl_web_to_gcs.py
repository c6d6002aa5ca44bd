"""Web -> local parquet lake -> GCS: the course's first flow."""
from __future__ import annotations

from prefect import flow
from pydantic import StrictInt

import cli
from artifacts import record_month
from nyctaxi import lake
from nyctaxi.dataset import TaxiMonth
from nyctaxi.resources import GCS_BLOCK
from run_hooks import RUN_HOOKS, reason_first
from tasks import clean, fetch, write_gcs, write_local


@flow(name="etl-web-to-gcs", **RUN_HOOKS)
@reason_first
def etl_web_to_gcs(year: StrictInt = 2021, month: StrictInt = 1, color: str = "yellow",
                   allow_shrink: bool = False) -> str:
    """The main ETL function: one month of one colour into the lake and the bucket.

    A loaded month is never replaced by an edition with no rows or far fewer, unless ``allow_shrink``.
    """
    taxi = TaxiMonth(color, year, month)  # validates before anything is downloaded
    dataset_file = taxi.dataset_file
    dataset_url = taxi.url()

    raw = fetch(dataset_url)
    cleaned = clean(raw, color)
    path = write_local(cleaned, color, dataset_file, allow_shrink)
    uri = write_gcs(path, allow_shrink)

    record_month("lake", color, year, month, {
        "source": dataset_url, "rows read": cleaned.rows, "rows written": lake.row_count(path),
        "local file": path, "object": uri,
    })
    return uri


def main() -> None:
    args = cli.parser(__doc__).parse_args()
    cli.run(etl_web_to_gcs, [GCS_BLOCK], year=args.year, month=args.month, color=args.color,
            allow_shrink=args.allow_shrink)


if __name__ == "__main__":
    main()

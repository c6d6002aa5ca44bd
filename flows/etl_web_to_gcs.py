"""Web -> local parquet lake -> GCS: the course's first flow."""
from __future__ import annotations

from prefect import flow

import cli
from nyctaxi import lake
from nyctaxi.dataset import TaxiMonth
from summary import record_month
from tasks import clean, fetch, write_gcs, write_local


@flow(name="etl-web-to-gcs")
def etl_web_to_gcs(year: int = 2021, month: int = 1, color: str = "yellow") -> str:
    """The main ETL function: one month of one colour into the lake and the bucket."""
    taxi = TaxiMonth(color, year, month)  # validates before anything is downloaded
    dataset_file = taxi.dataset_file
    dataset_url = taxi.url()

    raw = fetch(dataset_url)
    cleaned = clean(raw, color)
    path = write_local(cleaned, color, dataset_file)
    uri = write_gcs(path)

    record_month("lake", color, year, month, {
        "source": dataset_url, "rows read": cleaned.rows, "rows written": lake.row_count(path),
        "local file": path, "object": uri,
    })
    return uri


def main() -> None:
    args = cli.parser(__doc__).parse_args()
    etl_web_to_gcs(year=args.year, month=args.month, color=args.color)


if __name__ == "__main__":
    main()

"""Web -> PostgreSQL: the course's ingestion flow, every row, by COPY, safe to re-run."""
from __future__ import annotations

from prefect import flow

import cli
from nyctaxi import postgres
from nyctaxi.dataset import TaxiMonth
from summary import record_month
from tasks import clean, fetch, load_postgres


@flow(name="etl-web-to-postgres")
def etl_web_to_postgres(year: int = 2021, month: int = 1, color: str = "yellow", table: str | None = None) -> int:
    """Load one month into ``table`` (default ``{color}_tripdata``) of the ``postgres-connector`` database."""
    taxi = TaxiMonth(color, year, month)  # validates before anything is downloaded
    table = postgres.table_name(color, table)
    dataset_url = taxi.url()

    raw = fetch(dataset_url)
    cleaned = clean(raw, color)
    rows = load_postgres(cleaned, color, table, taxi.source_file)

    record_month("postgres", color, year, month, {
        "source": dataset_url, "rows read": cleaned.rows, "rows loaded": rows, "table": table,
    })
    return rows


def main() -> None:
    parser = cli.parser(__doc__)
    parser.add_argument("--table", default=None, help="default: {color}_tripdata")
    args = parser.parse_args()
    etl_web_to_postgres(year=args.year, month=args.month, color=args.color, table=args.table)


if __name__ == "__main__":
    main()

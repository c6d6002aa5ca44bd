"""Web -> PostgreSQL: the course's ingestion flow, every row, by COPY, safe to re-run."""
from __future__ import annotations

from prefect import flow
from pydantic import StrictInt

import cli
from artifacts import record_month
from nyctaxi import postgres
from nyctaxi.dataset import TaxiMonth
from nyctaxi.resources import POSTGRES_BLOCK
from run_hooks import RUN_HOOKS, reason_first
from tasks import clean, fetch, load_postgres


@flow(name="etl-web-to-postgres", **RUN_HOOKS)
@reason_first
def etl_web_to_postgres(year: StrictInt = 2021, month: StrictInt = 1, color: str = "yellow", table: str | None = None,
                        allow_shrink: bool = False) -> int:
    """Load one month into ``table`` (default ``{color}_tripdata``) of the ``postgres-connector`` database.

    A loaded month is never replaced by an edition with no rows or far fewer, unless ``allow_shrink``.
    """
    taxi = TaxiMonth(color, year, month)  # validates before anything is downloaded
    table = postgres.target_table(color, table)
    dataset_url = taxi.url()

    raw = fetch(dataset_url)
    cleaned = clean(raw, color)
    rows = load_postgres(cleaned, color, table, taxi.source_file, allow_shrink)

    record_month("postgres", color, year, month, {
        "source": dataset_url, "rows read": cleaned.rows, "rows loaded": rows, "table": table,
    })
    return rows


def main() -> None:
    parser = cli.parser(__doc__)
    parser.add_argument("--table", default=None, help="default: {color}_tripdata")
    args = parser.parse_args()
    cli.run(etl_web_to_postgres, [POSTGRES_BLOCK], year=args.year, month=args.month, color=args.color,
            table=args.table, allow_shrink=args.allow_shrink)


if __name__ == "__main__":
    main()

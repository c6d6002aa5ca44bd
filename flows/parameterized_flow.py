"""The course's parent flow: several months of one colour, one subflow each."""
from __future__ import annotations

from prefect import flow

import cli
from etl_web_to_gcs import etl_web_to_gcs
from nyctaxi.dataset import taxi_months


@flow(name="etl-parent-flow")
def etl_parent_flow(months: list[int] = [1, 2], year: int = 2021, color: str = "yellow") -> list[str]:
    """Run ``etl_web_to_gcs`` for each month (every month is checked before the first runs)."""
    taxi_months(months, year, color)
    return [etl_web_to_gcs(year, month, color) for month in months]


def main() -> None:
    args = cli.parser(__doc__, months=[1, 2]).parse_args()
    etl_parent_flow(months=args.months, year=args.year, color=args.color)


if __name__ == "__main__":
    main()

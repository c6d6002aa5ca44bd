"""Bring the BigQuery colour tables made by an earlier version of this project up to date: each is
made again partitioned by month (on ``source_month``, the source file's month), every row kept, so
that a month's reload reads that month, not the whole table (docs/real-gcp.md: what that saves).

    python flows/partition_bq_tables.py                  # every colour's table that needs it
    python flows/partition_bq_tables.py --color yellow

Loads refuse a table without partitions, naming this command, so none writes to a table while it
runs. It reads each table once (billed as a query of its bytes); the rest is free. Stopped half-way,
run it again: it finishes the job, and never drops the only copy of a row.
"""
from __future__ import annotations

import logging
import sys

from cli import ArgumentParser
from nyctaxi import bigquery
from nyctaxi.resources import BIGQUERY_FIX, CREDS_BLOCK, bigquery_client, set_up_problem
from nyctaxi.schema import COLORS


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(__doc__)
    parser.add_argument("--color", choices=COLORS, action="append", help="a colour's table (again for more); "
                        "default: every colour")
    args = parser.parse_args(argv)
    if problem := set_up_problem([CREDS_BLOCK]):
        print(f"partition_bq_tables.py: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    client = bigquery_client()
    with bigquery.reaching(BIGQUERY_FIX):
        for color in args.color or COLORS:
            print(bigquery.partition_by_month(client, color), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

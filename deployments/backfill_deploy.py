"""Deployment ``etl-month/backfill-month``: one month of a backfill, run by any agent on work queue `default`.

    python deployments/backfill_deploy.py --load-limit 2    (once, against the shared Prefect API)
    prefect agent start -q default                           (on every machine that should take months)
    python flows/etl_backfill.py --runner agents --start 2019-01 --end 2021-07

``--load-limit N`` sets the global concurrency limits ``postgres-loads`` and ``bigquery-loads``:
at most N months load into each database at once, however many agents or Dask workers run.
"""
from __future__ import annotations

from common import apply_process_deployment, script_parser
from nyctaxi.resources import set_load_limits

ENTRYPOINT = "etl_month.py:etl_month"


if __name__ == "__main__":
    parser = script_parser(__doc__)
    parser.add_argument("--load-limit", type=int, default=None,
                        help="at most this many loads into PostgreSQL (and into BigQuery) at once")
    args = apply_process_deployment("backfill-month", parser, entrypoint=ENTRYPOINT)
    if args.load_limit is not None:
        set_load_limits(args.load_limit)

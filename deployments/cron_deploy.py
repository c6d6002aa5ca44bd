"""Deployment ``etl-parent-flow/Parameterized ETL``: the parent flow every day at 00:00 (cron ``0 0 * * *``).

    python deployments/cron_deploy.py [--timezone Europe/Berlin]

The same as the course's command, with the time zone made explicit:
    prefect deployment build flows/parameterized_flow.py:etl_parent_flow -n "Parameterized ETL" \\
        --cron "0 0 * * *" --timezone UTC -a
"""
from __future__ import annotations

from prefect.client.schemas.schedules import CronSchedule

from common import apply_process_deployment, script_parser

CRON = "0 0 * * *"

if __name__ == "__main__":
    parser = script_parser(__doc__)
    parser.add_argument("--timezone", default="UTC", help="IANA time zone of the 00:00 (default UTC)")
    apply_process_deployment("Parameterized ETL", parser,
                             schedules=lambda args: [CronSchedule(cron=CRON, timezone=args.timezone)])

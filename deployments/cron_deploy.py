"""Deployment ``etl-parent-flow/Parameterized ETL``: the parent flow every day at 00:00 (cron ``0 0 * * *``).

    python deployments/cron_deploy.py [--timezone Europe/Berlin]

The same as the course's command, with the time zone made explicit:
    prefect deployment build flows/parameterized_flow.py:etl_parent_flow -n "Parameterized ETL" \\
        --cron "0 0 * * *" --timezone UTC -a
"""
from __future__ import annotations

import argparse

from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments import Deployment

from common import ENTRYPOINT, FLOWS, WORK_QUEUE, data_dir_argument, etl_parent_flow, process_infrastructure

CRON = "0 0 * * *"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timezone", default="UTC", help="IANA time zone of the 00:00 (default UTC)")
    data_dir_argument(parser)
    args = parser.parse_args()
    deployment = Deployment.build_from_flow(
        flow=etl_parent_flow,
        name="Parameterized ETL",
        infrastructure=process_infrastructure(args.data_dir),
        work_queue_name=WORK_QUEUE,
        path=str(FLOWS),
        entrypoint=ENTRYPOINT,
        schedules=[CronSchedule(cron=CRON, timezone=args.timezone)],
    )
    deployment_id = deployment.apply()
    print(f"applied etl-parent-flow/Parameterized ETL ({deployment_id}): cron {CRON!r} in {args.timezone}")


if __name__ == "__main__":
    main()

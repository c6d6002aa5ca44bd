"""Deployment ``etl-parent-flow/process-flow``: the parent flow as a local process, no container engine needed.

    python deployments/process_deploy.py       (from any folder)
    prefect agent start -q default             (on this machine: it runs the flows from this checkout)
    prefect deployment run etl-parent-flow/process-flow -p "months=[1,2]"
"""
from __future__ import annotations

import argparse

from prefect.deployments import Deployment

from common import ENTRYPOINT, FLOWS, WORK_QUEUE, data_dir_argument, etl_parent_flow, process_infrastructure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data_dir_argument(parser)
    args = parser.parse_args()
    deployment = Deployment.build_from_flow(
        flow=etl_parent_flow,
        name="process-flow",
        infrastructure=process_infrastructure(args.data_dir),
        work_queue_name=WORK_QUEUE,
        path=str(FLOWS),
        entrypoint=ENTRYPOINT,
    )
    deployment_id = deployment.apply()
    print(f"applied etl-parent-flow/process-flow ({deployment_id}) on work queue {WORK_QUEUE!r}")


if __name__ == "__main__":
    main()

"""Deployment ``etl-parent-flow/process-flow``: the parent flow as a local process, no container engine needed.

    python deployments/process_deploy.py       (from any folder)
    prefect agent start -q default             (on this machine: it runs the flows from this checkout)
    prefect deployment run etl-parent-flow/process-flow -p "months=[1,2]"
"""
from __future__ import annotations

from prefect.deployments import Deployment
from prefect.infrastructure import Process

from common import ENTRYPOINT, FLOWS, WORK_QUEUE, etl_parent_flow


def main() -> None:
    deployment = Deployment.build_from_flow(
        flow=etl_parent_flow,
        name="process-flow",
        infrastructure=Process(),
        work_queue_name=WORK_QUEUE,
        path=str(FLOWS),
        entrypoint=ENTRYPOINT,
    )
    deployment_id = deployment.apply()
    print(f"applied etl-parent-flow/process-flow ({deployment_id}) on work queue {WORK_QUEUE!r}")


if __name__ == "__main__":
    main()

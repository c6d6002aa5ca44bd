"""Deployment ``etl-parent-flow/docker-flow``: the parent flow in the ``zoom`` DockerContainer.

    python deployments/docker_deploy.py        (from any folder; needs the `zoom` block)
    prefect deployment run etl-parent-flow/docker-flow -p "months=[1,2]"
"""
from __future__ import annotations

from prefect.deployments import Deployment
from prefect.infrastructure import DockerContainer

from common import ENTRYPOINT, IMAGE_FLOWS, flow_at
from nyctaxi.resources import DOCKER_BLOCK, WORK_QUEUE


def main() -> None:
    deployment = Deployment.build_from_flow(
        flow=flow_at(ENTRYPOINT),
        name="docker-flow",
        infrastructure=DockerContainer.load(DOCKER_BLOCK),
        work_queue_name=WORK_QUEUE,
        # The code is inside the image, not on this machine.
        path=IMAGE_FLOWS,
        entrypoint=ENTRYPOINT,
    )
    deployment_id = deployment.apply()
    print(f"applied etl-parent-flow/docker-flow ({deployment_id}) on work queue {WORK_QUEUE!r}")


if __name__ == "__main__":
    main()

"""Create or update the docker work pool ``docker-pool``: where ``etl-parent-flow/docker-zoom``
(prefect.yaml) runs, in the image of ./Dockerfile, taken by ``prefect worker start -p docker-pool``.

    python blocks/make_docker_pool.py --image <you>/prefect:zoom      # real GCP: blocks carry the credentials
    python blocks/make_docker_pool.py --local --pull Never            # local stack, image built here (make image)

The workers' counterpart of the ``zoom`` DockerContainer block (make_docker_block.py), with the
same settings as the pool's defaults: image, pull policy, host networking (the container reaches
the Prefect API and the stack on 127.0.0.1, Linux), auto-remove, and the flows' environment (with
--local the stack's addresses and its offline credentials file, mounted read-only). Needs the
prefect-docker collection (in requirements.txt and requirements-prefect3.txt). Running it again
updates the pool; a deployment's own job variables override these defaults.
"""
from __future__ import annotations

import asyncio

from make_docker_block import container_args  # this folder's: the same container options
from nyctaxi.resources import DOCKER_POOL


def base_job_template(image: str, pull: str, env: dict[str, str], volumes: list[str]) -> dict:
    """prefect-docker's template for the pool, with these defaults."""
    from prefect_docker.worker import DockerWorker

    template = DockerWorker.get_default_base_job_template()
    defaults = {"image": image, "image_pull_policy": pull, "network_mode": "host", "auto_remove": True,
                "env": env, "volumes": volumes}
    for name, value in defaults.items():
        template["variables"]["properties"][name]["default"] = value
    return template


async def save_pool(template: dict) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            await client.read_work_pool(DOCKER_POOL)
        except ObjectNotFound:
            await client.create_work_pool(WorkPoolCreate(name=DOCKER_POOL, type="docker", base_job_template=template))
            return "created"
        await client.update_work_pool(DOCKER_POOL, WorkPoolUpdate(base_job_template=template))
        return "updated"


def main() -> None:
    args, env, volumes = container_args(__doc__, ["IfNotPresent", "Always", "Never"])
    done = asyncio.run(save_pool(base_job_template(args.image, args.pull, env, volumes)))
    print(f"{done} work pool {DOCKER_POOL!r} (docker; image {args.image}, pull {args.pull})")


if __name__ == "__main__":
    main()

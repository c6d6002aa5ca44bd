"""Save the DockerContainer block ``zoom``: the image the ``docker-flow`` deployment runs in.

    python blocks/make_docker_block.py --image <you>/prefect:zoom     # real GCP: blocks carry the credentials
    python blocks/make_docker_block.py --local                        # local stack (after: source .stack/env)

With --local the container gets the stack's environment (emulator and mirror
addresses) and its offline credentials file, mounted read-only. Host networking
lets the container reach the Prefect API and the services on 127.0.0.1 (Linux).
"""
from __future__ import annotations

import argparse

from prefect.infrastructure import DockerContainer

from nyctaxi.resources import DOCKER_BLOCK as BLOCK
from nyctaxi.resources import ENVIRONMENT, container_settings, setting

DEFAULT_IMAGE = ENVIRONMENT["ZOOM_IMAGE"].default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=setting("ZOOM_IMAGE"),
                        help=f"image name (env ZOOM_IMAGE, default {DEFAULT_IMAGE})")
    parser.add_argument("--pull", default="IF_NOT_PRESENT", choices=["ALWAYS", "IF_NOT_PRESENT", "NEVER"],
                        help="image pull policy (NEVER for an image built on this machine)")
    parser.add_argument("--local", action="store_true", help="pass the local stack's environment into the container")
    args = parser.parse_args()
    env, volumes = container_settings(args.local)
    DockerContainer(
        image=args.image, image_pull_policy=args.pull, auto_remove=True, network_mode="host",
        env=env, volumes=volumes,
    ).save(BLOCK, overwrite=True)
    print(f"saved DockerContainer block {BLOCK!r} (image {args.image}, pull {args.pull})")


if __name__ == "__main__":
    main()

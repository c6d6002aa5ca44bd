"""Save the DockerContainer block ``zoom``: the image the ``docker-flow`` deployment runs in.

    python blocks/make_docker_block.py --image <you>/prefect:zoom     # real GCP: blocks carry the credentials
    python blocks/make_docker_block.py --local                        # local stack (after: source .stack/env)

With --local the container gets the stack's environment (emulator and mirror
addresses) and its offline credentials file, mounted read-only. Host networking
lets the container reach the Prefect API and the services on 127.0.0.1 (Linux).
"""
from __future__ import annotations

import argparse

from nyctaxi.resources import DOCKER_BLOCK as BLOCK
from nyctaxi.resources import ENVIRONMENT, container_settings, setting

DEFAULT_IMAGE = ENVIRONMENT["ZOOM_IMAGE"].default


def container_args(doc: str, pulls: list[str]) -> tuple[argparse.Namespace, dict[str, str], list[str]]:
    """The options of a container that runs the flows (this block's, and make_docker_pool.py's pool's):
    the parsed ``--image``, ``--pull`` (one of ``pulls``: the first is the default, the last pulls
    never) and ``--local``; the container's environment and volumes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=setting("ZOOM_IMAGE"),
                        help=f"image name (env ZOOM_IMAGE, default {DEFAULT_IMAGE})")
    parser.add_argument("--pull", default=pulls[0], choices=pulls,
                        help=f"image pull policy ({pulls[-1]} for an image built on this machine)")
    parser.add_argument("--local", action="store_true", help="pass the local stack's environment into the container")
    args = parser.parse_args()
    return args, *container_settings(args.local)


def main() -> None:
    # Prefect 2 only (Prefect 3 removed infrastructure blocks): imported here, so that
    # make_docker_pool.py can share container_args on both.
    from prefect.infrastructure import DockerContainer

    args, env, volumes = container_args(__doc__, ["IF_NOT_PRESENT", "ALWAYS", "NEVER"])
    DockerContainer(
        image=args.image, image_pull_policy=args.pull, auto_remove=True, network_mode="host",
        env=env, volumes=volumes,
    ).save(BLOCK, overwrite=True)
    print(f"saved DockerContainer block {BLOCK!r} (image {args.image}, pull {args.pull})")


if __name__ == "__main__":
    main()

"""Save the DockerContainer block ``zoom``: the image the ``docker-flow`` deployment runs in.

    python blocks/make_docker_block.py --image <you>/prefect:zoom     # real GCP: blocks carry the credentials
    python blocks/make_docker_block.py --local                        # local stack (after: source .stack/env)

With --local the container gets the stack's environment (emulator and mirror
addresses) and its offline credentials file, mounted read-only. Host networking
lets the container reach the Prefect API and the services on 127.0.0.1 (Linux).
"""
from __future__ import annotations

import argparse
import os
import sys

from prefect.infrastructure import DockerContainer

from nyctaxi.resources import DOCKER_BLOCK as BLOCK
from nyctaxi.resources import ENVIRONMENT, setting

DEFAULT_IMAGE = ENVIRONMENT["ZOOM_IMAGE"].default
CONTAINER_ADC = "/opt/prefect/.config/adc.json"
# What the flows read from the environment on the local stack (no secrets among them).
LOCAL_ENV = ("STORAGE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST", "NYC_TLC_BASE_URL", "GOOGLE_CLOUD_PROJECT",
             "NO_GCE_CHECK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=setting("ZOOM_IMAGE"),
                        help=f"image name (env ZOOM_IMAGE, default {DEFAULT_IMAGE})")
    parser.add_argument("--pull", default="IF_NOT_PRESENT", choices=["ALWAYS", "IF_NOT_PRESENT", "NEVER"],
                        help="image pull policy (NEVER for an image built on this machine)")
    parser.add_argument("--local", action="store_true", help="pass the local stack's environment into the container")
    args = parser.parse_args()

    # The agent passes its Prefect settings into the container; its PREFECT_HOME is a path
    # on the host, so the container gets its own (results of cached tasks are kept there).
    env: dict[str, str] = {"PREFECT_HOME": "/opt/prefect/.prefect"}
    volumes: list[str] = []
    if args.local:
        if not os.environ.get("STORAGE_EMULATOR_HOST"):
            sys.exit("--local needs the local stack's environment: run `make stack` and `source .stack/env` first")
        env.update({k: os.environ[k] for k in LOCAL_ENV if os.environ.get(k)})
        env["GOOGLE_APPLICATION_CREDENTIALS"] = CONTAINER_ADC
        volumes = [f"{os.environ['GOOGLE_APPLICATION_CREDENTIALS']}:{CONTAINER_ADC}:ro"]

    DockerContainer(
        image=args.image, image_pull_policy=args.pull, auto_remove=True, network_mode="host",
        env=env, volumes=volumes,
    ).save(BLOCK, overwrite=True)
    print(f"saved DockerContainer block {BLOCK!r} (image {args.image}, pull {args.pull})")


if __name__ == "__main__":
    main()

"""What the deployment scripts share: where the flows live, the parent flow, and how a
Process deployment of it is built."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOWS = REPO / "flows"
# The image copies flows/ here (see Dockerfile).
IMAGE_FLOWS = "/opt/prefect/flows"
ENTRYPOINT = "parameterized_flow.py:etl_parent_flow"
WORK_QUEUE = "default"

sys.path.insert(0, str(FLOWS))
from nyctaxi import ARROW_ALLOCATOR_ENV  # noqa: E402
from parameterized_flow import etl_parent_flow  # noqa: E402


def script_parser(doc: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def apply_process_deployment(name: str, parser: argparse.ArgumentParser,
                             schedules: Callable[[argparse.Namespace], list] = lambda args: [],
                             flow=etl_parent_flow, entrypoint: str = ENTRYPOINT) -> argparse.Namespace:
    """Build and apply ``<flow>/<name>`` (by default ``etl-parent-flow``): a local process running
    this checkout's flows/; return the parsed arguments.

    Prefect runs a Process deployment from a temporary copy of flows/, so the data root
    is set explicitly (``--data-dir``) rather than found from the code's location."""
    from prefect.deployments import Deployment
    from prefect.infrastructure import Process

    parser.add_argument("--data-dir", type=Path, default=REPO / "data",
                        help="where runs of this deployment keep their files (default: this checkout's data/)")
    args = parser.parse_args()
    deployment = Deployment.build_from_flow(
        flow=flow,
        name=name,
        # The allocator settings of flows/nyctaxi/__init__.py, given to the process: Prefect imports
        # pyarrow before the flow's code runs.
        infrastructure=Process(env={"NYC_TLC_DATA_DIR": str(args.data_dir.resolve()), **ARROW_ALLOCATOR_ENV}),
        work_queue_name=WORK_QUEUE,
        path=str(FLOWS),
        entrypoint=entrypoint,
        schedules=schedules(args) or None,
    )
    deployment_id = deployment.apply()
    print(f"applied {flow.name}/{name} ({deployment_id}) on work queue {WORK_QUEUE!r}")
    return args

"""What the deployment scripts share: where the flows live, the parent flow, and how a
Process deployment of a flow is built."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from nyctaxi import ARROW_ALLOCATOR_ENV
from nyctaxi.resources import WORK_QUEUE

REPO = Path(__file__).resolve().parents[1]
FLOWS = REPO / "flows"
# The image copies flows/ here (see Dockerfile).
IMAGE_FLOWS = "/opt/prefect/flows"
ENTRYPOINT = "parameterized_flow.py:etl_parent_flow"


def flow_at(entrypoint: str):
    """The flow of this checkout's ``flows/<file>.py:<function>``, loaded as Prefect loads a deployment's."""
    from prefect.flows import load_flow_from_entrypoint

    return load_flow_from_entrypoint(f"{FLOWS}/{entrypoint}")


def script_parser(doc: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def apply_process_deployment(name: str, parser: argparse.ArgumentParser,
                             schedules: Callable[[argparse.Namespace], list] = lambda args: [],
                             entrypoint: str = ENTRYPOINT) -> argparse.Namespace:
    """Build and apply ``<flow>/<name>`` of the flow at ``entrypoint`` (by default ``etl-parent-flow``):
    a local process running this checkout's flows/; return the parsed arguments.

    Prefect runs a Process deployment from a temporary copy of flows/; the data root is given
    explicitly (``--data-dir``, by default this checkout's data/, which is also where the code
    would look: ``resources.REPO``), so a deployment can keep its files elsewhere."""
    from prefect.deployments import Deployment
    from prefect.infrastructure import Process

    parser.add_argument("--data-dir", type=Path, default=REPO / "data",
                        help="where runs of this deployment keep their files (default: this checkout's data/)")
    args = parser.parse_args()
    flow = flow_at(entrypoint)
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

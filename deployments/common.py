"""What the deployment scripts share: where the flows live, and the parent flow itself."""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOWS = REPO / "flows"
# The image copies flows/ here (see Dockerfile).
IMAGE_FLOWS = "/opt/prefect/flows"
ENTRYPOINT = "parameterized_flow.py:etl_parent_flow"
WORK_QUEUE = "default"



def process_infrastructure(data_dir: Path) -> "Process":
    """A local process. Prefect runs it from a temporary copy of flows/, so the data root
    is given explicitly rather than found from the code's location."""
    from prefect.infrastructure import Process

    return Process(env={"NYC_TLC_DATA_DIR": str(data_dir.resolve())})


def data_dir_argument(parser) -> None:
    parser.add_argument("--data-dir", type=Path, default=REPO / "data",
                        help="where runs of this deployment keep their files (default: this checkout's data/)")


sys.path.insert(0, str(FLOWS))
from parameterized_flow import etl_parent_flow  # noqa: E402

__all__ = ["REPO", "FLOWS", "IMAGE_FLOWS", "ENTRYPOINT", "WORK_QUEUE", "etl_parent_flow", "process_infrastructure",
           "data_dir_argument"]

"""What the deployment scripts share: where the flows live, and the parent flow itself."""
from __future__ import annotations

import sys
from pathlib import Path

FLOWS = Path(__file__).resolve().parents[1] / "flows"
# The image copies flows/ here (see Dockerfile).
IMAGE_FLOWS = "/opt/prefect/flows"
ENTRYPOINT = "parameterized_flow.py:etl_parent_flow"
WORK_QUEUE = "default"

sys.path.insert(0, str(FLOWS))
from parameterized_flow import etl_parent_flow  # noqa: E402

__all__ = ["FLOWS", "IMAGE_FLOWS", "ENTRYPOINT", "WORK_QUEUE", "etl_parent_flow"]

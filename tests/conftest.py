"""Which tests run on which Prefect.

``@pytest.mark.prefect2``: the test uses what Prefect 3 removed (agents, infrastructure blocks such as
``DockerContainer``, ``Deployment.build_from_flow``, flow-run notification policies).
``@pytest.mark.prefect3``: the test uses what only Prefect 3 has (the server's basic auth, heartbeats).
The other runtime's tests are deselected, not skipped: the summary line counts them.
"""
from __future__ import annotations

import pytest

from helpers import PREFECT_MAJOR, PREFECT_VERSION

OTHER_RUNTIME = "prefect3" if PREFECT_MAJOR < 3 else "prefect2"


def pytest_report_header(config) -> str:
    return f"Prefect {PREFECT_VERSION}: tests marked {OTHER_RUNTIME} are deselected"


def pytest_collection_modifyitems(config, items: list[pytest.Item]) -> None:
    deselected = [item for item in items if item.get_closest_marker(OTHER_RUNTIME)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker(OTHER_RUNTIME)]

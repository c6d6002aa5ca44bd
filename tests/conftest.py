"""Which tests run on which Prefect.

``@pytest.mark.prefect2``: the test uses what Prefect 3 removed (agents, infrastructure blocks such as
``DockerContainer``, ``Deployment.build_from_flow``, flow-run notification policies).
``@pytest.mark.prefect3``: the test uses what only Prefect 3 has (the server's basic auth, heartbeats).
``@pytest.mark.plain``: the test's subject is the project's own code, not Prefect's behaviour (the
conversion, the GCS module, a colour's schema beyond the first colour of a data path, checks the
unit tests already make): it runs once, on the default runtime (Prefect 2.20). Every unit test is
plain. On Prefect 3.9 what is left is what the runtime changes (docs/testing.md lists both sets).
The other runtime's tests are deselected, not skipped: the summary line counts them.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import PREFECT_MAJOR, PREFECT_VERSION

UNIT = Path(__file__).parent / "unit"
NOT_HERE = ("prefect3",) if PREFECT_MAJOR < 3 else ("prefect2", "plain")


def pytest_report_header(config) -> str:
    return f"Prefect {PREFECT_VERSION}: tests marked {' or '.join(NOT_HERE)} are deselected"


def pytest_collection_modifyitems(config, items: list[pytest.Item]) -> None:
    for item in items:
        if UNIT in item.path.parents:
            item.add_marker(pytest.mark.plain)
    deselected = [item for item in items if any(item.get_closest_marker(m) for m in NOT_HERE)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        kept = set(map(id, items)) - set(map(id, deselected))
        items[:] = [item for item in items if id(item) in kept]

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
# The end-to-end files that take longest, longest first (CI's --durations): they start first, so that
# no worker is left alone with a long file at the end. `make test`'s --no-loadscope-reorder keeps
# this order; pytest-xdist's own puts the files with the most tests first, the unit tests' among them.
# The container test comes after a few minutes' work: in CI its image is still being built at first.
LONGEST_FIRST = ("test_backfill.py", "test_unreachable.py", "test_deployments.py", "test_secrets.py",
                 "test_dask_cluster.py", "test_workers.py", "test_docker_container.py", "test_failure_alerts.py",
                 "test_bigquery_rules.py", "test_gcs_to_bq.py", "test_web_to_postgres.py")


def _order(item: pytest.Item) -> tuple[int, int]:
    """The longest end-to-end files, then the other end-to-end files, then the unit tests (short: they
    fill the gaps at the end)."""
    if UNIT in item.path.parents:
        return (2, 0)
    name = item.path.name
    return (0, LONGEST_FIRST.index(name)) if name in LONGEST_FIRST else (1, 0)
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
    items.sort(key=_order)  # stable: a file's tests keep their order

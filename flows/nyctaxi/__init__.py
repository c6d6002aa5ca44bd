"""Plain, Prefect-free logic of the NYC taxi ETL, and ``resources``: every name and setting of the
outside world. The course's tasks in ``flows/tasks.py`` are thin wrappers over these modules (their
map: docs/architecture.md)."""

import os

from .resources import ARROW_ALLOCATOR_ENV

# mimalloc reads its options when pyarrow is loaded, so they must be set before the process first
# imports pyarrow, as here for the flow scripts (Prefect does not import it); the process's own
# environment wins. Deployments give them to the flow's process (prefect.yaml, the docker pool).
for _name, _value in ARROW_ALLOCATOR_ENV.items():
    os.environ.setdefault(_name, _value)

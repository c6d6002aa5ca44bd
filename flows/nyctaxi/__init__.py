"""Plain, Prefect-free logic of the NYC taxi ETL, and ``resources``: every name and setting of the
outside world. The course's tasks in ``flows/tasks.py`` are thin wrappers over these modules (their
map: docs/architecture.md)."""

import os

from .resources import ENVIRONMENT

# Arrow's allocator, mimalloc, keeps freed memory committed for reuse, per thread; with the
# background threads of the CSV and parquet readers it held far more than Arrow ever had
# allocated at once. These options make it return freed memory at once (the conversion's peak
# and cost: bench/README.md). mimalloc reads them when pyarrow is loaded, so they must be set
# before the process first imports pyarrow, as here for the flow scripts (Prefect does not
# import it); the process's own environment wins.
ARROW_ALLOCATOR_ENV = {name: ENVIRONMENT[name].default for name in ("MIMALLOC_PURGE_DELAY",
                                                                     "MIMALLOC_ARENA_EAGER_COMMIT")}
for _name, _value in ARROW_ALLOCATOR_ENV.items():
    os.environ.setdefault(_name, _value)

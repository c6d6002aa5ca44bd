"""Plain, Prefect-free logic of the NYC taxi ETL.

The course's tasks in ``flows/tasks.py`` are thin wrappers over these modules:

- ``dataset``: which month of which colour, validated, and the names derived from it
- ``schema``: the one declared column list and type per colour
- ``source``: where the release files live and how one is downloaded
- ``convert``: csv.gz -> typed parquet, streamed in bounded memory
- ``lake``: where files live on disk and in the bucket
"""

import os

# Arrow's allocator, mimalloc, keeps freed memory committed for reuse, per thread; with the
# background threads of the CSV and parquet readers it held 50-130 MB more than Arrow ever had
# allocated at once. These options make it return freed memory at once: the conversion peaks
# about 50 MB lower, for about 10% more CPU. mimalloc reads them when pyarrow is loaded, so they
# must be set before the process first imports pyarrow, as here for the flow scripts (Prefect
# does not import it); the process's own environment wins.
ARROW_ALLOCATOR_ENV = {"MIMALLOC_PURGE_DELAY": "0", "MIMALLOC_ARENA_EAGER_COMMIT": "0"}
for _name, _value in ARROW_ALLOCATOR_ENV.items():
    os.environ.setdefault(_name, _value)

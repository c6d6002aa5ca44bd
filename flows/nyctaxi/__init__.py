"""Plain, Prefect-free logic of the NYC taxi ETL.

The course's tasks in ``flows/tasks.py`` are thin wrappers over these modules:

- ``dataset``: which month of which colour, validated, and the names derived from it
- ``schema``: the one declared column list and type per colour
- ``source``: where the release files live and how one is downloaded
- ``convert``: csv.gz -> typed parquet, streamed in bounded memory
- ``lake``: where files live on disk and in the bucket
"""

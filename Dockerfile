# The image the DockerContainer block `zoom` runs: the flows at /opt/prefect/flows,
# the data root at /opt/prefect/data (flows/nyctaxi/lake.py resolves it from its own path).
FROM prefecthq/prefect:2.20.26-python3.11

COPY docker-requirements.txt .
RUN pip install -r docker-requirements.txt --no-cache-dir

COPY flows /opt/prefect/flows
# The project's package (flows/nyctaxi), as make venv installs it; its pins are docker-requirements.txt's.
COPY pyproject.toml /opt/prefect/
RUN pip install --no-deps --no-build-isolation --no-cache-dir -e /opt/prefect
# Explicit, because Prefect may run the flows from a copy of /opt/prefect/flows.
ENV NYC_TLC_DATA_DIR=/opt/prefect/data
# Arrow's allocator gives freed memory back at once (see flows/nyctaxi/__init__.py); set here
# because Prefect imports pyarrow before the flow's code runs.
ENV MIMALLOC_PURGE_DELAY=0 MIMALLOC_ARENA_EAGER_COMMIT=0
RUN mkdir -p /opt/prefect/data && chmod a+rwx /opt/prefect/data
WORKDIR /opt/prefect

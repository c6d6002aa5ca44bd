"""BigQuery's rules on the local stack (stack/bq_rules.py), and the loads living with them: a transaction
changing a table another one is changing is cancelled with Google's error, a sixth update of a table
within 10 s is refused with Google's rateLimitExceeded, and the loads run such a job again until it lands;
a gs:// load across locations is refused as Google refuses it, and the loads check it first."""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from google.api_core.exceptions import BadRequest, TooManyRequests
from google.cloud import bigquery as bq
from stack.generator import generate

from helpers import bq_client, bq_counts, bq_staging_tables
from nyctaxi import bigquery
from nyctaxi.convert import csv_gz_to_parquet
from nyctaxi.failures import BigQueryBusyError, LocationError
from nyctaxi.resources import DATASET, table_name

pytestmark = pytest.mark.plain  # what BigQuery accepts: nothing of Prefect's


@pytest.fixture
def scratch_table():
    """A small table of its own in the stack's dataset, dropped at the end."""
    client = bq_client()
    table_id = f"{client.project}.{DATASET}.rules_{uuid.uuid4().hex[:8]}"
    client.create_table(bq.Table(table_id, schema=[bq.SchemaField("n", "INT64")]))
    yield client, table_id
    client.delete_table(table_id, not_found_ok=True)


def test_a_transaction_on_a_table_another_one_is_changing_is_cancelled_with_google_s_error(scratch_table):
    client, table_id = scratch_table
    script = f"BEGIN TRANSACTION; DELETE FROM `{table_id}` WHERE n = 1; COMMIT TRANSACTION;"
    start = threading.Barrier(2)

    def swap():
        start.wait()
        return client.query(script).result()

    with ThreadPoolExecutor(2) as pool:
        outcomes = [f.exception() for f in [pool.submit(swap), pool.submit(swap)]]
    [error] = [e for e in outcomes if e is not None]  # one lands, one is cancelled
    assert isinstance(error, BadRequest)
    assert error.errors[0]["reason"] == "invalidQuery"
    project, dataset, table = table_id.split(".")
    assert error.errors[0]["message"].startswith(
        f"Transaction is aborted due to concurrent update against table {project}:{dataset}.{table}. Transaction ID: ")
    client.query(script).result()  # once the other has ended, the table is free again


def test_a_sixth_update_of_a_table_within_10_s_is_refused_with_rate_limit_exceeded(scratch_table):
    client, table_id = scratch_table
    loaded = 0
    with pytest.raises(TooManyRequests) as refused:  # the client's class for the reason: 429
        while loaded < 20:  # five within 10 s, however slow a busy machine makes each
            client.load_table_from_json([{"n": loaded}], table_id).result()
            loaded += 1
    assert loaded >= 5
    assert refused.value.errors[0]["reason"] == "rateLimitExceeded"
    assert "too many table update operations for this table" in refused.value.errors[0]["message"]
    count = f"SELECT COUNT(*) FROM `{table_id}`"
    assert next(iter(client.query(count).result()))[0] == loaded  # nothing of the refused one appended


@contextmanager
def rate_kept_full(client, table_id: str, until: threading.Event | None = None) -> Iterator[None]:
    """No-op DML on ``table_id`` (it still counts as an update) over and over, in a thread, so that its
    update rate stays full however slow the machine (until ``until`` is set): whatever else writes to
    it meanwhile is refused."""
    stop = until or threading.Event()

    def update():
        while not stop.is_set():
            try:
                client.query(f"DELETE FROM `{table_id}` WHERE FALSE", job_retry=None).result()
            except TooManyRequests:
                time.sleep(0.05)

    thread = threading.Thread(target=update, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def lake_file(tmp_path: Path, color: str, month: int, rows: int) -> Path:
    src = generate(color, 2020, month, rows, tmp_path / f"{color}-{month}.csv.gz")
    dest = tmp_path / f"{color}-{month}.parquet"
    csv_gz_to_parquet(src, dest, color)
    return dest


def test_months_swapping_at_once_in_one_table_and_in_two_all_land_once(tmp_path, caplog):
    """Three months reach their swap at the same moment: two of yellow (one table) and one of green
    (another table; all three record their load in nyc_tlc_loads). BigQuery cancels all but one;
    each cancelled swap is run again, and every month lands once."""
    months = [("yellow", 3), ("yellow", 4), ("green", 3)]
    files = {m: lake_file(tmp_path, *m, rows=500 + 100 * i) for i, m in enumerate(months)}
    at_swap = threading.Barrier(len(months))

    def load(color: str, month: int) -> int:
        client = bq_client()

        def stage(staging_id: str) -> int:
            rows = bigquery.stage_with_load_file(client, files[color, month], staging_id, color)
            at_swap.wait()  # every month staged: the swaps start together
            return rows

        return bigquery.replace_month(client, color, f"{color}_tripdata_2020-{month:02}.csv.gz", stage)

    with caplog.at_level(logging.INFO, logger="nyctaxi.bigquery"), ThreadPoolExecutor(len(months)) as pool:
        rows = list(pool.map(lambda m: load(*m), months))
    assert rows == [500, 600, 700]
    retried = [r.getMessage() for r in caplog.records if "another load was changing the same table" in r.getMessage()]
    assert retried, "no swap was cancelled: the rules did not hold the transactions open"
    for (color, month), n in zip(months, rows, strict=True):
        assert bq_counts(table_name(color))[f"{color}_tripdata_2020-{month:02}.csv.gz"] == n
    assert bq_staging_tables() == set()


@contextmanager
def once_logged(text: str) -> Iterator[threading.Event]:
    """An event set when nyctaxi.bigquery logs (at INFO) a line holding ``text``."""
    logged, logger = threading.Event(), logging.getLogger("nyctaxi.bigquery")

    class Watch(logging.Handler):
        def emit(self, record):
            if text in record.getMessage():
                logged.set()

    handler, level = Watch(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield logged
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_the_course_s_pandas_gbq_way_outlives_the_table_update_rate(tmp_path, monkeypatch):
    """pandas-gbq appends one load job per call to one staging table: past five in 10 s BigQuery
    answers rateLimitExceeded, and the call is made again until the table takes it. (Seven calls
    would meet the rate on their own on a quick machine; the staging table's rate is also kept full
    until the first refusal, so that a slow one meets it too.)"""
    monkeypatch.setattr(bigquery, "PANDAS_GBQ_ROWS", 400)  # seven calls for 2,600 rows
    parquet = tmp_path / "yellow-5.parquet"
    pq.write_table(pq.read_table(lake_file(tmp_path, "yellow", 5, 2600)), parquet, row_group_size=400)
    client = bq_client()
    source_file = "yellow_tripdata_2020-05.csv.gz"

    def stage(staging_id: str) -> int:
        with rate_kept_full(client, staging_id, until=refused):
            return bigquery.stage_with_pandas_gbq(parquet, staging_id, client)

    with once_logged("BigQuery answered rateLimitExceeded; trying again") as refused:
        rows = bigquery.replace_month(client, "yellow", source_file, stage)
    assert rows == 2600 == bq_counts("yellow_tripdata")[source_file]
    assert refused.is_set()


def test_a_job_refused_every_time_fails_in_one_line(scratch_table, monkeypatch):
    client, table_id = scratch_table
    monkeypatch.setattr(bigquery, "JOB_ATTEMPTS", 2)
    monkeypatch.setattr(bigquery, "JOB_RETRY_FIRST_S", 0.1)
    with rate_kept_full(client, table_id), pytest.raises(BigQueryBusyError) as busy:
        time.sleep(1)  # the rate filled
        bigquery.run_job("the load job of a test", lambda: client.load_table_from_json([{"n": 5}], table_id).result())
    message = str(busy.value)
    assert "\n" not in message
    assert message.startswith("BigQuery refused the load job of a test 2 times in ")
    assert "(rateLimitExceeded: 429 Exceeded rate limits: too many table update operations" in message and message.endswith(
        "run the flow again later (a month is replaced whole, never doubled)")


@pytest.fixture
def dataset_in():
    """Makes a dataset of its own in a location; all dropped at the end."""
    client, made = bq_client(), []

    def make(location: str | None) -> str:
        name = f"rules_{uuid.uuid4().hex[:8]}"
        made.append(name)
        if location:
            dataset = bq.Dataset(f"{client.project}.{name}")
            dataset.location = location
            client.create_dataset(dataset)
        return name

    yield make
    for name in made:
        client.delete_dataset(name, delete_contents=True, not_found_ok=True)


def test_a_gs_load_into_a_dataset_in_another_location_fails_with_google_s_error(dataset_in):
    client = bq_client()
    table_id = f"{client.project}.{dataset_in('EU')}.t"
    client.create_table(bq.Table(table_id, schema=[bq.SchemaField("n", "INT64")]))
    config = bq.LoadJobConfig(source_format=bq.SourceFormat.PARQUET)
    with pytest.raises(BadRequest) as refused:  # the stack's bucket is in US
        client.load_table_from_uri(f"gs://{os.environ['GCS_BUCKET']}/any.parquet", table_id, job_config=config).result()
    assert refused.value.errors[0]["reason"] == "invalid"
    assert refused.value.errors[0]["message"] == "Cannot read and write in different locations: source: US, destination: EU"

    from google.cloud import storage  # a bucket within the EU: the same load is not refused for its location

    bucket = storage.Client().create_bucket(f"rules-eu-{uuid.uuid4().hex[:8]}")
    bucket._patch_property("location", "EUROPE-WEST1")  # the emulator makes every bucket in US, but takes a patch
    bucket.patch()
    try:
        with pytest.raises(BadRequest) as other:  # it then reads the object, which is not there
            client.load_table_from_uri(f"gs://{bucket.name}/any.parquet", table_id, job_config=config).result()
        assert "different locations" not in other.value.errors[0]["message"]
    finally:
        bucket.delete(force=True)


def test_the_dataset_is_made_where_the_bucket_is_and_one_that_cannot_read_the_bucket_is_refused(dataset_in):
    client = bq_client()
    missing = dataset_in(None)
    bigquery.ensure_table(client, "green", missing, location=lambda: "EUROPE-WEST1",
                          reads_from=("lake", "EUROPE-WEST1"))
    assert client.get_dataset(missing).location == "EUROPE-WEST1"

    eu = dataset_in("EU")
    bigquery.ensure_table(client, "green", eu, reads_from=("lake", "EUROPE-WEST1"))  # within the EU: readable
    with pytest.raises(LocationError) as wrong:
        bigquery.ensure_table(client, "yellow", eu, reads_from=("lake", "US-CENTRAL1"))
    assert str(wrong.value) == (
        f"BigQuery dataset {client.project}.{eu} is in EU and the bucket lake in US-CENTRAL1: BigQuery loads gs:// "
        f"objects only into a dataset in the bucket's location (or in US). Make the dataset again in US-CENTRAL1 "
        f"(bq rm -r -d {client.project}:{eu}, then run this again: it is made in the bucket's location), or load "
        "from the local copy (no --load-job)")
    assert {t.table_id for t in client.list_tables(eu)} == {"green_tripdata", "nyc_tlc_loads"}  # refused first


def test_a_rate_limited_swap_is_run_again_by_the_loads_not_silently_by_the_client(tmp_path):
    """nyc_tlc_loads' update rate is kept full while a swap starts: the swap is refused for the rate, and
    run again by run_job, logged, not by the client library's own job retry (which would try for up to
    40 minutes without a word)."""
    client = bq_client()
    loads = f"{client.project}.{DATASET}.nyc_tlc_loads"
    bigquery.ensure_table(client, "fhv")
    parquet = lake_file(tmp_path, "fhv", 6, 300)
    source_file = "fhv_tripdata_2020-06.csv.gz"
    def stage(staging_id: str) -> int:
        rows = bigquery.stage_with_load_file(client, parquet, staging_id, "fhv")
        time.sleep(1)  # the rate filled
        return rows

    with once_logged(f"the swap of {source_file}: BigQuery answered rateLimitExceeded") as refused, \
            ThreadPoolExecutor(1) as pool:
        swapped = pool.submit(lambda: bigquery.replace_month(client, "fhv", source_file, stage))
        with rate_kept_full(client, loads):  # until the swap has been refused once
            assert refused.wait(60), "the swap was never refused, or its refusal was not logged"
        assert swapped.result(timeout=120) == 300
    assert bq_counts("fhv_tripdata")[source_file] == 300

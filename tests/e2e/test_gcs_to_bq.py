"""etl_gcs_to_bq end to end: lake objects in the GCS emulator -> the BigQuery emulator."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from stack.generator import generate

from etl_gcs_to_bq import etl_gcs_to_bq, etl_parent_gcs_to_bq
from etl_web_to_gcs import etl_web_to_gcs
from helpers import (
    MIRROR_ROWS,
    REPO,
    bq_client,
    bq_counts,
    bq_staging_tables,
    bucket,
    kill_flow_when,
    private_bigquery,
    run_flows_at_once,
    serve_directory,
    task_runs_of,
)
from nyctaxi.schema import COLUMNS

BQ_TYPES = {"int": "INT64", "float": "FLOAT64", "timestamp": "DATETIME", "string": "STRING"}
LEGACY_NAMES = {"INTEGER": "INT64", "FLOAT": "FLOAT64"}  # what real BigQuery reports


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("NYC_TLC_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def table_types(table: str) -> dict[str, str]:
    client = bq_client()
    fields = client.get_table(f"{client.project}.dezoomcamp.{table}").schema
    return {f.name: LEGACY_NAMES.get(f.field_type, f.field_type) for f in fields}


@pytest.mark.parametrize("color, year, month", [("yellow", 2019, 4), pytest.param("green", 2019, 4, marks=pytest.mark.plain),
                                                pytest.param("fhv", 2019, 4, marks=pytest.mark.plain)])
def test_every_row_lands_with_the_declared_types_and_its_source(color, year, month):
    etl_web_to_gcs(year=year, month=month, color=color)
    assert etl_gcs_to_bq(year=year, month=month, color=color) == MIRROR_ROWS
    source = f"{color}_tripdata_{year}-{month:02}.csv.gz"
    assert bq_counts(f"{color}_tripdata")[source] == MIRROR_ROWS
    expected = {name: BQ_TYPES[kind] for name, kind in COLUMNS[color]} | {"source_file": "STRING",
                                                                         "source_month": "DATE"}
    assert table_types(f"{color}_tripdata") == expected
    client = bq_client()
    partitions = client.get_table(f"{client.project}.dezoomcamp.{color}_tripdata").time_partitioning
    assert (partitions.type_, partitions.field) == ("MONTH", "source_month")
    [(month_of_rows,)] = client.query(f"SELECT DISTINCT source_month FROM `{client.project}.dezoomcamp."
                                      f"{color}_tripdata` WHERE source_file = '{source}'").result()
    assert f"{month_of_rows:%Y-%m-%d}" == f"{year}-{month:02}-01"


@pytest.mark.parametrize("month, way", [(5, "load_job"), (3, "pandas_gbq")])
def test_the_load_job_from_gs_and_the_course_s_pandas_gbq_give_the_same_rows(month, way):
    etl_web_to_gcs(year=2019, month=month, color="green")
    assert etl_gcs_to_bq(year=2019, month=month, color="green", **{way: True}) == MIRROR_ROWS
    assert bq_counts("green_tripdata")[f"green_tripdata_2019-{month:02}.csv.gz"] == MIRROR_ROWS


@pytest.mark.plain
def test_one_way_in_at_a_time():
    with pytest.raises(ValueError, match="choose one"):
        etl_gcs_to_bq(year=2019, month=5, color="green", load_job=True, pandas_gbq=True)
    out = subprocess.run([sys.executable, str(REPO / "flows" / "etl_gcs_to_bq.py"), "--load-job", "--pandas-gbq"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "not allowed with argument" in out.stderr


@pytest.mark.plain
def test_reloading_three_times_keeps_one_copy_and_other_months_untouched():
    for month in (6, 7):
        etl_web_to_gcs(year=2019, month=month, color="yellow")
    etl_gcs_to_bq(year=2019, month=6, color="yellow")
    other = bq_counts("yellow_tripdata")["yellow_tripdata_2019-06.csv.gz"]
    for way in ({}, {"load_job": True}, {"pandas_gbq": True}):
        etl_gcs_to_bq(year=2019, month=7, color="yellow", **way)
    counts = bq_counts("yellow_tripdata")
    assert counts["yellow_tripdata_2019-07.csv.gz"] == MIRROR_ROWS
    assert counts["yellow_tripdata_2019-06.csv.gz"] == other == MIRROR_ROWS
    assert bq_staging_tables() == set()


@pytest.mark.plain
def test_the_same_month_loaded_twice_at_once_leaves_one_copy():
    for month in (11, 12):
        etl_web_to_gcs(year=2020, month=month, color="green")
    etl_gcs_to_bq(year=2020, month=11, color="green")
    run_flows_at_once("etl_gcs_to_bq.py", ["--color", "green", "--year", "2020", "--months", "12"])
    counts = bq_counts("green_tripdata")
    assert counts["green_tripdata_2020-12.csv.gz"] == counts["green_tripdata_2020-11.csv.gz"] == MIRROR_ROWS
    assert bq_staging_tables() == set()


def test_the_homework_parent_flow_loads_each_month():
    for month in (8, 9):
        etl_web_to_gcs(year=2019, month=month, color="green")
    assert etl_parent_gcs_to_bq(months=[8, 9], year=2019, color="green") == 2 * MIRROR_ROWS
    counts = bq_counts("green_tripdata")
    assert counts["green_tripdata_2019-08.csv.gz"] == counts["green_tripdata_2019-09.csv.gz"] == MIRROR_ROWS


@pytest.mark.plain
def test_missing_passenger_counts_are_kept_unless_filling_is_asked_for():
    etl_web_to_gcs(year=2021, month=6, color="yellow")  # a 2021 month: about 7 % missing
    client = bq_client()
    sql = (f"SELECT COUNTIF(passenger_count IS NULL) FROM `{client.project}.dezoomcamp.yellow_tripdata` "
           "WHERE source_file = 'yellow_tripdata_2021-06.csv.gz'")
    etl_gcs_to_bq(year=2021, month=6, color="yellow")
    assert next(iter(client.query(sql).result()))[0] > 0
    etl_gcs_to_bq(year=2021, month=6, color="yellow", fill_passenger_count=0)
    assert next(iter(client.query(sql).result()))[0] == 0
    assert bq_counts("yellow_tripdata")["yellow_tripdata_2021-06.csv.gz"] == MIRROR_ROWS


@pytest.mark.plain
def test_a_month_missing_from_the_lake_says_what_to_run():
    blob = bucket().blob("data/fhv/fhv_tripdata_2019-11.parquet")
    if blob.exists():
        blob.delete()
    state = etl_gcs_to_bq(year=2019, month=11, color="fhv", return_state=True)
    assert state.is_failed()
    assert "NotInLakeError" in state.message
    assert "run etl_web_to_gcs(year=2019, month=11, color='fhv') first" in state.message
    # Tried once: no retry brings a month into the lake.
    [extract] = [t for t in task_runs_of(state) if t.name.startswith("extract_from_gcs")]
    assert extract.run_count == 1


@pytest.mark.plain
def test_a_load_killed_before_the_swap_leaves_the_previous_month_intact(tmp_path, monkeypatch):
    etl_web_to_gcs(year=2019, month=10, color="yellow")
    etl_gcs_to_bq(year=2019, month=10, color="yellow")
    assert bq_counts("yellow_tripdata")["yellow_tripdata_2019-10.csv.gz"] == MIRROR_ROWS

    big = tmp_path / "big"
    generate("yellow", 2019, 10, 400_000, big / "yellow" / "yellow_tripdata_2019-10.csv.gz")
    with serve_directory(big) as base:
        monkeypatch.setenv("NYC_TLC_BASE_URL", base)
        etl_web_to_gcs(year=2019, month=10, color="yellow")  # the lake now holds the big month

    before = bq_staging_tables()
    kill_flow_when("etl_gcs_to_bq.py", ["--year", "2019", "--months", "10"], ready=lambda: bq_staging_tables() - before)
    assert bq_counts("yellow_tripdata")["yellow_tripdata_2019-10.csv.gz"] == MIRROR_ROWS

    assert etl_gcs_to_bq(year=2019, month=10, color="yellow") == 400_000  # the next run completes
    assert bq_counts("yellow_tripdata")["yellow_tripdata_2019-10.csv.gz"] == 400_000
    # The killed run's staging table stays until it expires (a day): drop it, other tests check for none.
    left = bq_staging_tables() - before
    assert len(left) == 1
    for table in left:
        bq_client().delete_table(f"dezoomcamp.{table}")


@pytest.mark.plain
def test_the_readme_s_bigquery_query_runs_against_the_emulator():
    etl_web_to_gcs(year=2019, month=4, color="yellow")
    etl_gcs_to_bq(year=2019, month=4, color="yellow")
    readme = (REPO / "README.md").read_text()
    snippet = re.search(r"BigQuery, with Google's Python client.*?```python\n(.*?)```", readme, re.S)[1]
    out = subprocess.run([sys.executable, "-c", snippet], env=dict(os.environ), capture_output=True, text=True,
                         timeout=120)  # the environment of `source .stack/env`
    assert out.returncode == 0, out.stderr
    assert f"yellow_tripdata_2019-04.csv.gz {MIRROR_ROWS}" in out.stdout.splitlines()


def test_the_course_s_get_directory_runs_once_its_folder_exists(tmp_path, monkeypatch):
    """The course's extract_from_gcs, as written for prefect-gcp 0.2.4 (docs/course-to-here.md): on
    0.5 it needs ../data/data/<colour>/ to exist; then the path it returns is the file."""
    from prefect_gcp.cloud_storage import GcsBucket

    etl_web_to_gcs(year=2019, month=4, color="yellow")
    (tmp_path / "flows").mkdir()
    monkeypatch.chdir(tmp_path / "flows")  # the course runs its scripts from their folder
    gcs_path = "data/yellow/yellow_tripdata_2019-04.parquet"
    gcs_block = GcsBucket.load("zoom-gcs")
    with pytest.raises(FileNotFoundError):
        gcs_block.get_directory(from_path=gcs_path, local_path="../data/")
    (tmp_path / "data" / "data" / "yellow").mkdir(parents=True)
    gcs_block.get_directory(from_path=gcs_path, local_path="../data/")
    assert pq.ParquetFile(Path(f"../data/{gcs_path}")).metadata.num_rows == MIRROR_ROWS


@pytest.mark.plain
def test_a_staging_table_a_killed_run_left_is_dropped_by_the_next_load():
    """bqemulator keeps a table past its expiry; BigQuery would have deleted it after a day."""
    from datetime import UTC, datetime

    from google.cloud import bigquery

    from nyctaxi.bigquery import schema

    client = bq_client()
    etl_web_to_gcs(year=2020, month=12, color="green")
    etl_gcs_to_bq(year=2020, month=12, color="green")  # the colour's table exists
    made = {when: f"{client.project}.dezoomcamp.green_tripdata__staging_{when}_abcdef"
            for when in ("20200101000000", f"{datetime.now(UTC):%Y%m%d%H%M%S}")}
    for table_id in made.values():
        client.create_table(bigquery.Table(table_id, schema=schema("green", lineage=False)))
    etl_gcs_to_bq(year=2020, month=12, color="green")
    left = bq_staging_tables()
    old, new = (made[when].rsplit(".", 1)[1] for when in sorted(made))
    assert old not in left and new in left  # the old one dropped; one that a run may be using now kept
    client.delete_table(made[max(made)])


@pytest.mark.plain
def test_a_table_of_an_earlier_version_is_refused_then_partitioned_by_the_command_every_row_kept(tmp_path):
    """A colour table as earlier versions made it (no source_month, no partitions), in a BigQuery of the
    test's: a load is refused naming the command; the command makes it again partitioned by month with
    every row; then the load lands."""
    from google.cloud import bigquery

    from nyctaxi.bigquery import schema

    with private_bigquery(tmp_path / "bq-stack") as (client, host):
        table_id = f"{client.project}.dezoomcamp.green_tripdata"
        client.create_table(bigquery.Table(table_id, schema=schema("green")[:-1]))  # as earlier versions did
        cols = ", ".join(f"`{name}`" for name, _ in COLUMNS["green"])
        client.query(f"INSERT INTO `{table_id}` ({cols}, source_file) SELECT {cols}, source_file FROM UNNEST(["
                     + ", ".join(f"STRUCT({', '.join(f'NULL AS `{n}`' for n, _ in COLUMNS['green'])}, "
                                 f"'green_tripdata_2019-{m:02}.csv.gz' AS source_file)" for m in (1, 1, 2))
                     + "])").result()
        etl_web_to_gcs(year=2019, month=3, color="green")
        env = {**os.environ, "BIGQUERY_EMULATOR_HOST": host}
        load = [sys.executable, str(REPO / "flows" / "etl_gcs_to_bq.py"), "--year", "2019", "--months", "3",
                "--color", "green"]
        refused = subprocess.run(load, env=env, capture_output=True, text=True, timeout=300)
        assert refused.returncode == 1
        assert ("was made by an earlier version of this project, without partitions: run "
                "`python flows/partition_bq_tables.py --color green` once") in refused.stderr.splitlines()[-1]

        done = subprocess.run([sys.executable, str(REPO / "flows" / "partition_bq_tables.py"), "--color", "green"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"{table_id}: made again partitioned by month, 3 rows" in done.stdout
        table = client.get_table(table_id)
        assert (table.time_partitioning.type_, table.time_partitioning.field) == ("MONTH", "source_month")
        rows = client.query(f"SELECT source_file, source_month, COUNT(*) FROM `{table_id}` GROUP BY 1, 2 "
                            "ORDER BY 1").result()
        assert [(f, f"{m:%Y-%m-%d}", n) for f, m, n in rows] == [
            ("green_tripdata_2019-01.csv.gz", "2019-01-01", 2), ("green_tripdata_2019-02.csv.gz", "2019-02-01", 1)]
        assert [t.table_id for t in client.list_tables("dezoomcamp") if "__by_month" in t.table_id] == []
        again = subprocess.run(done.args, env=env, capture_output=True, text=True, timeout=300)
        assert f"{table_id}: partitioned by month already" in again.stdout

        loaded = subprocess.run(load, env=env, capture_output=True, text=True, timeout=300)
        assert loaded.returncode == 0, loaded.stderr[-3000:]
        counts = dict(client.query(f"SELECT source_file, COUNT(*) FROM `{table_id}` GROUP BY 1").result())
        assert counts == {"green_tripdata_2019-01.csv.gz": 2, "green_tripdata_2019-02.csv.gz": 1,
                          "green_tripdata_2019-03.csv.gz": MIRROR_ROWS}

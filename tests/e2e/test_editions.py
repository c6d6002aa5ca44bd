"""New editions of a loaded month, published at the same URL by a release server the test controls.

A header-only (or much smaller) edition is refused by every destination, which keeps its
rows; a corrected edition is downloaded afresh, not served from fetch's cache, and loads;
``allow_shrink=True`` loads a smaller edition on purpose.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from etl_gcs_to_bq import etl_gcs_to_bq
from etl_web_to_gcs import etl_web_to_gcs
from etl_web_to_postgres import etl_web_to_postgres
from faults import FaultServer
from helpers import (
    bq_counts,
    bq_staging_tables,
    bucket,
    postgres_connection,
    postgres_counts,
    read_object,
    run_logs,
    staged_files,
)
from nyctaxi import lake

TABLE = "t_editions"


def object_rows(color: str, year: int, month: int) -> int:
    return read_object(f"data/{color}/{color}_tripdata_{year}-{month:02}.parquet").metadata.num_rows


def lake_rows(data_dir: Path, color: str, year: int, month: int) -> int:
    return pq.ParquetFile(data_dir / color / f"{color}_tripdata_{year}-{month:02}.parquet").metadata.num_rows


def recorded_rows(table: str, source_file: str) -> int:
    with postgres_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT rows FROM nyc_tlc_loads WHERE table_name = %s AND source_file = %s", (table, source_file))
        return cur.fetchone()[0]


@pytest.mark.plain
def test_a_header_only_edition_is_refused_at_every_destination_and_each_keeps_its_rows(server, data_dir):
    color, year, month, source = "yellow", 2019, 1, "yellow_tripdata_2019-01.csv.gz"
    url = server.publish(color, year, month, rows=3000)
    etl_web_to_gcs(year=year, month=month, color=color)
    etl_gcs_to_bq(year=year, month=month, color=color)
    etl_web_to_postgres(year=year, month=month, color=color, table=TABLE)

    server.publish(color, year, month, header_only=True)
    lake_refused = etl_web_to_gcs(year=year, month=month, color=color, return_state=True)
    assert lake_refused.is_failed()
    assert (f"refused to load {source} into the lake file {data_dir / color / 'yellow_tripdata_2019-01.parquet'}: "
            "the new edition has no rows") in lake_refused.message
    assert "holds 3,000 rows of it" in lake_refused.message and "allow_shrink=True" in lake_refused.message
    pg_refused = etl_web_to_postgres(year=year, month=month, color=color, table=TABLE, return_state=True)
    assert pg_refused.is_failed()
    assert f"refused to load {source} into PostgreSQL table {TABLE}" in pg_refused.message
    assert "holds 3,000 rows of it" in pg_refused.message

    assert lake_rows(data_dir, color, year, month) == object_rows(color, year, month) == 3000
    assert postgres_counts(TABLE) == {source: 3000} and recorded_rows(TABLE, source) == 3000
    # Refused downloads are not kept: the next run fetches the month again (it does not come from the cache).
    assert not lake.raw_path(url).exists()
    assert staged_files(data_dir) == []

    # BigQuery loads from the bucket, which kept the old month: put the empty edition there on purpose,
    # then BigQuery must refuse it by itself, every way of loading.
    gets = server.requests[server.path_of(url)]
    etl_web_to_gcs(year=year, month=month, color=color, allow_shrink=True)
    assert server.requests[server.path_of(url)] == gets + 1
    assert object_rows(color, year, month) == 0
    for way in ({}, {"load_job": True}, {"pandas_gbq": True}):
        bq_refused = etl_gcs_to_bq(year=year, month=month, color=color, **way, return_state=True)
        assert bq_refused.is_failed()
        assert f"refused to load {source} into BigQuery table" in bq_refused.message
        assert "holds 3,000 rows of it" in bq_refused.message
        assert bq_counts("yellow_tripdata")[source] == 3000
    assert bq_staging_tables() == set()
    assert staged_files(data_dir) == []


def test_a_corrected_edition_at_the_same_url_is_fetched_afresh_and_loaded(server, data_dir):
    color, year, month, source = "yellow", 2019, 2, "yellow_tripdata_2019-02.csv.gz"
    url = server.publish(color, year, month, rows=3000)
    for _ in range(3):  # the second run caches the download under its edition, the third is served from it
        etl_web_to_gcs(year=year, month=month, color=color)
    etl_web_to_postgres(year=year, month=month, color=color, table=TABLE)
    path = server.path_of(url)
    assert server.requests[path] == 2  # the third run and the Postgres flow used the cached download
    assert server.heads[path] >= 3  # each cached run asked whether the edition changed

    server.publish(color, year, month, rows=2990)  # a few rows fewer: a correction, not a broken file
    state = etl_web_to_gcs(year=year, month=month, color=color, return_state=True)
    assert state.is_completed(), state.message
    assert "was republished since it was cached: downloading the new edition" in "\n".join(run_logs(state.state_details.flow_run_id))
    assert server.requests[path] == 3
    assert lake_rows(data_dir, color, year, month) == object_rows(color, year, month) == 2990
    etl_web_to_postgres(year=year, month=month, color=color, table=TABLE)
    assert postgres_counts(TABLE)[source] == recorded_rows(TABLE, source) == 2990


@pytest.mark.plain
def test_allow_shrink_loads_a_much_smaller_edition_everywhere(server, data_dir):
    color, year, month, source = "yellow", 2019, 8, "yellow_tripdata_2019-08.csv.gz"
    server.publish(color, year, month, rows=3000)
    etl_web_to_gcs(year=year, month=month, color=color)
    etl_gcs_to_bq(year=year, month=month, color=color, load_job=True)
    etl_web_to_postgres(year=year, month=month, color=color, table=TABLE)

    server.publish(color, year, month, rows=1000)
    refused = etl_web_to_gcs(year=year, month=month, color=color, return_state=True)
    assert refused.is_failed()
    assert "the new edition has 1,000 rows, less than 50% of the 3,000 loaded" in refused.message

    etl_web_to_gcs(year=year, month=month, color=color, allow_shrink=True)
    etl_gcs_to_bq(year=year, month=month, color=color, load_job=True, allow_shrink=True)
    etl_web_to_postgres(year=year, month=month, color=color, table=TABLE, allow_shrink=True)
    assert lake_rows(data_dir, color, year, month) == object_rows(color, year, month) == 1000
    assert bq_counts("yellow_tripdata")[source] == 1000
    assert postgres_counts(TABLE)[source] == 1000
    assert bucket().get_blob(f"data/{color}/yellow_tripdata_2019-08.parquet").metadata["rows"] == "1000"


def test_a_server_that_refuses_head_is_asked_with_a_ranged_get_and_a_new_edition_is_fetched(server, data_dir):
    """GitHub's release downloads redirect to URLs signed for GET only, which answer HEAD with 403:
    the edition is then read from a GET of the first byte, never assumed unchanged."""
    color, year, month = "green", 2019, 4
    server.head_status = 403
    url = server.publish(color, year, month, rows=3000)
    for _ in range(3):  # the second run caches the download under its edition, the third is served from it
        etl_web_to_gcs(year=year, month=month, color=color)
    path = server.path_of(url)
    assert server.requests[path] == 2 and server.ranges[path] >= 2

    server.publish(color, year, month, rows=2990)
    state = etl_web_to_gcs(year=year, month=month, color=color, return_state=True)
    assert state.is_completed(), state.message
    logs = "\n".join(run_logs(state.state_details.flow_run_id))
    assert "was republished since it was cached: downloading the new edition" in logs
    assert "could not ask" not in logs
    assert server.requests[path] == 3 and lake_rows(data_dir, color, year, month) == 2990


def test_an_unreachable_server_during_the_check_falls_back_to_the_cached_download(tmp_path, data_dir, monkeypatch):
    color, year, month = "green", 2019, 1
    with FaultServer(tmp_path / "release") as server:
        monkeypatch.setenv("NYC_TLC_BASE_URL", server.base_url)
        url = server.publish(color, year, month, rows=3000)
        for _ in range(2):  # the second run caches the download under its edition
            etl_web_to_gcs(year=year, month=month, color=color)
    state = etl_web_to_gcs(year=year, month=month, color=color, return_state=True)  # the server is gone
    assert state.is_completed(), state.message
    assert f"could not ask whether {url} changed" in "\n".join(run_logs(state.state_details.flow_run_id))
    assert object_rows(color, year, month) == 3000


@pytest.mark.plain
def test_an_object_uploaded_without_its_row_count_is_compared_by_its_parquet_footer(server, data_dir):
    """Objects uploaded before the rows metadata existed; here on a machine whose local lake is empty."""
    color, year, month = "yellow", 2019, 9
    server.publish(color, year, month, rows=3000)
    etl_web_to_gcs(year=year, month=month, color=color)
    local = data_dir / color / "yellow_tripdata_2019-09.parquet"
    key = "data/yellow/yellow_tripdata_2019-09.parquet"
    bucket().blob(key).upload_from_filename(str(local))  # as an older version did: no metadata
    assert not bucket().get_blob(key).metadata
    local.unlink()

    server.publish(color, year, month, rows=1000)
    state = etl_web_to_gcs(year=year, month=month, color=color, return_state=True)
    assert state.is_failed()
    assert f"gs://{bucket().name}/{key}" in state.message and "less than 50% of the 3,000 loaded" in state.message
    assert object_rows(color, year, month) == 3000

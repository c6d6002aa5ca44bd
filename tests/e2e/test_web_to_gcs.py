"""etl_web_to_gcs and etl_parent_flow end to end: real Prefect server, GCS emulator, HTTP mirror."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from stack.generator import generate

from etl_web_to_gcs import etl_web_to_gcs
from helpers import MIRROR_ROWS, api, bucket, object_exists, read_object, serve_directory
from nyctaxi.dataset import ParameterError
from nyctaxi.schema import SOURCE_VERSION_KEY, arrow_schema, source_version
from parameterized_flow import etl_parent_flow

REPO = Path(__file__).resolve().parents[2]


def declared_part(schema):
    """A lake file's schema without the source version (which differs month to month)."""
    return schema.with_metadata({k: v for k, v in schema.metadata.items() if k != SOURCE_VERSION_KEY})


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.parametrize("color, year, month", [("yellow", 2021, 1), pytest.param("green", 2020, 1, marks=pytest.mark.plain),
                                                pytest.param("fhv", 2019, 1, marks=pytest.mark.plain)])
def test_month_lands_in_the_bucket_with_every_row_and_the_declared_schema(data_dir, color, year, month):
    uri = etl_web_to_gcs(year=year, month=month, color=color)

    key = f"data/{color}/{color}_tripdata_{year}-{month:02}.parquet"
    assert uri == f"gs://{os.environ['GCS_BUCKET']}/{key}"
    parquet = read_object(key)
    assert parquet.metadata.num_rows == MIRROR_ROWS
    assert source_version(parquet.schema_arrow)  # which edition of the release file it holds
    assert declared_part(parquet.schema_arrow).equals(arrow_schema(color), check_metadata=True)
    local = data_dir / color / f"{color}_tripdata_{year}-{month:02}.parquet"
    assert pq.ParquetFile(local).metadata.num_rows == MIRROR_ROWS


@pytest.mark.plain
def test_two_months_of_a_colour_have_identical_schemas(data_dir):
    # 2021-03 has the empty 2021 tail (nulls); 2019-03 has none: same schema all the same.
    etl_web_to_gcs(year=2021, month=3, color="yellow")
    etl_web_to_gcs(year=2019, month=3, color="yellow")
    a = read_object("data/yellow/yellow_tripdata_2021-03.parquet").schema_arrow
    b = read_object("data/yellow/yellow_tripdata_2019-03.parquet").schema_arrow
    assert declared_part(a).equals(declared_part(b), check_metadata=True)


@pytest.mark.plain
def test_fhv_float_and_int_spellings_write_the_same_schema(data_dir):
    etl_web_to_gcs(year=2020, month=5, color="fhv")  # location ids written as 12.0
    etl_web_to_gcs(year=2020, month=6, color="fhv")  # written as 12
    a = read_object("data/fhv/fhv_tripdata_2020-05.parquet")
    b = read_object("data/fhv/fhv_tripdata_2020-06.parquet")
    assert declared_part(a.schema_arrow).equals(declared_part(b.schema_arrow), check_metadata=True)
    assert str(a.schema_arrow.field("PUlocationID").type) == "int64"


def test_parent_flow_writes_one_object_per_month(data_dir):
    uris = etl_parent_flow(months=[4, 5], year=2020, color="green")
    assert [u.rsplit("/", 1)[1] for u in uris] == ["green_tripdata_2020-04.parquet", "green_tripdata_2020-05.parquet"]
    for month in (4, 5):
        assert read_object(f"data/green/green_tripdata_2020-{month:02}.parquet").metadata.num_rows == MIRROR_ROWS


def test_the_course_command_works_from_another_working_directory(tmp_path):
    data = tmp_path / "elsewhere-data"
    env = {**os.environ, "NYC_TLC_DATA_DIR": str(data)}
    result = subprocess.run(
        [sys.executable, str(REPO / "flows" / "etl_web_to_gcs.py"), "--year", "2021", "--month", "4"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Finished in state Completed" in result.stderr + result.stdout
    assert (data / "yellow" / "yellow_tripdata_2021-04.parquet").is_file()
    assert object_exists("data/yellow/yellow_tripdata_2021-04.parquet")
    assert not (tmp_path / "data").exists()  # nothing relative to the cwd


def test_a_month_goes_to_the_bucket_without_prefect_gcp_or_pandas_in_memory(tmp_path):
    """Loading ``zoom-gcs`` as prefect-gcp's ``GcsBucket`` imports the whole collection (its BigQuery
    client, pandas: ~53 MB), in every flow process and Dask worker that uploads a month."""
    code = ("import sys; from etl_web_to_gcs import etl_web_to_gcs; etl_web_to_gcs(year=2021, month=4); "
            "print(sorted(m for m in ('prefect_gcp', 'pandas', 'google.cloud.bigquery') if m in sys.modules))")
    env = {**os.environ, "NYC_TLC_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO / "flows", env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "[]"


@pytest.mark.plain
@pytest.mark.parametrize("kwargs, says", [
    ({"color": "purple"}, "yellow, green, fhv"),
    ({"month": 0}, "from 1 to 12"),
    ({"month": 13}, "from 1 to 12"),
    ({"year": 1999}, "from 2019 to 2021"),
])
def test_bad_parameters_fail_before_anything_is_written(data_dir, kwargs, says):
    before = {b.name for b in bucket().list_blobs()}
    with pytest.raises(ParameterError, match=says):
        etl_web_to_gcs(**{"year": 2021, "month": 1, "color": "yellow", **kwargs})
    assert files_under(data_dir) == []
    assert {b.name for b in bucket().list_blobs()} == before


@pytest.mark.plain
@pytest.mark.parametrize("months, says", [([], "months is empty"), ([6, 13], "month 13")])
def test_parent_flow_checks_every_month_before_the_first_runs(data_dir, months, says):
    with pytest.raises(ParameterError, match=says):
        etl_parent_flow(months=months, year=2020, color="yellow")
    assert files_under(data_dir) == []
    assert not object_exists("data/yellow/yellow_tripdata_2020-06.parquet")


def test_non_integer_month_is_rejected_by_prefect_validation(data_dir):
    with pytest.raises(Exception, match="month"):
        etl_web_to_gcs(year=2021, month="January", color="yellow")
    assert files_under(data_dir) == []


@pytest.mark.plain
def test_any_server_with_the_release_layout_is_read_through_NYC_TLC_BASE_URL(data_dir, tmp_path, monkeypatch):
    mirror = tmp_path / "other-mirror"
    generate("green", 2021, 2, 1234, mirror / "green" / "green_tripdata_2021-02.csv.gz")
    with serve_directory(mirror) as base:
        monkeypatch.setenv("NYC_TLC_BASE_URL", base)
        etl_web_to_gcs(year=2021, month=2, color="green")
    assert read_object("data/green/green_tripdata_2021-02.parquet").metadata.num_rows == 1234


@pytest.mark.plain
def test_a_month_the_server_does_not_publish_fails_and_writes_nothing(data_dir):
    with pytest.raises(Exception, match="yellow_tripdata_2021-08.csv.gz is not published at http"):
        etl_web_to_gcs(year=2021, month=8, color="yellow")
    assert files_under(data_dir) == []
    assert not object_exists("data/yellow/yellow_tripdata_2021-08.parquet")


async def _artifact(key: str):
    async with get_client() as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
        return found


def test_each_run_leaves_a_readable_summary(data_dir):
    import asyncio

    etl_web_to_gcs(year=2020, month=7, color="yellow")
    artifacts = asyncio.run(_artifact("lake-yellow-2020-07"))
    assert artifacts, "no summary artifact"
    text = artifacts[0].data
    assert f"| rows read | {MIRROR_ROWS:,} |" in text and f"| rows written | {MIRROR_ROWS:,} |" in text
    assert "data/yellow/yellow_tripdata_2020-07.parquet" in text
    assert "| source | http" in text


def test_a_cache_hit_never_points_at_a_missing_download(data_dir):
    from nyctaxi import lake
    from nyctaxi.dataset import TaxiMonth

    url = TaxiMonth("green", 2019, 6).url()
    for _ in range(3):  # the third run is served from the cache
        etl_web_to_gcs(year=2019, month=6, color="green")
    raw = lake.raw_path(url)
    assert raw.is_file()
    raw.unlink()
    (data_dir / "green" / "green_tripdata_2019-06.parquet").unlink()
    etl_web_to_gcs(year=2019, month=6, color="green")  # must download again, not return the lost path
    assert raw.is_file()
    assert pq.ParquetFile(data_dir / "green" / "green_tripdata_2019-06.parquet").metadata.num_rows == MIRROR_ROWS


def test_parent_flow_runs_the_months_at_the_same_time_when_asked(data_dir):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    state = etl_parent_flow(months=[3, 4, 5], year=2021, color="green", concurrent=True, return_state=True)
    uris = state.result()
    keys = [f"data/green/green_tripdata_2021-{m:02}.parquet" for m in (3, 4, 5)]
    assert uris == [f"gs://{os.environ['GCS_BUCKET']}/{key}" for key in keys]
    for key in keys:
        assert read_object(key).metadata.num_rows == MIRROR_ROWS

    async def task_runs(client):
        return await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    spans = sorted((t.start_time, t.end_time) for t in api(task_runs))
    assert len(spans) == 3
    assert spans[1][0] < spans[0][1], f"the months ran one after another: {spans}"


@pytest.mark.plain
def test_uploads_log_how_far_they_are(data_dir, monkeypatch):
    """A long transfer is never silent: the bucket's upload and write_bq's load job log what they
    have sent every PROGRESS_EVERY_S (30 s; here every read)."""
    import re

    from etl_gcs_to_bq import etl_gcs_to_bq
    from helpers import run_logs
    from nyctaxi import gcs

    monkeypatch.setattr(gcs, "PROGRESS_EVERY_S", 0.0)
    sent = re.compile(r"(uploading data/green/green_tripdata_2019-07\.parquet|load job): [\d,]+ of [\d,]+ MB sent "
                      r"after \d+ s")
    for state in (etl_web_to_gcs(year=2019, month=7, color="green", return_state=True),
                  etl_gcs_to_bq(year=2019, month=7, color="green", return_state=True)):
        assert state.is_completed(), state
        assert any(sent.fullmatch(line) for line in run_logs(state.state_details.flow_run_id)), state.name

"""nyctaxi.gcs against the GCS emulator, with no Prefect: objects with their rows and edition, bounded
chunks, row counts from metadata or footer, downloads, version listing, and an endpoint out of reach."""
from __future__ import annotations

import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from stack.services import free_port

from helpers import bucket
from nyctaxi import gcs
from nyctaxi.failures import ServiceUnreachableError, reaching

pytestmark = pytest.mark.plain


@pytest.fixture
def lake_file(tmp_path):
    path = tmp_path / "yellow_tripdata_2019-11.parquet"
    # Rows of random bytes, so that the file takes several upload chunks.
    payload = pa.FixedSizeBinaryArray.from_buffers(pa.binary(512), 40_000, [None, pa.py_buffer(os.urandom(512 * 40_000))])
    table = pa.table({"n": pa.array(range(40_000)), "payload": payload})
    pq.write_table(table, path, row_group_size=5_000, compression="none", use_dictionary=False)
    assert path.stat().st_size > 2 * gcs.UPLOAD_CHUNK_BYTES
    return path


def test_an_upload_in_chunks_carries_its_rows_and_edition_and_comes_back_whole(lake_file, tmp_path):
    name = "test-gcs/yellow/yellow_tripdata_2019-11.parquet"
    gcs.upload(bucket(), name, lake_file, 40_000, "abc123")
    blob = gcs.get_blob(bucket(), name)
    assert blob.metadata == {gcs.ROWS_METADATA: "40000", gcs.VERSION_METADATA: "abc123"}
    assert gcs.object_rows(blob) == 40_000
    back = gcs.download(blob, tmp_path / "back.parquet")
    assert back.read_bytes() == lake_file.read_bytes()
    assert dict(gcs.versions(bucket(), "test-gcs/yellow/")) == {name: "abc123"}
    assert gcs.get_blob(bucket(), "test-gcs/yellow/absent.parquet") is None


def test_an_object_without_its_rows_is_counted_from_its_parquet_footer(lake_file):
    name = "test-gcs/green/green_tripdata_2019-11.parquet"
    bucket().blob(name).upload_from_filename(str(lake_file))  # as older versions uploaded: no metadata
    blob = gcs.get_blob(bucket(), name)
    assert not blob.metadata
    assert gcs.object_rows(blob) == 40_000


def test_an_endpoint_that_refuses_connections_fails_at_once_naming_it(monkeypatch, lake_file):
    from google.cloud import storage

    nobody = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", nobody)
    unreachable = storage.Client(project="p").bucket("b")
    started = time.monotonic()
    with pytest.raises(ServiceUnreachableError) as error, reaching(gcs.SERVICE, gcs.address(), "check the block"):
        gcs.upload(unreachable, "x.parquet", lake_file, 1, None)
    assert time.monotonic() - started < 10  # the client's own retry would try for two minutes
    assert str(error.value).startswith(f"cannot reach the GCS bucket at {nobody} (connection refused): "
                                       "start the local stack")

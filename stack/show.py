"""Print what landed where: the lake objects in the ``zoom-gcs`` bucket with their row counts."""
from __future__ import annotations

import io
import os

import pyarrow.parquet as pq
from prefect_gcp.cloud_storage import GcsBucket


def main() -> None:
    bucket = GcsBucket.load("zoom-gcs")
    blobs = [b for b in bucket.list_blobs("data") if b.name.endswith(".parquet")]
    where = os.environ.get("STORAGE_EMULATOR_HOST", "Google Cloud Storage")
    print(f"\nObjects in gs://{bucket.bucket} ({where}):")
    for blob in sorted(blobs, key=lambda b: b.name):
        rows = pq.ParquetFile(io.BytesIO(blob.download_as_bytes())).metadata.num_rows
        print(f"  gs://{bucket.bucket}/{blob.name}  {rows:>12,} rows  {blob.size / 1e6:8.1f} MB")
    if not blobs:
        print("  (none)")
    api = os.environ.get("PREFECT_API_URL", "")
    print(f"\nPrefect UI: {api.removesuffix('/api')}  (flow runs, logs, and each month's summary under Artifacts)")


if __name__ == "__main__":
    main()

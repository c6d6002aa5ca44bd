"""Print what landed where: row counts per month in the lake bucket, BigQuery and PostgreSQL."""
from __future__ import annotations

import io
import os

import pyarrow.parquet as pq
from prefect_gcp.cloud_storage import GcsBucket
from prefect_sqlalchemy import SqlAlchemyConnector
from sqlalchemy import text


def lake() -> None:
    bucket = GcsBucket.load("zoom-gcs")
    blobs = sorted((b for b in bucket.list_blobs("data") if b.name.endswith(".parquet")), key=lambda b: b.name)
    print(f"\nLake: gs://{bucket.bucket} ({os.environ.get('STORAGE_EMULATOR_HOST', 'Google Cloud Storage')})")
    for blob in blobs:
        rows = pq.ParquetFile(io.BytesIO(blob.download_as_bytes())).metadata.num_rows
        print(f"  {blob.name:<50} {rows:>12,} rows")
    if not blobs:
        print("  (empty)")


def bigquery() -> None:
    from prefect_gcp import GcpCredentials

    client = GcpCredentials.load("zoom-gcp-creds").get_bigquery_client()
    where = os.environ.get("BIGQUERY_EMULATOR_HOST", "BigQuery")
    print(f"\nBigQuery: {client.project}.dezoomcamp ({where})")
    tables = sorted(t.table_id for t in client.list_tables("dezoomcamp") if t.table_id.endswith("_tripdata"))
    for table in tables:
        sql = f"SELECT source_file, COUNT(*) FROM `{client.project}.dezoomcamp.{table}` GROUP BY 1 ORDER BY 1"
        for source, rows in client.query(sql).result():
            print(f"  {table + ' <- ' + source:<50} {rows:>12,} rows")
    if not tables:
        print("  (no tables)")


def postgres() -> None:
    connector = SqlAlchemyConnector.load("postgres-connector")
    with connector.get_connection(begin=False) as conn:
        url = conn.engine.url
        print(f"\nPostgreSQL: {url.host}:{url.port}/{url.database}")
        tables = conn.execute(text(
            "SELECT relname FROM pg_class WHERE relkind = 'p' AND relname LIKE '%\\_tripdata' ORDER BY 1"
        )).scalars().all()
        for table in tables:
            counts = text(f'SELECT source_file, count(*) FROM "{table}" GROUP BY 1 ORDER BY 1')
            for source, rows in conn.execute(counts):
                print(f"  {table + ' <- ' + source:<50} {rows:>12,} rows")
        if not tables:
            print("  (no tables)")


def main() -> None:
    lake()
    bigquery()
    postgres()
    api = os.environ.get("PREFECT_API_URL", "")
    print(f"\nPrefect UI: {api.removesuffix('/api')}  (flow runs, logs, and each month's summary under Artifacts)")


if __name__ == "__main__":
    main()

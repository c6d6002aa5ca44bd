"""Print what landed where: row counts per month in the lake bucket, BigQuery and PostgreSQL."""
from __future__ import annotations

from sqlalchemy import text

from nyctaxi import bigquery as warehouse
from nyctaxi import gcs
from nyctaxi.resources import (
    DATASET,
    LAKE_PREFIX,
    bigquery_client,
    bucket_key,
    gcs_bucket,
    lake_bucket,
    postgres_connector,
    setting,
)


def lake() -> None:
    block = gcs_bucket()
    bucket = lake_bucket(block)
    prefix = bucket_key(block, LAKE_PREFIX)
    blobs = sorted((b for b in bucket.list_blobs(prefix=prefix) if b.name.endswith(".parquet")), key=lambda b: b.name)
    print(f"\nLake: gs://{block.bucket} ({gcs.address()})")
    for blob in blobs:
        print(f"  {blob.name:<50} {gcs.object_rows(blob):>12,} rows")
    if not blobs:
        print("  (empty)")


def bigquery() -> None:
    client = bigquery_client()
    print(f"\nBigQuery: {client.project}.{DATASET} ({warehouse.address()})")
    tables = sorted(t.table_id for t in client.list_tables(DATASET) if t.table_id.endswith("_tripdata"))
    for table in tables:
        sql = f"SELECT source_file, COUNT(*) FROM `{client.project}.{DATASET}.{table}` GROUP BY 1 ORDER BY 1"
        for source, rows in client.query(sql).result():
            print(f"  {table + ' <- ' + source:<50} {rows:>12,} rows")
    if not tables:
        print("  (no tables)")


def postgres() -> None:
    connector = postgres_connector()
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
    api = setting("PREFECT_API_URL") or ""
    print(f"\nPrefect UI: {api.removesuffix('/api')}  (flow runs, logs, and under Artifacts the data: see README)")


if __name__ == "__main__":
    main()

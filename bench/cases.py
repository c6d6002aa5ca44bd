"""One measured case of the benchmark, run in a process of its own (so its peak RSS is its own).

    python bench/cases.py CASE KEY=VALUE ...

Cases: the course's method, the project's, and the machine's limit for each step.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# --- csv.gz -> local parquet ------------------------------------------------------------

def lake_course(url: str, out: str, **_) -> None:
    """The course's fetch/clean/write_local: whole-file read, to_datetime, gzip parquet."""
    import pandas as pd

    df = pd.read_csv(url)
    df["tpep_pickup_datetime"] = pd.to_datetime(df["tpep_pickup_datetime"])
    df["tpep_dropoff_datetime"] = pd.to_datetime(df["tpep_dropoff_datetime"])
    df.to_parquet(out, compression="gzip")


def lake_project(url: str, out: str, color: str = "yellow", **_) -> None:
    """The plain functions behind fetch -> clean -> write_local."""
    from nyctaxi.source import download

    raw = download(url, Path(out).with_suffix(".csv.gz"))
    lake_convert(str(raw), out, color)


def lake_convert(src: str, out: str, color: str = "yellow", **_) -> None:
    """clean -> write_local alone, from a file already downloaded: the same work as raw pyarrow."""
    from nyctaxi import lake
    from nyctaxi.convert import csv_gz_to_parquet

    staged = lake.staging_path("bench", Path(out).parent)
    csv_gz_to_parquet(Path(src), staged, color)
    lake.publish(staged, Path(out))


def lake_months(color: str, year: str, months: str, out: str, **_) -> None:
    """lake_project and the upload for several months one after another: the parent flow's work
    without Prefect."""
    from google.cloud import storage

    from nyctaxi import lake
    from nyctaxi.dataset import TaxiMonth

    bucket = storage.Client(project=os.environ["GOOGLE_CLOUD_PROJECT"]).bucket(os.environ["GCS_BUCKET"])
    for month in months.split(","):
        taxi = TaxiMonth(color, int(year), int(month))
        path = Path(out) / f"{taxi.dataset_file}.parquet"
        lake_project(taxi.url(), str(path), color)
        bucket.blob(lake.object_key(color, taxi.dataset_file)).upload_from_filename(str(path))


def lake_raw(src: str, out: str, **_) -> None:
    """The machine's limit: pyarrow reads the whole file and writes it."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    pq.write_table(pacsv.read_csv(src), out)


def lake_raw_declared(src: str, out: str, color: str = "yellow", **_) -> None:
    """pyarrow with the declared column types: reads the whole file, writes it (snappy)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from nyctaxi.schema import ARROW_TYPES, COLUMNS

    types = {name: ARROW_TYPES[kind] for name, kind in COLUMNS[color]}
    pq.write_table(pacsv.read_csv(src, convert_options=pacsv.ConvertOptions(column_types=types)), out,
                   compression="snappy")


def lake_polars(src: str, out: str, color: str = "yellow", **_) -> None:
    """polars, streaming: scan_csv with the declared schema -> sink_parquet (snappy)."""
    import polars as pl

    from nyctaxi.schema import COLUMNS

    types = {"int": pl.Int64, "float": pl.Float64, "timestamp": pl.Datetime("us"), "string": pl.String}
    pl.scan_csv(src, schema={name: types[kind] for name, kind in COLUMNS[color]}).sink_parquet(
        out, compression="snappy")


def lake_duckdb(src: str, out: str, color: str = "yellow", **_) -> None:
    """DuckDB: read_csv with the declared types -> COPY TO parquet (snappy), its default threads."""
    import duckdb

    from nyctaxi.schema import COLUMNS

    types = {"int": "BIGINT", "float": "DOUBLE", "timestamp": "TIMESTAMP", "string": "VARCHAR"}
    columns = "{" + ", ".join(f"'{name}': '{types[kind]}'" for name, kind in COLUMNS[color]) + "}"
    duckdb.connect().execute(f"COPY (SELECT * FROM read_csv('{src}', header = true, columns = {columns})) "
                             f"TO '{out}' (FORMAT parquet, COMPRESSION snappy)")


def raw_backfill(months: str, release: str, out: str, parallel: str = "1", **_) -> None:
    """The whole backfill with raw tools and no Prefect: for each month, pyarrow's conversion (the
    declared types, snappy), the upload, and psql's \\copy of the csv.gz into a plain table
    (``raw_{color}``, made beforehand), ``parallel`` months at a time."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    from google.cloud import storage

    from nyctaxi import lake
    from nyctaxi.dataset import TaxiMonth

    bucket = storage.Client(project=os.environ["GOOGLE_CLOUD_PROJECT"]).bucket(os.environ["GCS_BUCKET"])
    psql, env = psql_command()

    def one(month: str) -> None:
        taxi = TaxiMonth.of(month)
        src = Path(release) / taxi.color / taxi.source_file
        parquet = Path(out) / f"{taxi.dataset_file}.parquet"
        lake_raw_declared(str(src), str(parquet), taxi.color)
        bucket.blob(lake.object_key(taxi.color, taxi.dataset_file)).upload_from_filename(str(parquet))
        subprocess.run([*psql, f"\\copy raw_{taxi.color} FROM PROGRAM 'gzip -dc {src}' WITH (FORMAT csv, HEADER)"],
                       env=env, check=True)

    Path(out).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(int(parallel)) as pool:
        list(pool.map(one, months.split(",")))


def psql_command() -> tuple[list[str], dict[str, str]]:
    """psql as the stack's superuser (CHECKPOINT needs it; the flows' role cannot): its command,
    ending in ``-c``, and its environment."""
    from stack.pg_cluster import bin_dir

    env = {**os.environ, "PGPASSWORD": Path(os.environ["POSTGRES_ADMIN_PASSWORD_FILE"]).read_text().strip()}
    return [str(bin_dir() / "psql"), "-h", "127.0.0.1", "-p", os.environ["POSTGRES_PORT"], "-U",
            os.environ["POSTGRES_ADMIN_USER"], "-d", os.environ["POSTGRES_DB"], "-q", "-c"], env


def to_csv(parquet: str, csv: str, **_) -> None:
    """The month as a header-less CSV, for psql \\copy (a set-up step, not measured)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    pacsv.write_csv(pq.read_table(parquet), csv, pacsv.WriteOptions(include_header=False))


# --- month -> PostgreSQL ----------------------------------------------------------------

def _engine():
    from sqlalchemy import create_engine

    password = Path(os.environ["POSTGRES_PASSWORD_FILE"]).read_text().strip()
    return create_engine(f"postgresql+psycopg2://{os.environ['POSTGRES_USER']}:{password}@127.0.0.1:"
                         f"{os.environ['POSTGRES_PORT']}/{os.environ['POSTGRES_DB']}")


def pg_course(src: str, table: str, **_) -> None:
    """The course's ingestion: the whole month with pandas to_sql (every row, not just 100,000)."""
    import pandas as pd

    df = pd.read_csv(src, parse_dates=["tpep_pickup_datetime", "tpep_dropoff_datetime"])
    engine = _engine()
    df.head(0).to_sql(name=table, con=engine, if_exists="replace")
    df.to_sql(name=table, con=engine, if_exists="append", chunksize=100_000)


def pg_project(parquet: str, table: str, **_) -> None:
    """load_postgres' COPY of the cleaned month."""
    from nyctaxi import postgres

    conn = _engine().raw_connection()
    try:
        postgres.replace_month(conn.driver_connection, table, "yellow", Path(parquet), "yellow_tripdata_2021-01.csv.gz")
    finally:
        conn.close()


# --- month -> BigQuery (emulator) -------------------------------------------------------

def _bq():
    from nyctaxi.resources import gcp_credentials

    creds = gcp_credentials()
    return creds, creds.get_bigquery_client()


def bq_course(parquet: str, table: str, **_) -> None:
    """The course's write_bq: the whole month as one DataFrame through pandas-gbq."""
    import pandas as pd

    from nyctaxi.resources import DATASET

    creds, client = _bq()
    pd.read_parquet(parquet).to_gbq(f"{DATASET}.{table}", project_id=client.project,
                                    credentials=creds.get_credentials_from_service_account(),
                                    if_exists="replace", progress_bar=False)


def bq_project(parquet: str, **_) -> None:
    """write_bq: the parquet file as one load job (8 MiB chunks) into staging, then the transactional swap."""
    from nyctaxi import bigquery

    _, client = _bq()
    bigquery.replace_month(client, "yellow", "yellow_tripdata_2021-01.csv.gz",
                           lambda staging: bigquery.stage_with_load_file(client, Path(parquet), staging, "yellow"),
                           allow_shrink=True)


def bq_project_pandas_gbq(parquet: str, **_) -> None:
    """write_bq(pandas_gbq=True): pandas-gbq a few row groups at a time into staging, then the swap."""
    from nyctaxi import bigquery

    _, client = _bq()
    bigquery.replace_month(client, "yellow", "yellow_tripdata_2021-01.csv.gz",
                           lambda staging: bigquery.stage_with_pandas_gbq(Path(parquet), staging, client),
                           allow_shrink=True)


def bq_load_job(uri: str, **_) -> None:
    """load_bq_from_gcs: a load job from the gs:// object into staging, then the swap."""
    from nyctaxi import bigquery

    _, client = _bq()
    bigquery.replace_month(client, "yellow", "yellow_tripdata_2021-01.csv.gz",
                           lambda staging: bigquery.stage_with_load_job(client, uri, staging, "yellow"),
                           allow_shrink=True)


CASES = {name: fn for name, fn in globals().items() if callable(fn) and fn.__module__ == __name__
         and not name.startswith("_")}

if __name__ == "__main__":
    case, *pairs = sys.argv[1:]
    CASES[case](**dict(pair.split("=", 1) for pair in pairs))

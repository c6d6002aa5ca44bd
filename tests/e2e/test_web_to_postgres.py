"""etl_web_to_postgres end to end: the stack's real PostgreSQL, loaded by COPY, safe to re-run."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from stack.generator import generate

from etl_web_to_postgres import etl_web_to_postgres
from helpers import (
    MIRROR_ROWS,
    kill_flow_when,
    postgres_connection,
    postgres_counts,
    run_flows_at_once,
    serve_directory,
    staged_files,
    task_runs_of,
)
from nyctaxi.convert import csv_gz_to_parquet
from nyctaxi.dataset import ParameterError
from nyctaxi.postgres import partition_name, replace_month
from nyctaxi.schema import COLUMNS, SchemaError, arrow_schema

REPO = Path(__file__).resolve().parents[2]
PG_TYPES = {"int": "bigint", "float": "double precision", "timestamp": "timestamp without time zone",
            "string": "text"}


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("NYC_TLC_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def column_types(table: str) -> dict[str, str]:
    with postgres_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = %s ORDER BY ordinal_position", (table,))
        return dict(cur.fetchall())


@pytest.mark.parametrize("color, year, month", [("yellow", 2021, 1), pytest.param("green", 2020, 1, marks=pytest.mark.plain),
                                                pytest.param("fhv", 2019, 1, marks=pytest.mark.plain)])
def test_every_row_lands_with_the_declared_types_and_its_source(color, year, month):
    table = f"t_{color}_types"
    assert etl_web_to_postgres(year=year, month=month, color=color, table=table) == MIRROR_ROWS
    assert postgres_counts(table) == {f"{color}_tripdata_{year}-{month:02}.csv.gz": MIRROR_ROWS}
    expected = {name: PG_TYPES[kind] for name, kind in COLUMNS[color]} | {"source_file": "text"}
    assert column_types(table) == expected


@pytest.mark.plain
def test_default_table_is_one_per_colour():
    etl_web_to_postgres(year=2020, month=2, color="green")
    assert postgres_counts("green_tripdata")["green_tripdata_2020-02.csv.gz"] == MIRROR_ROWS


@pytest.mark.plain
def test_reloading_a_month_three_times_keeps_one_copy_and_other_months_untouched():
    table = "t_reload"
    etl_web_to_postgres(year=2021, month=2, color="yellow", table=table)
    for _ in range(3):
        etl_web_to_postgres(year=2021, month=3, color="yellow", table=table)
    assert postgres_counts(table) == {"yellow_tripdata_2021-02.csv.gz": MIRROR_ROWS,
                                      "yellow_tripdata_2021-03.csv.gz": MIRROR_ROWS}


@pytest.mark.plain
def test_the_same_month_loaded_twice_at_once_leaves_one_copy():
    table = "t_concurrent"
    etl_web_to_postgres(year=2021, month=6, color="green", table=table)
    run_flows_at_once("etl_web_to_postgres.py", ["--color", "green", "--month", "7", "--table", table])
    assert postgres_counts(table) == {"green_tripdata_2021-06.csv.gz": MIRROR_ROWS,
                                      "green_tripdata_2021-07.csv.gz": MIRROR_ROWS}


@pytest.mark.plain
def test_nulls_stay_nulls_and_values_survive_the_copy():
    table = "t_values"
    etl_web_to_postgres(year=2021, month=4, color="yellow", table=table)
    with postgres_connection() as conn, conn.cursor() as cur:
        cur.execute(f'SELECT count(*) FILTER (WHERE "VendorID" IS NULL), count(*) FILTER (WHERE store_and_fwd_flag = \'\'),'
                    f' min("PULocationID"), max("PULocationID") FROM {table}')
        vendor_nulls, empty_flags, lo, hi = cur.fetchone()
    assert vendor_nulls == int(MIRROR_ROWS * 0.07) or abs(vendor_nulls - MIRROR_ROWS * 0.07) <= 1  # the 2021 tail
    assert empty_flags == 0  # empty fields are NULL, not ''
    assert 1 <= lo and hi <= 265


# Values at the edges of each kind, for rows appended to a generated month.
EDGES = {
    "int": [None, -1, 2**62, 0],
    "float": [math.nan, -0.5, 1e300, None],
    "timestamp": [None, datetime(1999, 12, 31, 23, 59, 59, 999999), datetime(1970, 1, 1), datetime(2038, 1, 19, 3, 14, 8)],
    "string": [None, "", "é,\"quoted\"\nline", "N"],
}


def _comparable(row: tuple) -> tuple:
    """A row with NaN and None made comparable and sortable."""
    return tuple(("nan",) if isinstance(v, float) and math.isnan(v) else ("null",) if v is None else ("v", v)
                 for v in row)


@pytest.mark.plain
@pytest.mark.parametrize("color, year, month", [("yellow", 2021, 3), ("fhv", 2019, 2)])
def test_every_value_of_the_lake_file_lands_as_it_is(tmp_path, color, year, month):
    """The binary COPY: each value, null, NaN, text with quotes and line breaks, timestamps before
    2000, lands in PostgreSQL exactly as the lake file holds it, and each row carries its source."""
    source_file = f"{color}_tripdata_{year}-{month:02}.csv.gz"
    csv_gz_to_parquet(generate(color, year, month, 20_000, tmp_path / source_file), tmp_path / "m.parquet", color)
    schema = arrow_schema(color)
    edges = pa.table({name: pa.array(EDGES[kind], schema.field(name).type) for name, kind in COLUMNS[color]},
                     schema=schema)
    lake = pa.concat_tables([pq.read_table(tmp_path / "m.parquet"), edges])
    pq.write_table(lake, tmp_path / "lake.parquet")

    table = f"t_exact_{color}"
    with postgres_connection() as conn:
        conn.autocommit = False  # replace_month makes its own transactions
        assert replace_month(conn, table, color, tmp_path / "lake.parquet", source_file) == lake.num_rows
    names = ", ".join(f'"{name}"' for name, _ in COLUMNS[color])
    with postgres_connection() as conn, conn.cursor() as cur:
        cur.execute(f'SELECT {names}, source_file FROM "{table}"')
        loaded = cur.fetchall()
    assert {row[-1] for row in loaded} == {source_file}
    expected = [tuple(row.values()) for row in lake.to_pylist()]
    assert sorted(map(_comparable, (row[:-1] for row in loaded))) == sorted(map(_comparable, expected))


@pytest.mark.plain
def test_a_lake_file_with_other_types_is_refused_before_the_copy(tmp_path):
    table = "t_other_types"
    src = generate("green", 2020, 1, 1000, tmp_path / "m.csv.gz")
    csv_gz_to_parquet(src, tmp_path / "m.parquet", "green")
    loose = pq.read_table(tmp_path / "m.parquet")
    loose = loose.set_column(0, "VendorID", loose.column("VendorID").cast(pa.int32()))
    pq.write_table(loose, tmp_path / "loose.parquet")
    with postgres_connection() as conn:
        conn.autocommit = False
        with pytest.raises(SchemaError, match="loose.parquet does not hold the declared green columns and types"):
            replace_month(conn, table, "green", tmp_path / "loose.parquet", "green_tripdata_2020-01.csv.gz")
    with postgres_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (table,))
        assert cur.fetchone()[0] is None  # refused before anything was made


@pytest.mark.plain
def test_a_bad_table_name_is_refused_before_any_download():
    with pytest.raises(ParameterError, match="not a plain table name"):
        etl_web_to_postgres(year=2021, month=1, color="yellow", table="trips; drop table x")


@pytest.mark.plain
def test_a_table_made_by_another_tool_is_reported_and_the_failed_load_leaves_no_staged_file(data_dir):
    with postgres_connection() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS t_foreign; CREATE TABLE t_foreign (a int)")
    with pytest.raises(SchemaError, match="not partitioned by source_file"):
        etl_web_to_postgres(year=2021, month=1, color="yellow", table="t_foreign")
    assert staged_files(data_dir) == []


def lake_file(tmp_path: Path, color: str, year: int, month: int, rows: int = 1000) -> Path:
    """A generated month converted to a lake file."""
    dest = tmp_path / f"{color}-{year}-{month:02}.parquet"
    csv_gz_to_parquet(generate(color, year, month, rows, dest.with_suffix(".csv.gz")), dest, color)
    return dest


def partitions(table: str) -> list[str]:
    with postgres_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = to_regclass(%s) ORDER BY 1",
                    (table,))
        return [name for (name,) in cur.fetchall()]


@pytest.mark.plain
def test_another_colour_s_table_is_refused_at_once_in_one_line_and_left_as_it_was(tmp_path):
    table = "t_yellow_only"
    with postgres_connection() as conn:
        conn.autocommit = False
        replace_month(conn, table, "yellow", lake_file(tmp_path, "yellow", 2021, 1), "yellow_tripdata_2021-01.csv.gz")
    before = partitions(table)
    state = etl_web_to_postgres(year=2020, month=1, color="green", table=table, return_state=True)
    assert state.is_failed()
    assert state.message == (f"SchemaError: table {table} holds yellow trips, not green: load green into "
                             "green_tripdata (the default) or another new table")
    [load] = [run for run in task_runs_of(state) if run.name.startswith("load_postgres")]
    assert load.run_count == 1  # not retried: the next attempt would meet it again
    assert partitions(table) == before and postgres_counts(table) == {"yellow_tripdata_2021-01.csv.gz": 1000}


@pytest.mark.plain
def test_a_failed_first_load_of_a_month_leaves_no_empty_partition(tmp_path):
    """The COPY fails (a check the table's owner added refuses its rows): the month's partition,
    made by this load, is dropped again; the month loaded before is untouched."""
    import psycopg2

    table = "t_failed_copy"
    with postgres_connection() as conn:
        conn.autocommit = False
        replace_month(conn, table, "yellow", lake_file(tmp_path, "yellow", 2021, 1), "yellow_tripdata_2021-01.csv.gz")
        with conn.cursor() as cur:
            cur.execute(f"ALTER TABLE {table} ADD CONSTRAINT no_february "
                        "CHECK (source_file <> 'yellow_tripdata_2021-02.csv.gz')")
        conn.commit()
        with pytest.raises(psycopg2.errors.CheckViolation):
            replace_month(conn, table, "yellow", lake_file(tmp_path, "yellow", 2021, 2),
                          "yellow_tripdata_2021-02.csv.gz")
    assert partitions(table) == [partition_name(table, "yellow_tripdata_2021-01.csv.gz")]
    assert postgres_counts(table) == {"yellow_tripdata_2021-01.csv.gz": 1000}


@pytest.mark.plain
def test_a_load_killed_mid_copy_leaves_the_previous_month_intact_and_the_next_run_removes_its_files(tmp_path, data_dir):
    table = "t_killed"
    small, big = tmp_path / "small", tmp_path / "big"
    generate("yellow", 2021, 5, 1000, small / "yellow" / "yellow_tripdata_2021-05.csv.gz")
    generate("yellow", 2021, 5, 600_000, big / "yellow" / "yellow_tripdata_2021-05.csv.gz")
    with serve_directory(small) as base:
        env = {**os.environ, "NYC_TLC_BASE_URL": base}
        subprocess.run([sys.executable, str(REPO / "flows" / "etl_web_to_postgres.py"), "--month", "5",
                        "--table", table], env=env, check=True, capture_output=True, timeout=300)
    assert postgres_counts(table) == {"yellow_tripdata_2021-05.csv.gz": 1000}

    with serve_directory(big) as base:
        kill_flow_when("etl_web_to_postgres.py", ["--month", "5", "--table", table], ready=lambda: _copies() > 0,
                       env={**os.environ, "NYC_TLC_BASE_URL": base})
    wait_until_no_copy()
    assert postgres_counts(table) == {"yellow_tripdata_2021-05.csv.gz": 1000}
    assert [p.name for p in staged_files(data_dir)] != []  # the killed run's staged month

    etl_web_to_postgres(year=2021, month=5, color="yellow", table=table)  # the next run completes
    assert postgres_counts(table) == {"yellow_tripdata_2021-05.csv.gz": MIRROR_ROWS}
    assert staged_files(data_dir) == []


def _copies() -> int:
    with postgres_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %%' AND state = 'active'")
        return cur.fetchone()[0]


def wait_until_no_copy(timeout_s: float = 30) -> None:
    # The server notices the dead client and aborts its transaction.
    deadline = time.monotonic() + timeout_s
    while _copies() and time.monotonic() < deadline:
        time.sleep(0.1)

"""Every SQL text the project sends to BigQuery, analysed offline by Google's own analyzer.

``zetasql`` (PyPI) is ZetaSQL, the analyzer of BigQuery's GoogleSQL, built to WebAssembly. The texts
are captured from the product's functions through a stand-in client that records each ``query``,
for every colour; the catalog holds the tables as the product creates them (``ensure_table``,
``create_staging``), each named by its full ``project.dataset.table`` path (ZetaSQL reads a
backquoted path as one name). Each text is parsed whole as a script, then analysed statement by
statement: syntax and reserved words, every table and column name, each function's signature, and
whether each value may go into its column (no TIMESTAMP into DATETIME). What ZetaSQL does not know
of BigQuery (transaction concurrency, quotas, what the tables hold) is not checked here.

The lake file's timestamps must be what BigQuery loads into DATETIME: parquet
``TIMESTAMP(isAdjustedToUTC=false, MICROS)``, never INT96, nanoseconds or UTC-adjusted.

The first run on a machine compiles the analyzer (28 MB of WebAssembly: about a minute on two
cores); wasmtime's cache (~/.cache/wasmtime) makes later runs start in a second.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import wasmtime
from google.api_core.exceptions import NotFound
from google.cloud import bigquery as bq
from stack import show
from stack.generator import generate
from zetasql.api import Analyzer, CatalogBuilder, Parser, TableBuilder
from zetasql.core import ServerError, ZetaSqlLocalService, wasm_client
from zetasql.types import (
    AnalyzerOptions,
    ErrorMessageMode,
    LanguageFeature,
    LanguageOptions,
    ParseResumeLocation,
    ProductMode,
    SimpleCatalog,
    TypeKind,
    ZetaSQLBuiltinFunctionOptions,
)

from nyctaxi import bigquery
from nyctaxi.convert import csv_gz_to_parquet, fill_missing
from nyctaxi.schema import COLORS, COLUMNS, LINEAGE_COLUMN, SchemaError

PROJECT = "dezoomcamp-local"  # the local stack's: a dash, as many real projects have
VERSION = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
# GoogleSQL as BigQuery speaks it: external types (FLOAT64, no INT32), QUALIFY reserved, UTC. Only
# the features the project's SQL needs, each one BigQuery has: a text that needs another fails here
# until that feature is added (LanguageFeature names them).
LANGUAGE = LanguageOptions(product_mode=ProductMode.PRODUCT_EXTERNAL, reserved_keywords=["QUALIFY"],
                           enabled_language_features=[LanguageFeature.FEATURE_V_1_2_CIVIL_TIME])
OPTIONS = AnalyzerOptions(language_options=LANGUAGE, default_timezone="UTC",
                          error_message_mode=ErrorMessageMode.ERROR_MESSAGE_ONE_LINE)
TYPES = {"INT64": TypeKind.TYPE_INT64, "FLOAT64": TypeKind.TYPE_DOUBLE, "STRING": TypeKind.TYPE_STRING,
         "DATETIME": TypeKind.TYPE_DATETIME, "TIMESTAMP": TypeKind.TYPE_TIMESTAMP, "DATE": TypeKind.TYPE_DATE}
# One generated month per colour, in years the mirror publishes.
MONTHS = {"yellow": (2021, 1), "green": (2020, 1), "fhv": (2019, 1)}


class _CachedConfig(wasmtime.Config):
    """wasmtime's configuration with its compilation cache on (where the home folder allows)."""

    def __init__(self) -> None:
        super().__init__()
        try:
            self.cache = True
        except wasmtime.WasmtimeError:
            pass


@functools.cache
def service() -> ZetaSqlLocalService:
    """The analyzer, compiled once per process (and cached by wasmtime across processes)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wasm_client, "Config", _CachedConfig)
        return ZetaSqlLocalService()


class Job:
    """A query job that has ended with ``rows``."""

    def __init__(self, rows: list[tuple]) -> None:
        self.rows = rows

    def result(self, **_: Any) -> list[tuple]:
        return self.rows


class Recorder:
    """A stand-in BigQuery client: records the tables created and the SQL sent; every query
    answers ``rows``."""

    def __init__(self) -> None:
        self.project = PROJECT
        self.rows: list[tuple] = [(0,)]
        self.tables: dict[str, bq.Table] = {}
        self.sql: list[str] = []

    def get_dataset(self, dataset_id: str, **_: Any) -> bq.Dataset:
        return bq.Dataset(dataset_id)

    def create_dataset(self, dataset: bq.Dataset, **_: Any) -> bq.Dataset:
        return dataset

    def create_table(self, table: bq.Table, exists_ok: bool = False, **_: Any) -> bq.Table:
        table_id = f"{table.project}.{table.dataset_id}.{table.table_id}"
        if exists_ok and table_id in self.tables:
            return self.tables[table_id]
        self.tables[table_id] = table
        return table

    def get_table(self, table_id: str, **_: Any) -> bq.Table:
        if table_id not in self.tables:
            raise NotFound(table_id)
        return self.tables[table_id]

    def delete_table(self, table_id: str, **_: Any) -> None:
        self.tables.pop(table_id, None)

    def copy_table(self, source: str, destination: str, **_: Any) -> Job:
        self.tables[destination] = self.tables[source]
        return Job([])

    def list_tables(self, dataset: str, **_: Any) -> list[bq.Table]:
        return list(self.tables.values())

    def query(self, sql: str, **_: Any) -> Job:
        self.sql.append(sql)
        return Job(self.rows)


def source_file(color: str) -> str:
    year, month = MONTHS[color]
    return f"{color}_tripdata_{year}-{month:02d}.csv.gz"


def tables(color: str) -> tuple[Recorder, str, str]:
    """A recorder holding the colour's tables as the product creates them: the colour's table (with
    the lineage column), the loads table and a staging table (without it); their ids."""
    client = Recorder()
    table_id = bigquery.ensure_table(client, color)
    staging_id = bigquery.create_staging(client, table_id, color)
    return client, table_id, staging_id


def catalog(client: Recorder) -> SimpleCatalog:
    """The recorded tables, each named by its full path, and BigQuery's functions."""
    builder = CatalogBuilder("bigquery").with_builtin_functions(ZetaSQLBuiltinFunctionOptions(language_options=LANGUAGE))
    for table_id, table in client.tables.items():
        columns = TableBuilder(table_id)
        for field in table.schema:
            columns.add_column(field.name, TYPES[field.field_type])
        builder.add_table(columns.build())
    return builder.build()


def analyse(sql: str, tables_of: Recorder) -> list[str]:
    """Parse ``sql`` as one BigQuery script, then analyse each statement against the recorded
    tables; the resolved statements' kinds, in order (a rejected text raises ``ServerError``)."""
    Parser(LANGUAGE, service()).parse_script(sql)
    analyzer = Analyzer(OPTIONS, catalog(tables_of), service())
    location = ParseResumeLocation(input=sql, byte_position=0, allow_resume=True)
    kinds = []
    while sql.encode()[location.byte_position:].strip():
        at = location.byte_position
        kinds.append(type(analyzer.analyze_next_statement(location)).__name__.removeprefix("Resolved"))
        assert location.byte_position > at, f"the analyzer did not move on from byte {at}"
    return kinds


def sent(call: Callable[[Recorder], object], client: Recorder, rows: list[tuple]) -> list[str]:
    """The SQL texts ``call(client)`` sends, each query answering ``rows``."""
    client.sql, client.rows = [], rows
    call(client)
    return client.sql


def swap_text(color: str, version: str | None = VERSION) -> tuple[str, Recorder]:
    client, table_id, staging_id = tables(color)
    swap, after = sent(lambda c: bigquery.swap_in(c, table_id, staging_id, color, source_file(color), version),
                       client, [(0,)])
    year, month = MONTHS[color]
    # The month's rows, read from its partition alone (a DML's bill is the bytes of what it scans).
    month_rows = f"source_month = DATE '{year}-{month:02d}-01' AND {LINEAGE_COLUMN} = '{source_file(color)}'"
    assert after == f"SELECT COUNT(*) FROM `{table_id}` WHERE {month_rows}"
    assert f"DELETE FROM `{table_id}` WHERE {month_rows};" in swap
    return swap, client


@pytest.mark.parametrize("version", [pytest.param(VERSION, id="version"), pytest.param(None, id="no-version")])
@pytest.mark.parametrize("color", COLORS)
def test_the_swap_transaction_is_accepted_statement_by_statement(color: str, version: str | None) -> None:
    swap, client = swap_text(color, version)
    assert analyse(swap, client) == ["BeginStmt", "DeleteStmt", "InsertStmt", "DeleteStmt", "InsertStmt",
                                     "CommitStmt"]


@pytest.mark.parametrize("color", COLORS)
def test_the_counts_are_accepted(color: str) -> None:
    client, table_id, staging_id = tables(color)
    texts = sent(lambda c: (bigquery.count(c, table_id), bigquery.count(c, staging_id),
                            bigquery.count(c, table_id, source_file(color))), client, [(0,)])
    assert len(texts) == 3
    for sql in texts:
        assert analyse(sql, client) == ["QueryStmt"]


@pytest.mark.parametrize("color", COLORS)
def test_the_loaded_versions_query_is_accepted(color: str) -> None:
    client, _, _ = tables(color)
    [sql] = sent(lambda c: bigquery.loaded_versions(c, color), client, [(source_file(color), VERSION)])
    assert analyse(sql, client) == ["QueryStmt"]


@pytest.mark.parametrize("color", COLORS)
def test_the_stacks_row_counts_are_accepted(color: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client, _, _ = tables(color)
    monkeypatch.setattr(show, "bigquery_client", lambda: client)
    [sql] = sent(lambda c: show.bigquery(), client, [(source_file(color), 0)])
    assert analyse(sql, client) == ["QueryStmt"]


@pytest.mark.parametrize("color", COLORS)
def test_the_partitioning_of_an_earlier_versions_table_is_accepted(color: str) -> None:
    client = Recorder()
    old_id = f"{PROJECT}.{bigquery.DATASET}.{color}_tripdata"
    client.create_table(bq.Table(old_id, schema=bigquery.schema(color)[:-1]))  # no source_month, no partitions
    with pytest.raises(SchemaError, match=f"python flows/partition_bq_tables.py --color {color}"):
        bigquery.ensure_table(client, color)
    # What the texts read and write while they run: the old table, and the new one (dropped at the end).
    during = Recorder()
    during.tables = {**client.tables, f"{old_id}__by_month": bq.Table(f"{old_id}__by_month",
                                                                      schema=bigquery.schema(color))}
    texts = sent(lambda c: bigquery.partition_by_month(c, color), client, [(7,)])
    [copy] = [sql for sql in texts if sql.startswith("INSERT")]
    assert analyse(copy, during) == ["InsertStmt"]
    # The counts: the old table, the copy, the table under its old name again.
    assert [analyse(sql, during) for sql in texts if sql != copy] == [["QueryStmt"]] * 3
    assert client.tables[old_id].time_partitioning.field == "source_month"
    assert f"{old_id}__by_month" not in client.tables
    assert bigquery.ensure_table(client, color) == old_id  # loads take it now


# Negative controls: the same swap, broken one way each, must be refused, saying why.

@pytest.mark.parametrize("color", COLORS)
def test_an_unquoted_reserved_word_is_refused(color: str) -> None:
    swap, client = swap_text(color)
    assert "`rows`" in swap
    with pytest.raises(ServerError, match="Syntax error: Unexpected keyword ROWS"):
        analyse(swap.replace("`rows`", "rows"), client)


@pytest.mark.parametrize("color", COLORS)
def test_a_timestamp_into_a_datetime_column_is_refused(color: str) -> None:
    swap, client = swap_text(color)
    column = next(name for name, kind in COLUMNS[color] if kind == "timestamp")
    head, select, rest = swap.partition(" SELECT ")  # the first SELECT: the colour's INSERT
    assert f"`{column}`" in rest.split(" FROM ")[0]
    broken = head + select + rest.replace(f"`{column}`", "CURRENT_TIMESTAMP()", 1)
    with pytest.raises(ServerError, match=f"has type TIMESTAMP which cannot be inserted into column {column}, "
                                          "which has type DATETIME"):
        analyse(broken, client)


@pytest.mark.parametrize("color", COLORS)
def test_an_unknown_column_is_refused(color: str) -> None:
    swap, client = swap_text(color)
    assert f", {LINEAGE_COLUMN}, source_month)" in swap
    with pytest.raises(ServerError, match=f"Column {LINEAGE_COLUMN}_name is not present in table "
                                          rf"{PROJECT}\.dezoomcamp\.{color}_tripdata"):
        analyse(swap.replace(f", {LINEAGE_COLUMN}, source_month)", f", {LINEAGE_COLUMN}_name, source_month)"), client)


def test_an_unknown_table_is_refused() -> None:
    swap, client = swap_text("yellow")
    with pytest.raises(ServerError, match=rf"Table not found: `{PROJECT}\.dezoomcamp\.yelow_tripdata`"):
        analyse(swap.replace(".yellow_tripdata`", ".yelow_tripdata`", 1), client)


# The lake file's timestamps.

def timestamps(path: Path) -> dict[str, tuple[str, bool | None, str | None]]:
    """Each timestamp column of a parquet file (INT96 included): physical type, isAdjustedToUTC, unit."""
    schema = pq.ParquetFile(path).schema
    found = {}
    for i in range(len(schema)):
        column = schema.column(i)
        logical = json.loads(column.logical_type.to_json())
        if column.physical_type == "INT96" or logical["Type"] == "Timestamp":
            found[column.name] = (column.physical_type, logical.get("isAdjustedToUTC"), logical.get("timeUnit"))
    return found


def as_bigquery_datetime(names: Iterable[str]) -> dict[str, tuple[str, bool, str]]:
    return {name: ("INT64", False, "microseconds") for name in names}


@pytest.mark.parametrize("color", COLORS)
def test_the_lake_files_timestamps_are_local_microseconds(color: str, tmp_path: Path) -> None:
    year, month = MONTHS[color]
    src = generate(color, year, month, 2_000, tmp_path / "m.csv.gz")
    csv_gz_to_parquet(src, tmp_path / "m.parquet", color)
    declared = as_bigquery_datetime(name for name, kind in COLUMNS[color] if kind == "timestamp")
    assert declared and timestamps(tmp_path / "m.parquet") == declared
    if "passenger_count" in dict(COLUMNS[color]):  # the clean step's copy, with missing counts filled
        fill_missing(tmp_path / "m.parquet", tmp_path / "filled.parquet", "passenger_count", 1)
        assert timestamps(tmp_path / "filled.parquet") == declared


def test_the_timestamp_check_tells_int96_nanoseconds_and_utc_apart(tmp_path: Path) -> None:
    t = pa.array([0], pa.timestamp("us"))
    table = pa.table({"local_us": t, "local_ns": t.cast(pa.timestamp("ns")), "utc_us": t.cast(pa.timestamp("us", "UTC"))})
    pq.write_table(table, tmp_path / "t.parquet")
    pq.write_table(table.select(["local_us"]), tmp_path / "int96.parquet", use_deprecated_int96_timestamps=True)
    assert timestamps(tmp_path / "t.parquet") == {"local_us": ("INT64", False, "microseconds"),
                                                  "local_ns": ("INT64", False, "nanoseconds"),
                                                  "utc_us": ("INT64", True, "microseconds")}
    assert timestamps(tmp_path / "int96.parquet") == {"local_us": ("INT96", None, None)}
    assert timestamps(tmp_path / "t.parquet") != as_bigquery_datetime(["local_us", "local_ns", "utc_us"])

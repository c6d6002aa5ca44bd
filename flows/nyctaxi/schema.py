"""The declared schema of each colour: exact columns in file order, one fixed type each.

Every month of a colour is written with exactly this schema, whatever its values,
so months always append (a month with no null ``passenger_count`` is still a
nullable integer; fhv location ids written as ``12.0`` are still integers).
"""
from __future__ import annotations

import importlib.metadata
import json
from typing import Literal

import pyarrow as pa

Kind = Literal["int", "float", "timestamp", "string"]

# Arrow type of each kind in the lake. Integers are int64 (nullable in Arrow and
# parquet); timestamps are microseconds, which BigQuery and PostgreSQL both hold.
ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "timestamp": pa.timestamp("us"),
    "string": pa.string(),
}
# pandas dtype recorded in the parquet metadata, so pandas readers get the same
# dtypes for every month (Int64, not int64 one month and float64 the next).
PANDAS_DTYPES: dict[str, str] = {
    "int": "Int64",
    "float": "float64",
    "timestamp": "datetime64[us]",
    "string": "object",
}
# What pyarrow's pandas metadata calls each kind's values ("pandas_type").
_PANDAS_TYPES: dict[str, str] = {"int": "int64", "float": "float64", "timestamp": "datetime", "string": "unicode"}

_I, _F, _T, _S = "int", "float", "timestamp", "string"

COLUMNS: dict[str, tuple[tuple[str, Kind], ...]] = {
    "yellow": (
        ("VendorID", _I),
        ("tpep_pickup_datetime", _T),
        ("tpep_dropoff_datetime", _T),
        ("passenger_count", _I),
        ("trip_distance", _F),
        ("RatecodeID", _I),
        ("store_and_fwd_flag", _S),
        ("PULocationID", _I),
        ("DOLocationID", _I),
        ("payment_type", _I),
        ("fare_amount", _F),
        ("extra", _F),
        ("mta_tax", _F),
        ("tip_amount", _F),
        ("tolls_amount", _F),
        ("improvement_surcharge", _F),
        ("total_amount", _F),
        ("congestion_surcharge", _F),
    ),
    "green": (
        ("VendorID", _I),
        ("lpep_pickup_datetime", _T),
        ("lpep_dropoff_datetime", _T),
        ("store_and_fwd_flag", _S),
        ("RatecodeID", _I),
        ("PULocationID", _I),
        ("DOLocationID", _I),
        ("passenger_count", _I),
        ("trip_distance", _F),
        ("fare_amount", _F),
        ("extra", _F),
        ("mta_tax", _F),
        ("tip_amount", _F),
        ("tolls_amount", _F),
        ("ehail_fee", _F),
        ("improvement_surcharge", _F),
        ("total_amount", _F),
        ("payment_type", _I),
        ("trip_type", _I),
        ("congestion_surcharge", _F),
    ),
    "fhv": (
        ("dispatching_base_num", _S),
        ("pickup_datetime", _T),
        ("dropOff_datetime", _T),
        ("PUlocationID", _I),
        ("DOlocationID", _I),
        ("SR_Flag", _S),
        ("Affiliated_base_number", _S),
    ),
}

COLORS: tuple[str, ...] = tuple(COLUMNS)
# Each loaded row also says which release file it came from (BigQuery and PostgreSQL).
LINEAGE_COLUMN = "source_file"


class SchemaError(ValueError):
    """A file's columns or values do not fit the declared schema of its colour."""


def columns(color: str) -> list[str]:
    """The declared column names of ``color``, in file order."""
    return [name for name, _ in COLUMNS[color]]


def kinds(color: str) -> dict[str, Kind]:
    """Column name -> kind for ``color``."""
    return dict(COLUMNS[color])


SOURCE_VERSION_KEY = b"nyc_tlc.source_version"


def arrow_schema(color: str) -> pa.Schema:
    """The lake's parquet schema of ``color``, with pandas metadata so that pandas
    readers get the declared dtypes (``Int64`` even in a month without nulls)."""
    return pa.schema([(name, ARROW_TYPES[kind]) for name, kind in COLUMNS[color]],
                     metadata={b"pandas": _pandas_metadata(color)})


def _pandas_metadata(color: str) -> bytes:
    """What pyarrow records for a DataFrame of the declared dtypes, written out here rather than
    made by pandas: importing pandas costs time and memory a process that needs no DataFrame (the
    conversion, the Postgres load) should not pay (bench/README.md). A test keeps it equal to what
    pandas and pyarrow make."""
    return json.dumps({
        "index_columns": [],
        "column_indexes": [],
        "columns": [{"name": name, "field_name": name, "pandas_type": _PANDAS_TYPES[kind],
                     "numpy_type": PANDAS_DTYPES[kind], "metadata": None} for name, kind in COLUMNS[color]],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": importlib.metadata.version("pandas"),
    }).encode()


def with_source_version(schema: pa.Schema, version: str | None) -> pa.Schema:
    """``schema`` with the source file's version (see ``source.version_from_headers``) in its metadata."""
    if version is None:
        return schema
    return schema.with_metadata({**(schema.metadata or {}), SOURCE_VERSION_KEY: version.encode()})


def source_version(schema: pa.Schema) -> str | None:
    """The source file's version recorded in a lake file's schema, if any."""
    value = (schema.metadata or {}).get(SOURCE_VERSION_KEY)
    return value.decode() if value else None


def check_header(header: list[str], color: str, source: str = "file") -> None:
    """Raise SchemaError naming the missing and unexpected columns, if any.

    Column order may differ from the declared order (it is restored on write);
    names are matched exactly, as they are case-sensitive in the lake.
    """
    expected = columns(color)
    missing = [c for c in expected if c not in header]
    unexpected = [c for c in header if c not in expected]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if not (missing or unexpected or duplicated):
        return
    problems = []
    if missing:
        problems.append(f"missing columns {missing}")
    if unexpected:
        problems.append(f"unexpected columns {unexpected}")
    if duplicated:
        problems.append(f"duplicated columns {duplicated}")
    raise SchemaError(
        f"{source} does not have the {color} schema: {'; '.join(problems)}. "
        f"Expected exactly these {len(expected)} columns: {', '.join(expected)}"
    )

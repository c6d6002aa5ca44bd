"""Loading a month into PostgreSQL: bulk COPY, in bounded memory, replacing the month atomically.

Each colour's table is LIST-partitioned by the lineage column ``source_file`` (one
partition per source month). A load empties the month's partition and COPYs every
row into it in one transaction: readers see the old month or the new one, a crash
mid-load leaves the old month, and reloading never duplicates. Measured here, this
costs about 1.1x a plain append, where a staging table + DELETE + INSERT costs 1.7x.
The rows go in PostgreSQL's binary COPY format (pgpq), the lineage value as the
partition's column default.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pgpq import ArrowToPostgresBinaryEncoder

from . import lake
from .dataset import ParameterError
from .resources import LOADS_TABLE, table_name
from .schema import COLUMNS, LINEAGE_COLUMN, SchemaError, arrow_schema
from .shrink import check_replacement

log = logging.getLogger(__name__)

PG_TYPES = {"int": "BIGINT", "float": "DOUBLE PRECISION", "timestamp": "TIMESTAMP", "string": "TEXT"}
# Rows per chunk handed to COPY: a few MB of binary COPY data, whatever the month's size.
BATCH_ROWS = 16 * 1024
COPY_CHUNK_BYTES = 1 << 20
PROGRESS_EVERY_S = 5.0
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")


def target_table(color: str, table: str | None) -> str:
    """The table to load: ``table`` if given (a plain lower-case SQL name), else the colour's."""
    name = table or table_name(color)
    if not _IDENTIFIER.match(name):
        raise ParameterError(
            f"table {name!r} is not a plain table name: use lower-case letters, digits and _ (at most 48)"
        )
    return name


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_table_sql(table: str, color: str) -> str:
    """The table with explicit column types from the declared schema, plus the lineage column."""
    cols = [f"{_quote(name)} {PG_TYPES[kind]}" for name, kind in COLUMNS[color]]
    cols.append(f"{LINEAGE_COLUMN} TEXT NOT NULL")
    return f"CREATE TABLE IF NOT EXISTS {_quote(table)} ({', '.join(cols)}) PARTITION BY LIST ({LINEAGE_COLUMN})"


def partition_name(table: str, source_file: str) -> str:
    """``yellow_tripdata__yellow_tripdata_2021_01``; hashed if that would pass PostgreSQL's 63 bytes."""
    stem = re.sub(r"[^a-z0-9]+", "_", source_file.lower().removesuffix(".csv.gz")).strip("_")
    name = f"{table}__{stem}"
    if len(name) > 63:
        name = f"{table}__{hashlib.sha256(source_file.encode()).hexdigest()[:12]}"
    return name


class _CopyStream(io.RawIOBase):
    """The rows of a parquet file in PostgreSQL's binary COPY format, a batch at a time (what COPY reads).

    Binary rather than CSV: the server takes each value as it is stored instead of parsing
    its text, and pgpq encodes a batch in a quarter of the time Arrow took to write it as
    CSV; a month loads about 35 % faster.
    """

    def __init__(self, parquet: Path, schema: pa.Schema, logger) -> None:
        # pre_buffer=False: with it (pyarrow's default) the reader keeps every row group it has
        # read cached until the end, so memory grows with the month.
        self._batches = pq.ParquetFile(parquet, pre_buffer=False).iter_batches(batch_size=BATCH_ROWS)
        self._encoder = ArrowToPostgresBinaryEncoder(schema)
        self._buffer = memoryview(self._encoder.write_header())
        self._finished = False
        self._logger = logger
        self.rows = 0
        self._started = self._last_report = time.monotonic()

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bool:
        if self._finished:
            return False
        batch = next(self._batches, None)
        if batch is None:
            self._buffer = memoryview(self._encoder.finish())  # the format's trailer
            self._finished = True
            return True
        self._buffer = memoryview(self._encoder.write_batch(batch))
        self.rows += batch.num_rows
        now = time.monotonic()
        if now - self._last_report >= PROGRESS_EVERY_S:
            self._last_report = now
            self._logger.info(f"COPY: {self.rows:,} rows sent after {now - self._started:.0f} s")
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._buffer and self._next_chunk():
            pass
        n = len(self._buffer) if size is None or size < 0 else min(size, len(self._buffer))
        out = bytes(self._buffer[:n])
        self._buffer = self._buffer[n:]
        return out


CREATE_LOADS_SQL = (
    f"CREATE TABLE IF NOT EXISTS {LOADS_TABLE} (table_name TEXT NOT NULL, source_file TEXT NOT NULL, "
    "source_version TEXT, rows BIGINT NOT NULL, loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(), "
    "PRIMARY KEY (table_name, source_file))"
)


def replace_month(conn, table: str, color: str, parquet: Path, source_file: str, *, allow_shrink: bool = False,
                  logger: logging.Logger | logging.LoggerAdapter = log) -> int:
    """Replace the rows of ``source_file`` in ``table`` with those of ``parquet``; return the rows loaded.

    The same transaction records the load in ``nyc_tlc_loads`` with the version of the
    release file (from the parquet's metadata): a backfill skips what is recorded there.
    A month with no rows, or far fewer than the partition holds, is refused before the
    partition is touched (``shrink.check_replacement``) unless ``allow_shrink``.
    ``conn`` is a psycopg2 connection; this function commits or rolls back.
    """
    part = partition_name(table, source_file)
    schema = _declared_schema(parquet, color)
    new_rows = lake.row_count(parquet)
    destination = f"PostgreSQL table {table}"
    created = False
    try:
        if not new_rows:  # refused before anything is made: no table, no partition
            with conn.cursor() as cur:
                check_replacement(destination, source_file, new_rows, _partition_rows(cur, part),
                                  allow_shrink=allow_shrink)
        with conn.cursor() as cur:
            # Schema changes under a lock of this table's name, so that two first loads do not race.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
            cur.execute(create_table_sql(table, color))
            _check_partitioned(cur, table)
            _check_columns(cur, table, color)
            cur.execute(CREATE_LOADS_SQL)
            created = _partition_rows(cur, part) is None
            cur.execute(f"CREATE TABLE IF NOT EXISTS {_quote(part)} PARTITION OF {_quote(table)} "
                        f"FOR VALUES IN (%s)", (source_file,))
        conn.commit()
        stream = _CopyStream(parquet, schema, logger)
        columns = ", ".join(_quote(name) for name, _ in COLUMNS[color])
        with conn.cursor() as cur:
            # The check, TRUNCATE and COPY in one transaction, under the partition's lock: the month is
            # swapped, never mixed or doubled, and compared with what it holds at that moment.
            cur.execute(f"LOCK TABLE {_quote(part)} IN ACCESS EXCLUSIVE MODE")
            check_replacement(destination, source_file, new_rows, _partition_rows(cur, part), allow_shrink=allow_shrink)
            cur.execute(f"TRUNCATE {_quote(part)}")
            # The lineage column is the partition's default rather than sent with every row.
            cur.execute(f"ALTER TABLE {_quote(part)} ALTER COLUMN {LINEAGE_COLUMN} SET DEFAULT %s", (source_file,))
            cur.copy_expert(f"COPY {_quote(part)} ({columns}) FROM STDIN WITH (FORMAT binary)", stream,
                            size=COPY_CHUNK_BYTES)
            loaded = cur.rowcount
            cur.execute(
                f"INSERT INTO {LOADS_TABLE} (table_name, source_file, source_version, rows) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (table_name, source_file) DO UPDATE SET source_version = EXCLUDED.source_version, "
                "rows = EXCLUDED.rows, loaded_at = now()",
                (table, source_file, lake.source_version(parquet), loaded),
            )
        conn.commit()
    except BaseException:
        conn.rollback()
        if created:
            _drop_if_empty(conn, table, part)
        raise
    logger.info(f"loaded {loaded:,} rows of {source_file} into {table} (partition {part})")
    return loaded


def _drop_if_empty(conn, table: str, part: str) -> None:
    """After a failed first load of a month: drop the partition it made, if it is still empty,
    so that a failure leaves the table as it found it. Best effort: the load's own error is the
    one to raise (a connection that died cannot do this; the next load reuses the partition)."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
            if _partition_rows(cur, part) == 0:
                cur.execute(f"DROP TABLE {_quote(part)}")
        conn.commit()
    except Exception:  # noqa: BLE001 - see above
        with contextlib.suppress(Exception):
            conn.rollback()


def _partition_rows(cur, part: str) -> int | None:
    """The rows a month's partition holds (``None``: it does not exist)."""
    cur.execute("SELECT to_regclass(%s)", (_quote(part),))
    if cur.fetchone()[0] is None:
        return None
    cur.execute(f"SELECT count(*) FROM {_quote(part)}")
    return cur.fetchone()[0]


def _declared_schema(parquet: Path, color: str) -> pa.Schema:
    """The declared schema of ``color``, once ``parquet`` is known to hold it: binary COPY takes
    each value as the table's type, so a file with other types must not get that far."""
    declared = arrow_schema(color)
    found = pq.read_schema(parquet)
    if not found.equals(declared, check_metadata=False):
        raise SchemaError(f"{parquet.name} does not hold the declared {color} columns and types (not made by "
                          f"clean?): expected {declared.types}, found {found.types}; convert the month again")
    return declared


def loaded_versions(conn, table: str) -> dict[str, str | None]:
    """``{source_file: source_version}`` of the months loaded into ``table`` (none if it is new)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (LOADS_TABLE,))
        if cur.fetchone()[0] is None:
            return {}
        cur.execute(f"SELECT source_file, source_version FROM {LOADS_TABLE} WHERE table_name = %s", (table,))
        return dict(cur.fetchall())


def _check_columns(cur, table: str, color: str) -> None:
    """``table`` has ``color``'s columns (another colour's table, named with ``--table``, is refused
    before anything is loaded, rather than failing the COPY with the driver's error)."""
    cur.execute("SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum", (_quote(table),))
    found = [name for (name,) in cur.fetchall()]
    expected = [name for name, _ in COLUMNS[color]] + [LINEAGE_COLUMN]
    if found != expected:
        holds = next((c for c, cols in COLUMNS.items() if [n for n, _ in cols] + [LINEAGE_COLUMN] == found),
                     None)
        raise SchemaError(f"table {table} holds {f'{holds} trips' if holds else 'other columns'}, not {color}: "
                          f"load {color} into {table_name(color)} (the default) or another new table")


def _check_partitioned(cur, table: str) -> None:
    cur.execute(
        "SELECT pg_get_partkeydef(c.oid) FROM pg_class c WHERE c.oid = to_regclass(%s)", (_quote(table),)
    )
    row = cur.fetchone()
    if not row or row[0] != f"LIST ({LINEAGE_COLUMN})":
        raise SchemaError(
            f"table {table} exists but is not partitioned by {LINEAGE_COLUMN} (made by another tool?): "
            f"drop it, or pass another table name"
        )

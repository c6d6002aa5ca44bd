"""csv.gz -> parquet with the declared schema, streamed in bounded memory.

One pass over the file: pyarrow's streaming CSV reader yields small batches,
each batch is cast to the declared types, and batches are written as parquet
row groups of ``ROW_GROUP_ROWS``, each encoded in a thread of its own while the next
is parsed. Peak memory is a few row groups, whatever the month's size.
"""
from __future__ import annotations

import csv
import gzip
import io
import logging
import re
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from isal import igzip, isal_zlib

from .schema import SchemaError, arrow_schema, check_header, columns, kinds, with_source_version

log = logging.getLogger(__name__)

# Two row groups are in memory at once (one encoded, one gathered): 64 k rows each keep the peak
# where one of 128 k was without the writer thread, for slightly bigger files.
ROW_GROUP_ROWS = 64 * 1024
# The CSV reader's block. Its background thread reads ahead up to 32 blocks (not configurable)
# while the cast and the parquet writer catch up, so the block size sets the reader's memory:
# small blocks cost a little CPU and lower the conversion's peak (measured: bench/README.md).
READ_BLOCK_BYTES = 1 << 18
PARQUET_COMPRESSION = "snappy"
PROGRESS_EVERY_S = 5.0

# How each kind is parsed from the CSV text. Integers are read as float64 and cast
# back: fhv months write ids as "12.0", and the safe cast still rejects "12.5".
READ_TYPES: dict[str, pa.DataType] = {
    "int": pa.float64(),
    "float": pa.float64(),
    "timestamp": pa.timestamp("us"),
    "string": pa.string(),
}


class SourceDataError(ValueError):
    """The downloaded file is not a readable TLC csv.gz (corrupt, truncated, not CSV)."""


@dataclass
class PassengerCounts:
    """Rows whose ``passenger_count`` is missing or zero (the course's data-quality check)."""

    missing: int = 0
    zero: int = 0

    def add(self, column: pa.Array) -> None:
        self.missing += column.null_count
        # Zeros are the values that cast to false. Not pc.equal(column, 0): turning a Python value
        # into an Arrow one makes pyarrow import pandas, which nothing else here needs (its cost in
        # time and memory: bench/README.md).
        nonzero = pc.sum(column.cast(pa.bool_())).as_py() or 0
        self.zero += len(column) - column.null_count - nonzero


@dataclass
class CleanReport:
    """What one conversion read and wrote; what the course prints in ``clean``.

    ``before`` counts the values as parsed from the CSV text, ``after`` as written
    with the declared types: the lake keeps nulls as nulls (no silent fill).
    Both are None for fhv, which has no ``passenger_count``.
    """

    rows: int = 0
    before: PassengerCounts | None = None
    after: PassengerCounts | None = None


def read_header(path: Path) -> list[str]:
    """The first CSV line of a gzip file, as column names."""
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            first = f.readline(64 * 1024)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        with open(path, "rb") as f:
            start = f.read(512).lstrip()
        if start.startswith(b"<"):  # <!DOCTYPE html>, <html>, <?xml ...>
            raise SourceDataError(f"{path.name} is an HTML/XML page, not a gzip CSV: the server answered with a "
                                  f"web page (an error or rate-limit page, or a wrong base URL?)") from None
        raise SourceDataError(f"{path.name} is not a readable gzip CSV ({type(e).__name__}: {e})") from None
    if not first.strip():
        raise SourceDataError(f"{path.name} is empty: expected a CSV header line")
    return next(csv.reader(io.StringIO(first)))


def csv_gz_to_parquet(
    src: Path,
    dest: Path,
    color: str,
    *,
    source_version: str | None = None,
    logger: logging.Logger | logging.LoggerAdapter = log,
) -> CleanReport:
    """Convert the TLC csv.gz ``src`` of ``color`` to parquet at ``dest``.

    ``source_version`` (what ``source.downloaded_version`` says) goes into the file's
    metadata, so the lake and every load made from it know which edition they hold.

    Raises SchemaError for missing/unexpected columns or values that do not fit
    their declared type, SourceDataError for a file that cannot be read. On any
    error ``dest`` is removed: it is either complete or absent.
    """
    header = read_header(src)
    check_header(header, color, source=src.name)
    target = with_source_version(arrow_schema(color), source_version)
    col_kinds = kinds(color)
    report = CleanReport()
    if "passenger_count" in col_kinds:
        report.before, report.after = PassengerCounts(), PassengerCounts()

    started = last_report = time.monotonic()
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    try:
        # ISA-L inflates the file for Arrow's reader: faster than Arrow's own gzip stream (zlib), with
        # the same CRC and length checks (bench/README.md).
        with igzip.open(src, "rb") as text, _open_reader(text, src, header, color) as reader, \
                pq.ParquetWriter(dest, target, compression=PARQUET_COMPRESSION) as parquet, \
                _BackgroundWriter(parquet) as writer:
            while True:
                try:
                    raw = reader.read_next_batch()
                except StopIteration:
                    break
                except _READ_ERRORS as e:
                    raise _read_error(src, header, col_kinds, report.rows, e) from None
                batch = _cast(raw, target, src, header, col_kinds, report.rows)
                if report.before and report.after:
                    report.before.add(raw.column("passenger_count"))
                    report.after.add(batch.column("passenger_count"))
                report.rows += batch.num_rows
                pending.append(batch)
                pending_rows += batch.num_rows
                if pending_rows >= ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_batches(pending, target), row_group_size=pending_rows)
                    pending, pending_rows = [], 0
                now = time.monotonic()
                if now - last_report >= PROGRESS_EVERY_S:
                    last_report = now
                    logger.info(f"{src.name}: {report.rows:,} rows converted after {now - started:.0f} s")
            if pending:
                writer.write_table(pa.Table.from_batches(pending, target), row_group_size=pending_rows)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return report


class _BackgroundWriter:
    """Encodes each row group in a thread of its own while the next one is parsed: parsing the
    CSV and encoding parquet each take about half the time, and both release the GIL.

    ``write_table`` first waits for the previous row group to be written, so at most two are
    in memory (one encoded, one gathered). Any error of the writer is raised here, in the
    reading thread, at the next ``write_table`` or on leaving.
    """

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self._writer = writer
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer")
        self._writing: Future | None = None

    def write_table(self, table: pa.Table, row_group_size: int) -> None:
        self._wait()
        self._writing = self._pool.submit(self._writer.write_table, table, row_group_size=row_group_size)

    def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()  # raises what the writer raised

    def __enter__(self) -> _BackgroundWriter:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self._wait()
        finally:
            self._pool.shutdown(wait=True)  # never close the file under a write


# What reading a bad file raises: Arrow's parse errors, and the inflater's (a cut file: EOFError,
# a bad CRC: BadGzipFile, an OSError, a bad deflate block: isal_zlib.error).
_READ_ERRORS = (pa.ArrowInvalid, OSError, EOFError, isal_zlib.error)


def _open_reader(text, src: Path, header: list[str], color: str) -> pacsv.CSVStreamingReader:
    """Arrow's streaming CSV reader over ``text``, the inflated content of ``src``."""
    read_types = {name: READ_TYPES[kind] for name, kind in kinds(color).items()}
    try:
        return pacsv.open_csv(
            text,
            read_options=pacsv.ReadOptions(block_size=READ_BLOCK_BYTES),
            convert_options=pacsv.ConvertOptions(
                column_types=read_types,
                include_columns=columns(color),
                strings_can_be_null=True,
            ),
        )
    except _READ_ERRORS as e:
        raise _read_error(src, header, kinds(color), 0, e) from None


def _cast(batch: pa.RecordBatch, target: pa.Schema, src: Path, header: list[str], col_kinds: dict[str, str],
          offset: int) -> pa.RecordBatch:
    """``batch`` (rows ``offset + 1`` on) with the declared types; a value that does not fit is a
    SchemaError naming its line."""
    arrays = []
    for f in target:
        column = batch.column(f.name)
        if column.type != f.type:
            try:
                column = column.cast(f.type, safe=True)
            except pa.ArrowInvalid as e:
                # Integers are parsed as float64: what fails is a fraction, or a value out of int64's range.
                raise _bad_value(src, header, col_kinds, offset, header.index(f.name), _not_an_int, str(e)) from None
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def _not_an_int(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return True
    return not (value.is_integer() and abs(value) < 2**63)


def _read_error(src: Path, header: list[str], col_kinds: dict[str, str], rows: int, e: Exception) -> Exception:
    text = str(e)
    column = re.search(r"In CSV column #(\d+)", text)
    if column and int(column[1]) < len(header):
        value = re.search(r"invalid value '(.*)'$", text)
        return _bad_value(src, header, col_kinds, rows, int(column[1]), lambda cell: value is None or cell == value[1],
                          text)
    if "CSV parse error" in text:
        found = _find_record(src, rows, lambda record: len(record) != len(header))
        where = f"line {found[0]:,}" if found else f"after row {rows:,}"
        has = f"{len(found[1])} columns" if found else "another number of columns"
        return SchemaError(f"{src.name}, {where}: the row has {has}, the header {len(header)} ({text})")
    return SourceDataError(
        f"{src.name} could not be read after {rows:,} rows (corrupt or truncated download?): {type(e).__name__}: {text}"
    )


def _bad_value(src: Path, header: list[str], col_kinds: dict[str, str], rows: int, index: int,
               bad: Callable[[str], bool], why: str) -> SchemaError:
    """A SchemaError for the first value of column ``index`` after the first ``rows`` rows that is ``bad``,
    naming its line."""
    name = header[index]
    kind = col_kinds[name]
    found = _find_record(src, rows, lambda record: len(record) > index and record[index] != "" and bad(record[index]))
    if found is None:  # not found again (it should be): say where the reader was
        return SchemaError(f"{src.name}, after row {rows:,}: column {name} holds a value that is not {kind} ({why})")
    line, record = found
    return SchemaError(f"{src.name}, line {line:,}: column {name} holds {record[index]!r}, which is not {kind} ({why})")


def _find_record(src: Path, skip: int, predicate: Callable[[list[str]], bool]) -> tuple[int, list[str]] | None:
    """The first row after the first ``skip`` rows for which ``predicate`` holds, and the line of the
    file it starts on as an editor numbers them (the header is line 1; a quoted value may span lines).
    Read again from the start: this runs only once a conversion has failed."""
    with igzip.open(src, "rt", encoding="utf-8", errors="replace", newline="") as text:
        reader = csv.reader(text)
        next(reader, None)
        rows, last_line = 0, reader.line_num
        for record in reader:
            first_line, last_line = last_line + 1, reader.line_num
            if not record:  # an empty line: Arrow's reader skips it too
                continue
            rows += 1
            if rows > skip and predicate(record):
                return first_line, record
    return None


def passenger_counts(path: Path) -> PassengerCounts:
    """Missing and zero ``passenger_count`` of a lake file, read one row group at a time."""
    counts = PassengerCounts()
    parquet = pq.ParquetFile(path)
    for i in range(parquet.num_row_groups):
        counts.add(parquet.read_row_group(i, columns=["passenger_count"]).column("passenger_count"))
    return counts


def fill_missing(src: Path, dest: Path, column: str, value: int) -> None:
    """Copy a lake file with the nulls of ``column`` replaced by ``value``, row group by row group."""
    parquet = pq.ParquetFile(src)
    schema = parquet.schema_arrow
    index = schema.get_field_index(column)
    try:
        with pq.ParquetWriter(dest, schema, compression=PARQUET_COMPRESSION) as writer:
            for i in range(parquet.num_row_groups):
                table = parquet.read_row_group(i)
                filled = pc.fill_null(table.column(index), pa.scalar(value, schema.field(index).type))
                writer.write_table(table.set_column(index, schema.field(index), filled))
    except BaseException:
        dest.unlink(missing_ok=True)
        raise

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
# The longest text field taken: TLC's are a few characters; a longer one is a broken or hostile file.
MAX_TEXT_BYTES = 4096
PROGRESS_EVERY_S = 5.0

# How each kind is parsed from the CSV text. Integers are read as text and cast to int64 exactly
# (through float64, 2**53 + 1 came out as 2**53); fhv months write ids as "12.0" (``_to_int``).
READ_TYPES: dict[str, pa.DataType] = {
    "int": pa.string(),
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
                    report.before.add(batch.column("passenger_count"))
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
        if col_kinds[f.name] == "int":
            try:
                column = _to_int(column, f.type)
            except pa.ArrowInvalid as e:  # a fraction, a word, or a value out of int64's range
                raise _bad_value(src, header, col_kinds, offset, header.index(f.name), str(e)) from None
        elif col_kinds[f.name] == "string":
            _check_text(column, f.name, src, header, col_kinds, offset)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def _check_text(column: pa.Array, name: str, src: Path, header: list[str], col_kinds: dict[str, str],
                offset: int) -> None:
    """Text every destination stores as it is: no NUL (PostgreSQL's text cannot hold one, so it is
    refused here for all of them) and no field longer than ``MAX_TEXT_BYTES``."""
    index = header.index(name)
    if pc.any(pc.match_substring(column, "\x00")).as_py():
        raise _bad_value(src, header, col_kinds, offset, index, "a NUL character, which PostgreSQL cannot store",
                         bad=lambda cell: "\x00" in cell)
    if len(column) and (pc.max(pc.binary_length(column)).as_py() or 0) > MAX_TEXT_BYTES:
        raise _bad_value(src, header, col_kinds, offset, index,
                         f"a field over {MAX_TEXT_BYTES:,} bytes: not a trip record's",
                         bad=lambda cell: len(cell.encode("utf-8", "surrogateescape")) > MAX_TEXT_BYTES)


_INTEGRAL_ZEROS = r"\.0*$"


def _to_int(column: pa.Array, to: pa.DataType) -> pa.Array:
    """Integers from their CSV text, exactly; ``12.0`` (fhv's spelling) is 12, ``12.5`` is refused."""
    try:
        return column.cast(to)
    except pa.ArrowInvalid:
        return pc.replace_substring_regex(column, _INTEGRAL_ZEROS, "").cast(to)


def _refused(kind: str, text: str) -> bool:
    """Whether Arrow refuses ``text`` as a value of ``kind`` (asked of Arrow itself, one value at a
    time: this runs only once a conversion has failed). Bytes that are not UTF-8 were read back as
    surrogates (``_find_record``)."""
    if any("\udc80" <= char <= "\udcff" for char in text):
        return True
    try:
        if kind == "int":
            _to_int(pa.array([text]), pa.int64())
        else:
            pa.array([text]).cast(READ_TYPES[kind])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return True
    return False


def _read_error(src: Path, header: list[str], col_kinds: dict[str, str], rows: int, e: Exception) -> Exception:
    text = str(e)
    column = re.search(r"In CSV column #(\d+)", text)
    if column and int(column[1]) < len(header):
        # Arrow's message may quote the value ("invalid value 'x'", "expected no zone offset in 'x'")
        # or not ("invalid UTF8 data"): the value is found by asking Arrow of each one.
        return _bad_value(src, header, col_kinds, rows, int(column[1]), text)
    if "CSV parse error" in text:
        found = _find_record(src, rows, lambda record: len(record) != len(header))
        where = f"line {found[0]:,}" if found else f"after row {rows:,}"
        has = f"{len(found[1])} columns" if found else "another number of columns"
        return SchemaError(f"{src.name}, {where}: the row has {has}, the header {len(header)} ({text})")
    return SourceDataError(
        f"{src.name} could not be read after {rows:,} rows (corrupt or truncated download?): {type(e).__name__}: {text}"
    )


def _bad_value(src: Path, header: list[str], col_kinds: dict[str, str], rows: int, index: int, why: str,
               bad: Callable[[str], bool] | None = None) -> SchemaError:
    """A SchemaError for the first value of column ``index`` after the first ``rows`` rows that is
    ``bad`` (by default: that Arrow refuses as the column's kind), naming its line and its text."""
    name = header[index]
    kind = col_kinds[name]
    bad = bad or (lambda cell: _refused(kind, cell))
    found = _find_record(src, rows, lambda record: len(record) > index and record[index] != "" and bad(record[index]))
    if found is None:  # not found again (it should be): say where the reader was
        return SchemaError(f"{src.name}, after row {rows:,}: column {name} holds a value that is not {kind} "
                           f"({_cut(why)})")
    line, record = found
    return SchemaError(f"{src.name}, line {line:,}: column {name} holds {_shown(record[index])}, which is not "
                       f"{kind} ({_cut(why)})")


def _shown(cell: str, limit: int = 80) -> str:
    """A refused value as a message quotes it: bytes that are not UTF-8 and characters that do not
    print as escapes (``\\xff``, ``\\x00``, ``\\n``), cut to ``limit`` characters."""
    raw = cell.encode("utf-8", "surrogateescape")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in raw.decode("utf-8", "backslashreplace"))
    return f"'{text[:limit]}…' ({len(raw):,} bytes)" if len(text) > limit else f"'{text}'"


def _cut(text: str, limit: int = 200) -> str:
    """Arrow's message, which may quote a whole field, cut to ``limit`` characters."""
    return text if len(text) <= limit else text[:limit] + "…"


def _find_record(src: Path, skip: int, predicate: Callable[[list[str]], bool]) -> tuple[int, list[str]] | None:
    """The first row after the first ``skip`` rows for which ``predicate`` holds, and the line of the
    file it starts on as an editor numbers them (the header is line 1; a quoted value may span lines).
    Read again from the start: this runs only once a conversion has failed. Bytes that are not
    UTF-8 come back as surrogates (``\\udcff``), fields of any length are read (Python's csv
    refuses those over 128 KiB by default)."""
    limit = csv.field_size_limit(2**31 - 1)
    try:
        with igzip.open(src, "rt", encoding="utf-8", errors="surrogateescape", newline="") as text:
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
    finally:
        csv.field_size_limit(limit)
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

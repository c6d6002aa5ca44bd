import gzip
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from stack.generator import generate

from helpers import pandas_modules_after
from nyctaxi import convert
from nyctaxi.convert import SourceDataError, csv_gz_to_parquet
from nyctaxi.schema import SchemaError, arrow_schema, columns

YELLOW_HEADER = ",".join(columns("yellow"))


def write_gz(path: Path, text: str) -> Path:
    path.write_bytes(gzip.compress(text.encode()))
    return path


def test_hand_written_yellow_rows(tmp_path):
    src = write_gz(tmp_path / "y.csv.gz", YELLOW_HEADER + "\n"
                   "1,2021-01-01 00:30:10,2021-01-01 00:36:12,1,2.10,1,N,142,43,2,8,3,.5,0,0,.3,11.8,2.5\n"
                   "2,2021-01-01 00:51:20,2021-01-01 00:52:19,0,.20,1,Y,238,151,2,3.00,.50,.50,.00,.00,.30,4.30,.00\n"
                   ",2021-01-31 23:59:00,2021-02-01 00:10:00,,1.00,,,1,265,,9.50,0,0.5,0,0,0.3,12.3,2.5\n")
    report = csv_gz_to_parquet(src, tmp_path / "y.parquet", "yellow")
    df = pd.read_parquet(tmp_path / "y.parquet")

    assert report.rows == 3
    assert list(df.columns) == columns("yellow")
    assert df["trip_distance"].tolist() == [2.10, 0.20, 1.00]
    assert df["mta_tax"].tolist() == [0.5, 0.5, 0.5]
    assert str(df["passenger_count"].dtype) == "Int64" and df["passenger_count"].isna().tolist() == [False, False, True]
    assert df["store_and_fwd_flag"].tolist()[:2] == ["N", "Y"] and pd.isna(df["store_and_fwd_flag"][2])
    assert df["tpep_dropoff_datetime"][2] == pd.Timestamp("2021-02-01 00:10:00")
    assert (report.before.missing, report.before.zero) == (1, 1)
    assert (report.after.missing, report.after.zero) == (1, 1)
    assert pq.read_schema(tmp_path / "y.parquet").field("passenger_count").type == pa.int64()


def test_converting_does_not_import_pandas(tmp_path):
    """The conversion and the Postgres load need no DataFrame: importing pandas would cost every
    month 0.4 s and 45 MB (the lake files still carry pandas' dtypes in their metadata)."""
    src = generate("yellow", 2021, 1, 1000, tmp_path / "y.csv.gz")
    code = ("from pathlib import Path\nfrom nyctaxi import postgres\nfrom nyctaxi.convert import csv_gz_to_parquet\n"
            f"report = csv_gz_to_parquet(Path({str(src)!r}), Path({str(tmp_path / 'y.parquet')!r}), 'yellow')\n"
            "assert report.rows == 1000")
    assert pandas_modules_after(code) == "[]"


def test_fhv_float_location_ids_become_integers(tmp_path):
    header = ",".join(columns("fhv"))
    src = write_gz(tmp_path / "f.csv.gz", header + "\n"
                   "B00013,2019-01-01 00:30:00,2019-01-01 00:45:00,264.0,12.0,,B00013\n"
                   "B00037,2019-01-01 00:21:00,2019-01-01 00:28:00,,,1,\n")
    report = csv_gz_to_parquet(src, tmp_path / "f.parquet", "fhv")
    table = pq.read_table(tmp_path / "f.parquet")
    assert report.rows == 2 and report.before is None
    assert table.schema.field("PUlocationID").type == pa.int64()
    assert table.column("PUlocationID").to_pylist() == [264, None]
    assert table.column("SR_Flag").to_pylist() == [None, "1"]


def test_a_month_without_nulls_writes_the_same_schema_as_one_with_nulls(tmp_path):
    with_nulls = write_gz(tmp_path / "a.csv.gz", YELLOW_HEADER + "\n"
                          ",2021-01-01 00:30:10,2021-01-01 00:36:12,,2.10,,,142,43,,8,3,.5,0,0,.3,11.8,\n")
    without = write_gz(tmp_path / "b.csv.gz", YELLOW_HEADER + "\n"
                       "1,2021-02-01 00:30:10,2021-02-01 00:36:12,1,2,1,N,142,43,2,8,3,1,0,0,1,11,2\n")
    csv_gz_to_parquet(with_nulls, tmp_path / "a.parquet", "yellow")
    csv_gz_to_parquet(without, tmp_path / "b.parquet", "yellow")
    a, b = pq.read_schema(tmp_path / "a.parquet"), pq.read_schema(tmp_path / "b.parquet")
    assert a.equals(b, check_metadata=True)
    assert a.equals(arrow_schema("yellow"), check_metadata=True)


def test_columns_in_another_order_are_written_in_declared_order(tmp_path):
    header = list(reversed(columns("fhv")))
    src = write_gz(tmp_path / "f.csv.gz", ",".join(header) + "\nB1,1,2.0,3.0,2019-01-01 00:45:00,2019-01-01 00:30:00,B2\n")
    csv_gz_to_parquet(src, tmp_path / "f.parquet", "fhv")
    table = pq.read_table(tmp_path / "f.parquet")
    assert table.column_names == columns("fhv")
    assert table.column("dispatching_base_num").to_pylist() == ["B2"]
    assert table.column("PUlocationID").to_pylist() == [3]


def test_fraction_in_an_integer_column_is_an_error_naming_it(tmp_path):
    src = write_gz(tmp_path / "y.csv.gz", YELLOW_HEADER + "\n"
                   "1,2021-01-01 00:30:10,2021-01-01 00:36:12,1.5,2.10,1,N,142,43,2,8,3,.5,0,0,.3,11.8,2.5\n")
    with pytest.raises(SchemaError, match="passenger_count"):
        csv_gz_to_parquet(src, tmp_path / "y.parquet", "yellow")
    assert not (tmp_path / "y.parquet").exists()


def test_text_in_a_number_column_is_an_error(tmp_path):
    src = write_gz(tmp_path / "y.csv.gz", YELLOW_HEADER + "\n"
                   "1,2021-01-01 00:30:10,2021-01-01 00:36:12,1,two,1,N,142,43,2,8,3,.5,0,0,.3,11.8,2.5\n")
    with pytest.raises(SchemaError, match="trip_distance"):
        csv_gz_to_parquet(src, tmp_path / "y.parquet", "yellow")
    assert not (tmp_path / "y.parquet").exists()


def test_missing_and_unexpected_columns_fail_before_writing(tmp_path):
    header = YELLOW_HEADER.replace(",congestion_surcharge", ",airport_fee")
    src = write_gz(tmp_path / "y.csv.gz", header + "\n")
    with pytest.raises(SchemaError, match=r"missing columns \['congestion_surcharge'\]; unexpected columns \['airport_fee'\]"):
        csv_gz_to_parquet(src, tmp_path / "y.parquet", "yellow")
    assert not (tmp_path / "y.parquet").exists()


def test_an_html_page_is_named_as_not_the_expected_csv(tmp_path):
    src = write_gz(tmp_path / "y.csv.gz", "<!DOCTYPE html><html><body>Rate limited</body></html>\n")
    with pytest.raises(SchemaError, match="missing columns"):
        csv_gz_to_parquet(src, tmp_path / "y.parquet", "yellow")


def test_an_html_page_served_instead_of_the_file_is_named_as_such(tmp_path):
    src = tmp_path / "y.csv.gz"
    src.write_text("<!DOCTYPE html><html><body>Not Found</body></html>")
    with pytest.raises(SourceDataError, match="is an HTML/XML page, not a gzip CSV"):
        csv_gz_to_parquet(src, tmp_path / "y.parquet", "yellow")


def test_a_file_that_is_not_gzip(tmp_path):
    src = tmp_path / "y.csv.gz"
    src.write_text(YELLOW_HEADER + "\n")
    with pytest.raises(SourceDataError, match="not a readable gzip"):
        csv_gz_to_parquet(src, tmp_path / "y.parquet", "yellow")


def test_an_empty_file(tmp_path):
    src = write_gz(tmp_path / "y.csv.gz", "")
    with pytest.raises(SourceDataError, match="empty"):
        csv_gz_to_parquet(src, tmp_path / "y.parquet", "yellow")


def test_a_truncated_gzip_fails_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(convert, "ROW_GROUP_ROWS", 1000)  # so some row groups are written before the break
    full = generate("yellow", 2021, 1, 50_000, tmp_path / "full.csv.gz")
    data = full.read_bytes()
    src = tmp_path / "y.csv.gz"
    src.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(SourceDataError, match="y.csv.gz could not be read"):
        csv_gz_to_parquet(src, tmp_path / "y.parquet", "yellow")
    assert not (tmp_path / "y.parquet").exists()


@pytest.mark.parametrize("damage", [
    lambda data: data[:-8] + bytes([data[-8] ^ 1]) + data[-7:],  # the CRC-32 in the trailer
    lambda data: data[:-4] + bytes([data[-4] ^ 1]) + data[-3:],  # the length in the trailer
])
def test_a_gzip_whose_trailer_does_not_match_fails_and_leaves_no_file(tmp_path, damage):
    src = generate("yellow", 2021, 1, 5_000, tmp_path / "y.csv.gz")
    src.write_bytes(damage(src.read_bytes()))
    with pytest.raises(SourceDataError, match=r"y.csv.gz could not be read after [\d,]+ rows .*: BadGzipFile: (CRC check failed|Incorrect length)"):
        csv_gz_to_parquet(src, tmp_path / "y.parquet", "yellow")
    assert not (tmp_path / "y.parquet").exists()


@pytest.mark.parametrize("color, year, month", [("yellow", 2021, 1), ("green", 2020, 1), ("fhv", 2019, 1), ("fhv", 2019, 2)])
def test_generated_months_convert_with_every_row(tmp_path, color, year, month):
    src = generate(color, year, month, 20_000, tmp_path / "m.csv.gz")
    report = csv_gz_to_parquet(src, tmp_path / "m.parquet", color)
    assert report.rows == 20_000
    assert pq.ParquetFile(tmp_path / "m.parquet").metadata.num_rows == 20_000
    assert pq.read_schema(tmp_path / "m.parquet").equals(arrow_schema(color), check_metadata=True)


def test_large_months_are_written_in_bounded_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(convert, "ROW_GROUP_ROWS", 10_000)
    src = generate("yellow", 2021, 2, 60_000, tmp_path / "m.csv.gz")
    csv_gz_to_parquet(src, tmp_path / "m.parquet", "yellow")
    meta = pq.ParquetFile(tmp_path / "m.parquet").metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sum(sizes) == 60_000 and meta.num_row_groups >= 3
    assert max(sizes) < 10_000 + 20_000  # a group never holds much more than the threshold


def test_rows_keep_the_file_order_across_background_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(convert, "ROW_GROUP_ROWS", 3_000)  # many row groups, each encoded in the writer thread
    src = generate("yellow", 2021, 3, 40_000, tmp_path / "m.csv.gz")
    csv_gz_to_parquet(src, tmp_path / "m.parquet", "yellow")
    written = pq.read_table(tmp_path / "m.parquet", columns=["tpep_pickup_datetime", "trip_distance"])
    parsed = pacsv.read_csv(src).select(["tpep_pickup_datetime", "trip_distance"])
    assert pq.ParquetFile(tmp_path / "m.parquet").metadata.num_row_groups >= 5
    assert written.column("trip_distance").equals(parsed.column("trip_distance"))
    assert written.column("tpep_pickup_datetime").to_pylist() == parsed.column("tpep_pickup_datetime").to_pylist()


def test_a_failing_parquet_write_stops_the_conversion_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(convert, "ROW_GROUP_ROWS", 3_000)
    write_table, calls = pq.ParquetWriter.write_table, []

    def full_disk_on_the_third_row_group(self, table, *args, **kwargs):
        calls.append(table.num_rows)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return write_table(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full_disk_on_the_third_row_group)
    src = generate("yellow", 2021, 3, 40_000, tmp_path / "m.csv.gz")
    with pytest.raises(OSError, match="No space left"):
        csv_gz_to_parquet(src, tmp_path / "m.parquet", "yellow")
    assert not (tmp_path / "m.parquet").exists()
    assert len(calls) <= 4  # it stopped at the failure instead of reading the rest of the month


def month_with_row_replaced(tmp_path: Path, rows: int, row: int, change) -> Path:
    """A generated yellow month of ``rows`` rows whose row ``row`` (1-based) is ``change(cells)``."""
    lines = gzip.decompress(generate("yellow", 2021, 1, rows, tmp_path / "g.csv.gz").read_bytes()).decode().split("\n")
    lines[row] = ",".join(change(lines[row].split(",")))
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(gzip.compress("\n".join(lines).encode("utf-8", "surrogateescape")))  # "\udcff": byte 0xFF
    return path


@pytest.mark.parametrize("change, says", [
    (lambda cells: [*cells[:3], "x", *cells[4:]], "line 50,001: column passenger_count holds 'x', which is not int"),
    (lambda cells: [*cells[:3], "1.5", *cells[4:]], "line 50,001: column passenger_count holds '1.5', which is not int"),
    (lambda cells: [*cells[:4], "far", *cells[5:]], "line 50,001: column trip_distance holds 'far', which is not float"),
    (lambda cells: [cells[0], "yesterday", *cells[2:]],
     "line 50,001: column tpep_pickup_datetime holds 'yesterday', which is not timestamp"),
    (lambda cells: cells[:-1], "line 50,001: the row has 17 columns, the header 18"),
    # Arrow's message names no value for these: the line and value are still the true ones.
    (lambda cells: [*cells[:6], "\udcff", *cells[7:]], "line 50,001: column store_and_fwd_flag holds '\\xff'"),
    (lambda cells: [cells[0], "2021-01-05T10:00:00Z", *cells[2:]],
     "line 50,001: column tpep_pickup_datetime holds '2021-01-05T10:00:00Z', which is not timestamp"),
    # Refused for every destination alike: PostgreSQL cannot store a NUL; no trip field is that long.
    (lambda cells: [*cells[:6], "N\x00", *cells[7:]],
     "line 50,001: column store_and_fwd_flag holds 'N\\x00', which is not string (a NUL character"),
    (lambda cells: [*cells[:6], "x" * 200_000, *cells[7:]],
     f"line 50,001: column store_and_fwd_flag holds '{'x' * 80}…' (200,000 bytes), which is not string "
     "(a field over 4,096 bytes"),
    (lambda cells: [*cells[:6], "a|b", "9" * 30, *cells[8:]],
     f"line 50,001: column PULocationID holds '{'9' * 30}', which is not int"),
])
def test_a_bad_value_is_named_with_the_line_of_the_file_it_is_on(tmp_path, change, says):
    """Row 50,000 is line 50,001 (line 1 is the header), in a month read in many batches."""
    src = month_with_row_replaced(tmp_path, 60_000, 50_000, change)
    with pytest.raises(SchemaError) as error:
        csv_gz_to_parquet(src, tmp_path / "y.parquet", "yellow")
    assert str(error.value).startswith(f"bad.csv.gz, {says}")
    assert not (tmp_path / "y.parquet").exists()


def test_integers_are_read_exactly(tmp_path):
    """Not through float64, which rounds above 2**53; fhv's "12.0" is still 12."""
    big = 2**53 + 1
    src = month_with_row_replaced(tmp_path, 1_000, 500, lambda cells: [*cells[:7], str(big), f"{2**62}.0", *cells[9:]])
    csv_gz_to_parquet(src, tmp_path / "y.parquet", "yellow")
    table = pq.read_table(tmp_path / "y.parquet", columns=["PULocationID", "DOLocationID"])
    assert table.column("PULocationID")[499].as_py() == big and table.column("DOLocationID")[499].as_py() == 2**62


def test_line_numbers_count_the_lines_of_quoted_values_and_skip_nothing(tmp_path):
    src = write_gz(tmp_path / "y.csv.gz", YELLOW_HEADER + "\n"
                   '1,2021-01-01 00:30:10,2021-01-01 00:36:12,1,2.10,1,"N\nY",142,43,2,8,3,.5,0,0,.3,11.8,2.5\n'
                   "\n"
                   "1,2021-01-01 00:30:10,2021-01-01 00:36:12,1,2.10,1,N,142,43,2,8,3,.5,0,0,.3,11.8,2.5\n"
                   "1,2021-01-01 00:30:10,2021-01-01 00:36:12,1,2.10,1,N,142,43,two,8,3,.5,0,0,.3,11.8,2.5\n")
    with pytest.raises(SchemaError, match=r"^y.csv.gz, line 6: column payment_type holds 'two', which is not int"):
        csv_gz_to_parquet(src, tmp_path / "y.parquet", "yellow")

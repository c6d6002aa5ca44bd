"""The data profile of a month (``nyctaxi.profile``) and the picture made from it."""
import gzip
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow.parquet as pq
from stack.generator import generate

from artifacts import profile_markdown, trips_per_day_svg
from helpers import pandas_modules_after
from nyctaxi.convert import csv_gz_to_parquet
from nyctaxi.profile import pickup_column, profile
from nyctaxi.schema import columns

YELLOW_ROWS = [
    # VendorID, pickup, dropoff, passenger_count, ... (the course's yellow columns)
    "1,2021-01-01 00:30:10,2021-01-01 00:36:12,1,2.10,1,N,142,43,2,8,3,.5,0,0,.3,11.8,2.5",
    "2,2021-01-01 10:51:20,2021-01-01 10:52:19,0,.20,1,Y,238,151,2,3.00,.50,.50,.00,.00,.30,4.30,.00",
    ",2021-01-31 23:59:00,2021-02-01 00:10:00,,1.00,,,1,265,,9.50,0,0.5,0,0,0.3,12.3,2.5",
    "2,2009-01-01 00:05:00,2009-01-01 00:15:00,1,1.50,1,N,4,5,1,7,0,.5,0,0,.3,8.3,0",
    "2,2021-02-01 00:05:00,2021-02-01 00:15:00,5,1.50,1,N,4,5,1,7,0,.5,0,0,.3,8.3,0",
]


def yellow_month(tmp_path: Path, rows: list[str]) -> Path:
    src = tmp_path / "y.csv.gz"
    src.write_bytes(gzip.compress("\n".join([",".join(columns("yellow")), *rows, ""]).encode()))
    csv_gz_to_parquet(src, tmp_path / "y.parquet", "yellow")
    return tmp_path / "y.parquet"


def test_the_profile_finds_pickups_outside_the_month_and_the_passenger_counts(tmp_path):
    p = profile(yellow_month(tmp_path, YELLOW_ROWS), "yellow", 2021, 1)

    assert p.rows == 5
    assert (p.before_month, p.after_month, p.outside_month, p.pickup_nulls) == (1, 1, 2, 0)
    assert len(p.trips_per_day) == 31 and p.trips_per_day[0] == 2 and p.trips_per_day[30] == 1
    assert sum(p.trips_per_day) == 3
    assert (p.passengers.missing, p.passengers.zero) == (1, 1)
    by_name = {c.name: c for c in p.columns}
    assert [c.name for c in p.columns] == columns("yellow")
    pickup = by_name["tpep_pickup_datetime"]
    assert (pickup.type, str(pickup.min), str(pickup.max)) == ("timestamp[us]", "2009-01-01 00:05:00",
                                                               "2021-02-01 00:05:00")
    assert (by_name["VendorID"].nulls, by_name["VendorID"].min, by_name["VendorID"].max) == (1, 1, 2)
    assert (by_name["store_and_fwd_flag"].nulls, by_name["store_and_fwd_flag"].min) == (1, "N")
    assert by_name["total_amount"].max == 12.3


def test_the_profile_adds_up_over_many_row_groups(tmp_path):
    path = yellow_month(tmp_path, YELLOW_ROWS)
    split = tmp_path / "split.parquet"
    pq.write_table(pq.read_table(path), split, row_group_size=2)  # 3 row groups
    assert pq.ParquetFile(split).num_row_groups == 3
    one, many = profile(path, "yellow", 2021, 1), profile(split, "yellow", 2021, 1)
    assert many == one


def test_fhv_has_no_passenger_findings_and_its_own_pickup_column(tmp_path):
    src = generate("fhv", 2020, 2, 500, tmp_path / "f.csv.gz")
    csv_gz_to_parquet(src, tmp_path / "f.parquet", "fhv")
    p = profile(tmp_path / "f.parquet", "fhv", 2020, 2)
    assert pickup_column("fhv") == "pickup_datetime" and p.pickup_column == "pickup_datetime"
    assert p.passengers is None and len(p.trips_per_day) == 29  # a leap year
    assert sum(p.trips_per_day) + p.outside_month + p.pickup_nulls == p.rows == 500
    assert "passenger_count" not in profile_markdown("fhv", p)


def test_the_markdown_puts_the_findings_before_the_columns(tmp_path):
    text = profile_markdown("yellow", profile(yellow_month(tmp_path, YELLOW_ROWS), "yellow", 2021, 1))
    lines = text.splitlines()
    assert lines[0] == "### yellow 2021-01: data profile"
    assert "Pickups outside 2021-01: **2** (1 before, 1 after" in text
    assert "passenger_count: **1 missing**, 1 zero" in text
    assert lines.index("| column | type | nulls | min | max |") > 3
    assert "| tpep_pickup_datetime | timestamp[us] | 0 | 2009-01-01 00:05:00 | 2021-02-01 00:05:00 |" in lines


def test_the_picture_is_an_svg_with_a_bar_per_day():
    per_day = [100 + day for day in range(31)]
    svg = ET.fromstring(trips_per_day_svg(2021, 1, per_day))
    ns = "{http://www.w3.org/2000/svg}"
    bars = [r for r in svg.iter(f"{ns}rect") if r.find(f"{ns}title") is not None]
    assert len(bars) == 31
    heights = [float(b.get("height")) for b in bars]
    assert heights == sorted(heights) and heights[-1] > heights[0] > 0  # taller with more trips
    assert bars[0].find(f"{ns}title").text == "2021-01-01: 100 trips"
    # 2021-01-02 was a Saturday: weekends are drawn lighter.
    assert bars[1].get("fill") != bars[0].get("fill") == bars[3].get("fill")


def test_profiling_does_not_import_pandas(tmp_path):
    """The profile runs inside ``clean``, whose memory pandas would grow (see test_convert)."""
    path = yellow_month(tmp_path, YELLOW_ROWS)
    code = f"from nyctaxi.profile import profile\nassert profile({str(path)!r}, 'yellow', 2021, 1).rows == 5"
    assert pandas_modules_after(code) == "[]"


def test_a_month_with_no_rows_has_a_profile_that_says_so(tmp_path):
    p = profile(yellow_month(tmp_path, []), "yellow", 2021, 2)
    assert (p.rows, p.outside_month, sum(p.trips_per_day), len(p.trips_per_day)) == (0, 0, 0, 28)
    text = profile_markdown("yellow", p)
    assert "**0 rows**" in text and "Pickups outside 2021-02: **0** (0 before, 0 after)." in text
    assert ET.fromstring(trips_per_day_svg(2021, 2, p.trips_per_day)) is not None  # no division by zero

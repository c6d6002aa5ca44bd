import gzip

import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
from stack.generator import full_rows, generate

from nyctaxi.schema import columns


def read(path):
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True,
                                                                     column_types={}))


def test_same_parameters_give_the_same_bytes(tmp_path):
    a = generate("green", 2020, 3, 5000, tmp_path / "a.csv.gz").read_bytes()
    b = generate("green", 2020, 3, 5000, tmp_path / "b.csv.gz").read_bytes()
    c = generate("green", 2020, 4, 5000, tmp_path / "c.csv.gz").read_bytes()
    assert a == b and a != c


@pytest.mark.parametrize("color", ["yellow", "green", "fhv"])
def test_exact_header_and_row_count(tmp_path, color):
    path = generate(color, 2019, 5, 12_345, tmp_path / "m.csv.gz")
    with gzip.open(path, "rt") as f:
        assert f.readline().rstrip("\n").split(",") == columns(color)
        assert sum(1 for _ in f) == 12_345


def test_full_size_reproduces_known_real_months():
    assert full_rows("yellow", 2021, 1) == 1_369_765
    assert full_rows("green", 2020, 1) == 447_770
    assert full_rows("yellow", 2019, 3) == 7_832_545


def test_yellow_2021_is_faithful(tmp_path):
    path = generate("yellow", 2021, 1, 100_000, tmp_path / "m.csv.gz")
    text = gzip.decompress(path.read_bytes()).decode()
    assert ",.50," in text and ",2.50" in text  # decimals as the TLC writes them
    table = read(path)
    n = table.num_rows
    vendor_missing = table.column("VendorID").null_count / n
    assert 0.06 < vendor_missing < 0.08  # the 2021 tail
    tail = table.slice(int(n * 0.95))
    for name in ("VendorID", "passenger_count", "RatecodeID", "store_and_fwd_flag", "payment_type"):
        assert tail.column(name).null_count == tail.num_rows, name
    zero = pc.sum(pc.equal(table.column("passenger_count"), 0)).as_py() / n
    assert 0.01 < zero < 0.03
    assert set(table.column("store_and_fwd_flag").drop_null().to_pylist()) == {"Y", "N"}
    ids = table.column("PULocationID")
    assert pc.min(ids).as_py() >= 1 and pc.max(ids).as_py() <= 265
    pickup = pc.strftime(table.column("tpep_pickup_datetime"), "%Y-%m").to_pylist()
    inside = pickup.count("2021-01") / n
    assert 0.99 < inside < 1  # a few far outliers
    assert "2009-01" in pickup and "2021-02" in pickup


def test_earlier_years_have_no_empty_tail(tmp_path):
    table = read(generate("yellow", 2019, 1, 20_000, tmp_path / "m.csv.gz"))
    assert table.column("VendorID").null_count == 0


def test_green_ehail_fee_is_empty(tmp_path):
    table = read(generate("green", 2020, 1, 5_000, tmp_path / "m.csv.gz"))
    assert table.column("ehail_fee").null_count == 5_000


def test_fhv_location_ids_are_floats_in_odd_months(tmp_path):
    odd = gzip.decompress(generate("fhv", 2019, 1, 200, tmp_path / "a.csv.gz").read_bytes()).decode()
    even = gzip.decompress(generate("fhv", 2019, 2, 200, tmp_path / "b.csv.gz").read_bytes()).decode()
    assert ".0," in odd and ".0," not in even

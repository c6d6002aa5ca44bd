import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nyctaxi.schema import COLORS, COLUMNS, PANDAS_DTYPES, SchemaError, arrow_schema, check_header, columns

YELLOW = ("VendorID, tpep_pickup_datetime, tpep_dropoff_datetime, passenger_count, trip_distance, "
          "RatecodeID, store_and_fwd_flag, PULocationID, DOLocationID, payment_type, fare_amount, extra, "
          "mta_tax, tip_amount, tolls_amount, improvement_surcharge, total_amount, congestion_surcharge")
GREEN = ("VendorID, lpep_pickup_datetime, lpep_dropoff_datetime, store_and_fwd_flag, RatecodeID, "
         "PULocationID, DOLocationID, passenger_count, trip_distance, fare_amount, extra, mta_tax, "
         "tip_amount, tolls_amount, ehail_fee, improvement_surcharge, total_amount, payment_type, "
         "trip_type, congestion_surcharge")
FHV = "dispatching_base_num, pickup_datetime, dropOff_datetime, PUlocationID, DOlocationID, SR_Flag, Affiliated_base_number"


@pytest.mark.parametrize("color, expected", [("yellow", YELLOW), ("green", GREEN), ("fhv", FHV)])
def test_declared_columns_in_file_order(color, expected):
    assert columns(color) == expected.split(", ")


def test_colors():
    assert COLORS == ("yellow", "green", "fhv")


@pytest.mark.parametrize("color", COLORS)
def test_each_column_has_its_fixed_type(color):
    schema = arrow_schema(color)
    for field in schema:
        name = field.name
        if name.endswith("datetime"):
            assert field.type == pa.timestamp("us"), name
        elif name in {"store_and_fwd_flag", "SR_Flag", "dispatching_base_num", "Affiliated_base_number"}:
            assert field.type == pa.string(), name
        elif name.endswith(("ID", "id", "_count", "_type")) or name in {"VendorID", "RatecodeID"}:
            assert field.type == pa.int64(), name
        else:  # money, distance, ehail_fee
            assert field.type == pa.float64(), name


def test_green_ehail_fee_is_float_and_ids_are_integers():
    schema = arrow_schema("green")
    assert schema.field("ehail_fee").type == pa.float64()
    assert schema.field("trip_type").type == pa.int64()
    assert arrow_schema("fhv").field("PUlocationID").type == pa.int64()


def test_pandas_readers_get_nullable_integers_even_without_nulls(tmp_path):
    schema = arrow_schema("fhv")
    table = pa.table({
        "dispatching_base_num": ["B00001"], "pickup_datetime": pa.array([0], pa.timestamp("us")),
        "dropOff_datetime": pa.array([0], pa.timestamp("us")), "PUlocationID": [12], "DOlocationID": [13],
        "SR_Flag": pa.array([None], pa.string()), "Affiliated_base_number": ["B00002"],
    }, schema=schema)
    pq.write_table(table, tmp_path / "m.parquet")
    df = pd.read_parquet(tmp_path / "m.parquet")
    assert str(df["PUlocationID"].dtype) == "Int64"


def test_header_in_other_order_is_accepted():
    check_header(list(reversed(columns("yellow"))), "yellow")


def test_missing_and_unexpected_columns_are_named():
    header = [c for c in columns("yellow") if c != "congestion_surcharge"] + ["airport_fee"]
    with pytest.raises(SchemaError) as error:
        check_header(header, "yellow", source="yellow_tripdata_2021-01.csv.gz")
    message = str(error.value)
    assert "missing columns ['congestion_surcharge']" in message
    assert "unexpected columns ['airport_fee']" in message
    assert "yellow_tripdata_2021-01.csv.gz" in message


def test_green_file_is_not_a_yellow_file():
    with pytest.raises(SchemaError, match="tpep_pickup_datetime"):
        check_header(columns("green"), "yellow")


def test_duplicated_column_is_named():
    with pytest.raises(SchemaError, match=r"duplicated columns \['extra'\]"):
        check_header(columns("yellow") + ["extra"], "yellow")


@pytest.mark.parametrize("color", COLORS)
def test_the_written_out_pandas_metadata_is_what_pandas_and_pyarrow_make(color):
    """arrow_schema writes pyarrow's pandas metadata itself (so that converting needs no pandas):
    it must stay what pyarrow makes from a DataFrame of the declared dtypes."""
    schema = arrow_schema(color)
    empty = pd.DataFrame({name: pd.Series([], dtype=PANDAS_DTYPES[kind]) for name, kind in COLUMNS[color]})
    made = pa.Table.from_pandas(empty, schema=pa.schema(list(schema)), preserve_index=False).schema
    assert schema.metadata[b"pandas"] == made.metadata[b"pandas"]
    assert schema.equals(made, check_metadata=True)

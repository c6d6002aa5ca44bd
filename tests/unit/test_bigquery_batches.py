import pyarrow as pa
import pyarrow.parquet as pq

from nyctaxi.bigquery import _row_group_runs


def test_row_groups_are_sent_in_runs_of_at_least_the_batch_rows(tmp_path):
    table = pa.table({"n": range(10_500)})
    pq.write_table(table, tmp_path / "m.parquet", row_group_size=1_000)
    runs = _row_group_runs(pq.ParquetFile(tmp_path / "m.parquet").metadata, 2_500)
    assert runs == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10]]  # 3,000 rows each, then the rest (1,500)


def test_a_row_group_bigger_than_the_batch_goes_alone(tmp_path):
    pq.write_table(pa.table({"n": range(5_000)}), tmp_path / "m.parquet", row_group_size=2_000)
    assert _row_group_runs(pq.ParquetFile(tmp_path / "m.parquet").metadata, 1_000) == [[0], [1], [2]]


def test_which_dataset_locations_may_load_a_bucket_s_objects():
    """Google's rule ("Loading Parquet data from Cloud Storage"), as nyctaxi.bigquery checks it first."""
    from nyctaxi.bigquery import can_load

    assert can_load("US", "EUROPE-WEST1") and can_load("US", "us-central1")  # US reads any bucket
    assert can_load("europe-west1", "EUROPE-WEST1") and can_load("EU", "EUROPE-WEST1") and can_load("EU", "EU")
    assert not can_load("EU", "US") and not can_load("EUROPE-WEST1", "EU") and not can_load("US-CENTRAL1", "US")

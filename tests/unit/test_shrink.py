"""The rule before any month is replaced: never with no rows or far fewer, unless asked."""
from __future__ import annotations

import pytest

from nyctaxi.shrink import ShrinkError, check_replacement

FILE = "yellow_tripdata_2021-01.csv.gz"


@pytest.mark.parametrize("loaded", [None, 0, 1_369_765])
def test_a_month_with_no_rows_is_refused_whatever_is_loaded(loaded):
    with pytest.raises(ShrinkError) as refused:
        check_replacement("PostgreSQL table yellow_tripdata", FILE, 0, loaded)
    message = str(refused.value)
    assert FILE in message and "PostgreSQL table yellow_tripdata" in message and "no rows" in message
    assert "allow_shrink=True" in message and "--allow-shrink" in message
    if loaded:
        assert "1,369,765 rows" in message


def test_an_edition_under_half_the_loaded_rows_is_refused_naming_both_counts():
    with pytest.raises(ShrinkError, match=r"has 684,882 rows, less than 50% of the 1,369,765 loaded; .*allow_shrink=True"):
        check_replacement("gs://lake/data/yellow/yellow_tripdata_2021-01.parquet", FILE, 684_882, 1_369_765)


@pytest.mark.parametrize("new, loaded", [(684_883, 1_369_765), (1_369_700, 1_369_765), (1_400_000, 1_369_765),
                                         (5, None), (5, 0)])
def test_a_corrected_edition_a_little_shorter_or_longer_or_a_first_load_passes(new, loaded):
    check_replacement("the lake file x.parquet", FILE, new, loaded)


@pytest.mark.parametrize("new, loaded", [(0, 1_369_765), (10, 1_369_765), (0, None)])
def test_allow_shrink_lets_any_edition_through(new, loaded):
    check_replacement("BigQuery table p.d.yellow_tripdata", FILE, new, loaded, allow_shrink=True)

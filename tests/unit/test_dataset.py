import pytest

from nyctaxi.dataset import ParameterError, TaxiMonth, taxi_months
from nyctaxi.resources import DEFAULT_BASE_URL


def test_course_names_and_default_url(monkeypatch):
    monkeypatch.delenv("NYC_TLC_BASE_URL", raising=False)
    month = TaxiMonth("yellow", 2021, 1)
    assert month.dataset_file == "yellow_tripdata_2021-01"
    assert month.source_file == "yellow_tripdata_2021-01.csv.gz"
    assert month.url() == (
        "https://github.com/DataTalksClub/nyc-tlc-data/releases/download/yellow/yellow_tripdata_2021-01.csv.gz"
    )
    assert DEFAULT_BASE_URL == "https://github.com/DataTalksClub/nyc-tlc-data/releases/download"


def test_base_url_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("NYC_TLC_BASE_URL", "http://mirror.example:8080/releases/")
    assert TaxiMonth("green", 2020, 11).url() == "http://mirror.example:8080/releases/green/green_tripdata_2020-11.csv.gz"


@pytest.mark.parametrize("color, year, month, says", [
    ("purple", 2021, 1, "yellow, green, fhv"),
    ("yellow", 2021, 0, "from 1 to 12"),
    ("yellow", 2021, 13, "from 1 to 12"),
    ("yellow", 1999, 1, "from 2019 to 2021"),
    ("yellow", 2022, 1, "from 2019 to 2021"),
    ("yellow", 2021, 1.5, "whole number"),
    ("yellow", "2021", 1, "2019 to 2021"),
])
def test_bad_parameters_say_what_is_allowed(color, year, month, says):
    with pytest.raises(ParameterError, match=says):
        TaxiMonth(color, year, month)


def test_parent_parameters_are_checked_all_at_once():
    assert [m.month for m in taxi_months([1, 2], 2021, "yellow")] == [1, 2]
    with pytest.raises(ParameterError, match="months is empty"):
        taxi_months([], 2021, "yellow")
    with pytest.raises(ParameterError, match="month 13"):
        taxi_months([1, 13], 2021, "yellow")
    with pytest.raises(ParameterError, match=r"^months lists month 1 more than once \(2 months given\)"):
        taxi_months([1, 1], 2021, "yellow")


def test_an_error_quotes_a_huge_parameter_cut_short():
    with pytest.raises(ParameterError) as error:
        taxi_months([1, 2, 3] * 1700, 2021, "yellow")
    assert str(error.value) == "months lists month 1 more than once (5,100 months given): list each month once"
    with pytest.raises(ParameterError) as error:
        taxi_months([1], 2021, "x" * 100_000)
    assert len(str(error.value)) < 200 and "(100,002 characters)" in str(error.value)

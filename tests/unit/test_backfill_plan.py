"""The backfill's plan: which (colour, month) units still need which destinations."""
import pytest

from nyctaxi.backfill import Unit, check_destinations, months_between, plan
from nyctaxi.dataset import ParameterError, TaxiMonth


def test_a_range_crosses_the_year_and_lists_every_colour():
    taxis = months_between("2019-11", "2020-02", ["yellow", "green"])
    assert [(t.color, t.year, t.month) for t in taxis] == [
        ("yellow", 2019, 11), ("yellow", 2019, 12), ("yellow", 2020, 1), ("yellow", 2020, 2),
        ("green", 2019, 11), ("green", 2019, 12), ("green", 2020, 1), ("green", 2020, 2),
    ]


def test_the_course_backfill_is_31_months_per_colour():
    assert len(months_between("2019-01", "2021-07", ["yellow", "green"])) == 62


@pytest.mark.parametrize("start, end, colors, message", [
    ("2019-1", "2019-02", ["yellow"], "start='2019-1' is not a month: write it as YYYY-MM"),
    ("2019-01", "2019-13", ["yellow"], "end='2019-13' is not a month"),
    ("2020-03", "2020-01", ["yellow"], "is after end="),
    ("2019-01", "2019-02", ["purple"], "color 'purple' is not one of"),
    ("2019-01", "2019-02", [], "colors is empty"),
    ("2019-01", "2019-02", ["green", "green"], "lists a colour twice"),
    ("2018-12", "2019-02", ["yellow"], "year 2018 is outside the published range"),
])
def test_bad_ranges_say_what_to_fix(start, end, colors, message):
    with pytest.raises(ParameterError, match=message):
        months_between(start, end, colors)


def test_unknown_destination_is_an_error():
    with pytest.raises(ParameterError, match=r"drawn from \['lake', 'bigquery', 'postgres'\]"):
        check_destinations(["lake", "redshift"])
    assert check_destinations(["postgres", "lake"]) == ["lake", "postgres"]


JAN, FEB, MAR = (TaxiMonth("yellow", 2021, m) for m in (1, 2, 3))
PUBLISHED = {JAN: "v1", FEB: "v1", MAR: "v2"}


def test_months_loaded_from_the_current_edition_are_skipped_and_the_rest_run():
    loaded = {
        "lake": {JAN: "v1", FEB: "v1", MAR: "v1"},          # March was republished since
        "postgres": {JAN: "v1", MAR: "v1"},                  # February never reached Postgres
    }
    units = plan([JAN, FEB, MAR], ["lake", "postgres"], PUBLISHED, loaded)
    assert units == [Unit(FEB, ("postgres",)), Unit(MAR, ("lake", "postgres"))]


def test_bigquery_loads_from_the_lake_so_a_stale_lake_object_is_redone_first():
    loaded = {"lake": {JAN: "v1"}, "bigquery": {}}
    units = plan([JAN, FEB], ["bigquery"], PUBLISHED, loaded)
    assert units == [Unit(JAN, ("bigquery",)), Unit(FEB, ("lake", "bigquery"))]


def test_a_load_without_a_recorded_version_is_not_trusted():
    assert plan([JAN], ["postgres"], PUBLISHED, {"postgres": {JAN: None}}) == [Unit(JAN, ("postgres",))]

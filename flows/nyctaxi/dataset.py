"""Which month of which colour: validated flow parameters and the names derived from them."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .resources import BASE_URL_ENV, setting
from .schema import COLORS

# The years the DataTalksClub release publishes (yellow and green 2019-01 ... 2021-07,
# fhv 2019 ... 2021). A month inside these years that is not published is reported
# by the download (404), not here.
FIRST_YEAR, LAST_YEAR = 2019, 2021


class ParameterError(ValueError):
    """A flow parameter is outside what the data source publishes."""


def base_url() -> str:
    """The release base URL: ``$NYC_TLC_BASE_URL`` (a mirror, the local stack) or GitHub."""
    return setting(BASE_URL_ENV).rstrip("/")


@dataclass(frozen=True)
class TaxiMonth:
    """One month of one colour; construction validates it."""

    color: str
    year: int
    month: int

    def __post_init__(self) -> None:
        check_color(self.color)
        check_year(self.year)
        check_month(self.month)

    @property
    def dataset_file(self) -> str:
        """The course's ``dataset_file``: ``yellow_tripdata_2021-01``."""
        return f"{self.color}_tripdata_{self.year_month}"

    @property
    def source_file(self) -> str:
        """The release file's name, ``yellow_tripdata_2021-01.csv.gz``: what loaded rows record as their lineage."""
        return source_file_of(self.dataset_file)

    @property
    def year_month(self) -> str:
        """``2021-01``."""
        return f"{self.year}-{self.month:02}"

    @classmethod
    def of(cls, dataset_file: str) -> TaxiMonth:
        """The month a ``dataset_file`` (``yellow_tripdata_2021-01``) holds."""
        color, _, year_month = dataset_file.partition("_tripdata_")
        year, _, month = year_month.partition("-")
        return cls(color, int(year), int(month))

    def url(self, base: str | None = None) -> str:
        """``{base}/{color}/{color}_tripdata_{year}-{MM}.csv.gz``."""
        return f"{(base or base_url()).rstrip('/')}/{self.color}/{self.source_file}"


def source_file_of(dataset_file: str) -> str:
    """The release file of a ``dataset_file``: ``yellow_tripdata_2021-01`` -> ``yellow_tripdata_2021-01.csv.gz``."""
    return f"{dataset_file}.csv.gz"


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters: a parameter can be of any size."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def check_color(color: object) -> None:
    if color not in COLORS:
        raise ParameterError(f"color {shown(color)} is not one of {', '.join(COLORS)}")


def check_year(year: object) -> None:
    if isinstance(year, bool) or not isinstance(year, int) or not FIRST_YEAR <= year <= LAST_YEAR:
        raise ParameterError(
            f"year {shown(year)} is outside the published range: use a year from {FIRST_YEAR} to {LAST_YEAR}"
        )


def check_month(month: object) -> None:
    if isinstance(month, bool) or not isinstance(month, int) or not 1 <= month <= 12:
        raise ParameterError(f"month {shown(month)} is not a month: use a whole number from 1 to 12")


def taxi_months(months: list[int], year: int, color: str) -> list[TaxiMonth]:
    """Validate the parent flow's parameters all at once, before any month runs."""
    if not months:
        raise ParameterError("months is empty: give at least one month from 1 to 12, e.g. months=[1, 2]")
    if len(set(months)) != len(months):
        twice = next(month for month, n in Counter(months).items() if n > 1)
        raise ParameterError(f"months lists month {shown(twice)} more than once ({len(months):,} months given): "
                             "list each month once")
    return [TaxiMonth(color, year, month) for month in months]

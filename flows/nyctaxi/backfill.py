"""What a backfill has to do: the months of a range, and which destinations each still needs.

A month is done in a destination when the destination's own lineage says it holds
that month's release file in the edition published now (``source.version_from_headers``):
the lake object's metadata, the ``nyc_tlc_loads`` table in BigQuery and in PostgreSQL.
Nothing local is consulted, so a backfill cut short anywhere is finished by running it
again on any machine.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .dataset import ParameterError, TaxiMonth, check_color, shown

DESTINATIONS = ("lake", "bigquery", "postgres")
_YEAR_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_year_month(value: str, name: str) -> tuple[int, int]:
    """``"2019-01"`` -> ``(2019, 1)``, with a clear error for anything else."""
    match = _YEAR_MONTH.match(str(value))
    if not match or not 1 <= int(match[2]) <= 12:
        raise ParameterError(f"{name}={shown(value)} is not a month: write it as YYYY-MM, e.g. {name}=\"2019-01\"")
    return int(match[1]), int(match[2])


def months_between(start: str, end: str, colors: Iterable[str]) -> list[TaxiMonth]:
    """Every (colour, month) from ``start`` to ``end`` inclusive, validated, colour by colour."""
    colors = list(colors)
    if not colors:
        raise ParameterError("colors is empty: give at least one of yellow, green, fhv")
    for color in colors:
        check_color(color)
    if len(set(colors)) != len(colors):
        raise ParameterError(f"colors {shown(colors)} lists a colour twice: list each once")
    first, last = parse_year_month(start, "start"), parse_year_month(end, "end")
    if first > last:
        raise ParameterError(f"start={shown(start)} is after end={shown(end)}: swap them")
    months = []
    year, month = first
    while (year, month) <= last:
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return [TaxiMonth(color, y, m) for color in colors for y, m in months]


def check_destinations(destinations: Iterable[str]) -> list[str]:
    """The destinations asked for, in pipeline order; unknown names are an error."""
    asked = list(destinations)
    unknown = [d for d in asked if d not in DESTINATIONS]
    if unknown or not asked:
        raise ParameterError(f"destinations {shown(asked)} must be a non-empty list drawn from {list(DESTINATIONS)}")
    return [d for d in DESTINATIONS if d in asked]


@dataclass(frozen=True)
class Unit:
    """One (colour, month) and the destinations it still needs, in pipeline order."""

    taxi: TaxiMonth
    destinations: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.month} -> {', '.join(self.destinations)}"

    @property
    def month(self) -> str:
        """``yellow 2021-01``: a backfill's name for the unit's month."""
        return f"{self.taxi.color} {self.taxi.year_month}"


def plan(taxis: Iterable[TaxiMonth], destinations: Iterable[str], published: Mapping[TaxiMonth, str],
         loaded: Mapping[str, Mapping[TaxiMonth, str | None]]) -> list[Unit]:
    """The units still to run.

    ``published[taxi]`` is the version of the release file now; ``loaded[destination][taxi]``
    the version that destination recorded (absent: never loaded). BigQuery loads from the
    lake object, so a month BigQuery needs also gets the lake when its object is not current.
    """
    wanted = check_destinations(destinations)
    units = []
    for taxi in taxis:
        current = published[taxi]
        todo = {d for d in wanted if loaded.get(d, {}).get(taxi) != current}
        if "bigquery" in todo and loaded.get("lake", {}).get(taxi) != current:
            todo.add("lake")
        if todo:
            units.append(Unit(taxi, tuple(d for d in DESTINATIONS if d in todo)))
    return units

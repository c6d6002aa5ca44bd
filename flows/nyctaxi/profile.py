"""What a month of data looks like: a profile of a lake file, for people to read.

Per column its type, nulls, min and max (from the parquet statistics, no data read); the rows
whose pickup falls outside the file's month (the TLC files carry some, e.g. 2009 pickups in
yellow 2021-01); trips per day of the month; the course's ``passenger_count`` findings.
One pass over two columns, a row group at a time: bounded memory on any month, and no pandas.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .convert import PassengerCounts
from .schema import kinds

_US_PER_DAY = 86_400 * 1_000_000
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    type: str
    nulls: int
    min: object = None
    max: object = None


@dataclass
class Profile:
    """The profile of one month's lake file (``profile``)."""

    year: int
    month: int
    rows: int
    columns: list[ColumnProfile]
    pickup_column: str
    # Rows whose pickup is before the month's first day or after its last; pickups that are null.
    before_month: int = 0
    after_month: int = 0
    pickup_nulls: int = 0
    trips_per_day: list[int] = field(default_factory=list)  # [0] is the 1st of the month
    passengers: PassengerCounts | None = None  # None for fhv, which has no passenger_count

    @property
    def outside_month(self) -> int:
        return self.before_month + self.after_month


def pickup_column(color: str) -> str:
    """The pickup time's column: ``tpep_pickup_datetime`` (yellow), ``lpep_...`` (green), ``pickup_datetime`` (fhv)."""
    return next(name for name in kinds(color) if name.endswith("pickup_datetime"))


def _micros(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1)


def _int64s(column: pa.ChunkedArray) -> np.ndarray:
    """The values of an int64 column without nulls, as numpy sees its buffers. Not ``to_numpy()``, nor
    comparisons with Python values: both make pyarrow import pandas (see convert.PassengerCounts)."""
    parts = [np.frombuffer(c.buffers()[1], dtype=np.int64)[c.offset:c.offset + len(c)] for c in column.chunks]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def profile(path: Path, color: str, year: int, month: int) -> Profile:
    """Profile the lake file ``path`` of ``color`` for ``year``-``month``."""
    parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    pickup = pickup_column(color)
    days = calendar.monthrange(year, month)[1]
    start = _micros(datetime(year, month, 1))
    end = start + days * _US_PER_DAY
    per_day = np.zeros(days, dtype=np.int64)
    nulls = [0] * len(schema)
    lows: list[object] = [None] * len(schema)
    highs: list[object] = [None] * len(schema)
    wanted = [pickup] + (["passenger_count"] if "passenger_count" in schema.names else [])
    result = Profile(year, month, parquet.metadata.num_rows, [], pickup,
                     passengers=PassengerCounts() if len(wanted) > 1 else None)

    for i in range(parquet.num_row_groups):
        group = parquet.metadata.row_group(i)
        for j in range(len(schema)):
            stats = group.column(j).statistics
            if stats is None:
                continue
            nulls[j] += stats.null_count
            if stats.has_min_max:
                lows[j] = stats.min if lows[j] is None else min(lows[j], stats.min)
                highs[j] = stats.max if highs[j] is None else max(highs[j], stats.max)
        table = parquet.read_row_group(i, columns=wanted)
        times = table.column(pickup)
        result.pickup_nulls += times.null_count
        values = _int64s(times.drop_null().cast("int64"))
        result.before_month += int(np.count_nonzero(values < start))
        result.after_month += int(np.count_nonzero(values >= end))
        inside = values[(values >= start) & (values < end)]
        per_day += np.bincount((inside - start) // _US_PER_DAY, minlength=days)
        if result.passengers is not None:
            result.passengers.add(table.column("passenger_count"))

    result.columns = [ColumnProfile(f.name, str(f.type), nulls[j], lows[j], highs[j]) for j, f in enumerate(schema)]
    result.trips_per_day = per_day.tolist()
    return result

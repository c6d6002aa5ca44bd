"""Deterministic TLC-format csv.gz for yellow, green and fhv, any year and month.

Faithful to the real release files where the pipeline cares: the exact headers;
integers as plain ints; decimals as the TLC writes them (``2.10``, ``.20``);
``store_and_fwd_flag`` Y/N; about 2 % zero ``passenger_count``; in yellow/green
2021 months a tail of about 7 % of rows with ``VendorID``, ``passenger_count``,
``RatecodeID``, ``store_and_fwd_flag`` and ``payment_type`` empty; pickups mostly
inside the month with a few far outliers (2009, next month); location ids
1-265; green ``ehail_fee`` empty; fhv location ids written as floats (``12.0``)
in odd months and as ints in even months.

The same (colour, year, month, rows) always gives the same bytes. Columns are
built and formatted with numpy/pyarrow a chunk at a time, so a full 7.8 M-row
month takes seconds of CPU per million rows and little memory.
"""
from __future__ import annotations

import argparse
import calendar
import gzip
import os
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nyctaxi.schema import COLORS, columns

# Row counts of real months, reproduced by rows="full".
KNOWN_ROWS = {
    ("yellow", 2019, 2): 7_019_375,
    ("yellow", 2019, 3): 7_832_545,
    ("yellow", 2021, 1): 1_369_765,
    ("green", 2020, 1): 447_770,
    ("green", 2020, 11): 88_605,
}
# Typical month sizes for the months not listed above (rows="full").
TYPICAL_ROWS = {
    ("yellow", 2019): 7_500_000, ("yellow", 2020): 2_000_000, ("yellow", 2021): 2_000_000,
    ("green", 2019): 550_000, ("green", 2020): 150_000, ("green", 2021): 80_000,
    ("fhv", 2019): 1_800_000, ("fhv", 2020): 1_000_000, ("fhv", 2021): 1_100_000,
}
CHUNK_ROWS = 250_000
TAIL_FRACTION = 0.07
LOCATIONS = 265


def full_rows(color: str, year: int, month: int) -> int:
    """The row count of a full-size month: the real count where known, else a typical one."""
    if (color, year, month) in KNOWN_ROWS:
        return KNOWN_ROWS[(color, year, month)]
    typical = TYPICAL_ROWS.get((color, year), 1_000_000)
    return int(typical * (0.85 + 0.3 * _rng(color, year, month, -1).random()))


def resolve_rows(color: str, year: int, month: int, rows: int | str) -> int:
    """``rows`` as a number: an int, a digit string, or "full"."""
    if rows == "full":
        return full_rows(color, year, month)
    return int(rows)


def generate(color: str, year: int, month: int, rows: int | str, dest: Path) -> Path:
    """Write the month as csv.gz to ``dest`` (atomically) and return ``dest``."""
    if color not in COLORS:
        raise ValueError(f"unknown color {color!r}: use one of {COLORS}")
    n = resolve_rows(color, year, month, rows)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        # No name and mtime=0 in the gzip header: identical bytes on every run.
        with open(tmp, "wb") as raw, \
                gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0) as out:
            out.write((",".join(columns(color)) + "\n").encode())
            for start in range(0, n, CHUNK_ROWS):
                out.write(_chunk_text(color, year, month, start, min(CHUNK_ROWS, n - start), n))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _rng(color: str, year: int, month: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng([COLORS.index(color), year, month, chunk + 1])


def _chunk_text(color: str, year: int, month: int, start: int, n: int, total: int) -> bytes:
    rng = _rng(color, year, month, start // CHUNK_ROWS)
    cols = {"yellow": _yellow, "green": _green, "fhv": _fhv}[color](rng, year, month, n)
    if color != "fhv" and year == 2021:
        # The real 2021 files end with rows whose vendor/passenger/rate/payment fields are empty.
        tail_start = int(total * (1 - TAIL_FRACTION))
        tail = np.arange(start, start + n) >= tail_start
        if tail.any():
            for name in ("VendorID", "passenger_count", "RatecodeID", "store_and_fwd_flag", "payment_type"):
                cols[name] = pc.if_else(pa.array(tail), pa.scalar(None, pa.string()), cols[name])
    ordered = [pc.fill_null(cols[name], "") for name in columns(color)]
    lines = pc.binary_join_element_wise(*ordered, ",")
    return ("\n".join(lines.to_pylist()) + "\n").encode()


# --- column builders: each returns pyarrow string arrays -------------------------------------

def _ints(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _floats_as_ids(values: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(_ints(values), pa.scalar(".0"), "")


def _money(cents: np.ndarray) -> pa.Array:
    """Cents as the TLC writes them: ``2.10``, ``.20``, ``-3.50``."""
    sign = np.where(cents < 0, "-", "")
    whole, frac = np.divmod(np.abs(cents), 100)
    whole_text = pc.if_else(pa.array(whole == 0), "", _ints(whole))
    frac_text = pc.utf8_lpad(_ints(frac), width=2, padding="0")
    return pc.binary_join_element_wise(pa.array(sign), whole_text, pa.scalar("."), frac_text, "")


def _choice(rng: np.random.Generator, options: list, p: list[float], n: int) -> np.ndarray:
    return rng.choice(np.array(options), size=n, p=np.array(p) / sum(p))


def _epoch(year: int, month: int) -> int:
    """Seconds since 1970 of the month's first midnight, independent of the local time zone."""
    return calendar.timegm((year, month, 1, 0, 0, 0))


def _times(rng: np.random.Generator, year: int, month: int, n: int) -> tuple[pa.Array, pa.Array]:
    """Pickup and dropoff text; pickups inside the month but for ~0.05 % far outliers."""
    start = _epoch(year, month)
    seconds = calendar.monthrange(year, month)[1] * 86_400
    pickup = start + rng.integers(0, seconds, size=n)
    outliers = rng.random(n) < 0.0005
    next_month = _epoch(year + (month == 12), month % 12 + 1)
    far = np.where(rng.random(n) < 0.5, _epoch(2009, 1), next_month)
    pickup = np.where(outliers, far + rng.integers(0, 86_400, size=n), pickup)
    dropoff = pickup + np.clip(rng.exponential(900, size=n), 60, 4 * 3600).astype(np.int64)

    def text(epoch: np.ndarray) -> pa.Array:
        return pc.strftime(pa.array(epoch.astype("datetime64[s]")), format="%Y-%m-%d %H:%M:%S")

    return text(pickup), text(dropoff)


def _trips(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """The fields yellow and green share, as numbers (money in cents)."""
    distance = np.round(rng.gamma(1.6, 1.9, size=n) * 100).astype(np.int64)
    fare = 250 + (distance * 2.5).astype(np.int64) + rng.integers(0, 300, size=n)
    payment = _choice(rng, [1, 2, 3, 4], [70, 27, 2, 1], n)
    tip = np.where(payment == 1, (fare * rng.uniform(0.1, 0.3, size=n)).astype(np.int64), 0)
    extra = _choice(rng, [0, 50, 100, 250, 300], [30, 35, 15, 15, 5], n)
    mta = _choice(rng, [50, 0], [98, 2], n)
    tolls = np.where(rng.random(n) < 0.05, 612, 0)
    improvement = np.full(n, 30)
    congestion = _choice(rng, [250, 0], [90, 10], n)
    passengers = _choice(rng, [0, 1, 2, 3, 4, 5, 6], [2, 70, 14, 4, 3, 4, 3], n)
    return {
        "VendorID": _choice(rng, [1, 2], [35, 65], n),
        "passenger_count": passengers,
        "trip_distance": distance,
        "RatecodeID": _choice(rng, [1, 2, 3, 4, 5, 99], [96, 2, 0.5, 0.5, 0.9, 0.1], n),
        "store_and_fwd_flag": _choice(rng, ["N", "Y"], [99, 1], n),
        "PULocationID": rng.integers(1, LOCATIONS + 1, size=n),
        "DOLocationID": rng.integers(1, LOCATIONS + 1, size=n),
        "payment_type": payment,
        "fare_amount": fare,
        "extra": extra,
        "mta_tax": mta,
        "tip_amount": tip,
        "tolls_amount": tolls,
        "improvement_surcharge": improvement,
        "total_amount": fare + extra + mta + tip + tolls + improvement + congestion,
        "congestion_surcharge": congestion,
    }


_MONEY = {"trip_distance", "fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount",
          "improvement_surcharge", "total_amount", "congestion_surcharge"}


def _as_text(values: dict[str, np.ndarray]) -> dict[str, pa.Array]:
    out = {}
    for name, v in values.items():
        if name in _MONEY:
            out[name] = _money(v)
        elif v.dtype.kind in "iu":
            out[name] = _ints(v)
        else:
            out[name] = pa.array(v.astype(str))
    return out


def _yellow(rng: np.random.Generator, year: int, month: int, n: int) -> dict[str, pa.Array]:
    cols = _as_text(_trips(rng, n))
    cols["tpep_pickup_datetime"], cols["tpep_dropoff_datetime"] = _times(rng, year, month, n)
    return cols


def _green(rng: np.random.Generator, year: int, month: int, n: int) -> dict[str, pa.Array]:
    cols = _as_text(_trips(rng, n))
    cols["lpep_pickup_datetime"], cols["lpep_dropoff_datetime"] = _times(rng, year, month, n)
    cols["ehail_fee"] = pa.nulls(n, pa.string())
    cols["trip_type"] = _ints(_choice(rng, [1, 2], [97, 3], n))
    return cols


def _fhv(rng: np.random.Generator, year: int, month: int, n: int) -> dict[str, pa.Array]:
    bases = np.array([f"B{b:05d}" for b in rng.integers(1, 3500, size=400)])
    ids = _floats_as_ids if month % 2 else _ints
    cols = {
        "dispatching_base_num": pa.array(bases[rng.integers(0, len(bases), size=n)]),
        "SR_Flag": pc.if_else(pa.array(rng.random(n) < 0.05), "1", pa.scalar(None, pa.string())),
        "Affiliated_base_number": pa.array(bases[rng.integers(0, len(bases), size=n)]),
    }
    cols["pickup_datetime"], cols["dropOff_datetime"] = _times(rng, year, month, n)
    for name in ("PUlocationID", "DOlocationID"):
        missing = pa.array(rng.random(n) < 0.2)
        cols[name] = pc.if_else(missing, pa.scalar(None, pa.string()), ids(rng.integers(1, LOCATIONS + 1, size=n)))
    return cols


def main() -> None:
    parser = argparse.ArgumentParser(description="Generate one TLC-format month as csv.gz.")
    parser.add_argument("color", choices=COLORS)
    parser.add_argument("year", type=int)
    parser.add_argument("month", type=int)
    parser.add_argument("--rows", default="full", help='row count, or "full" for the real month\'s size')
    parser.add_argument("--out", type=Path, help="output file (default: ./{color}_tripdata_{year}-{MM}.csv.gz)")
    args = parser.parse_args()
    out = args.out or Path(f"{args.color}_tripdata_{args.year}-{args.month:02}.csv.gz")
    generate(args.color, args.year, args.month, args.rows, out)
    print(out)


if __name__ == "__main__":
    main()

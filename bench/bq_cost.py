"""What loading months into BigQuery costs on-demand: an estimate, from Google's published rules and
prices and the bytes each statement of a load reads (docs/real-gcp.md quotes its output).

    python bench/bq_cost.py            # a month, and the 62-month backfill (yellow and green 2019-01..2021-07)

Google's rules used ("BigQuery pricing", "Data size calculation", "DML pricing", read 2026-12):
on-demand queries cost $6.25 per TiB processed, the first TiB of each month free; every query is
billed at least 10 MB per table it references; INT64, FLOAT64, DATETIME and DATE are 8 bytes, a
STRING 2 bytes plus its UTF-8 length, a NULL 0; loading (the load jobs) and copies are free; a DELETE
is billed every column of the partitions it scans (of the whole table, when it is not partitioned),
an INSERT ... SELECT the columns it reads.

Row counts are the stack generator's full-size months (the real count where known, else a typical
one); every value is counted as non-null: an upper bound.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "flows")]

from stack.generator import full_rows  # noqa: E402

from nyctaxi.schema import COLUMNS  # noqa: E402

PRICE_PER_TIB = 6.25
MIN_BYTES = 10 * 2**20  # per table referenced
TIB = 2**40
# Typical lengths of the string values (store_and_fwd_flag "N", base numbers "B02510").
STRING_LENGTHS = {"store_and_fwd_flag": 1, "dispatching_base_num": 6, "SR_Flag": 1, "Affiliated_base_number": 6}


def staged_row_bytes(color: str) -> int:
    """A row of the staging table: the declared columns."""
    return sum(2 + STRING_LENGTHS.get(name, 8) if kind == "string" else 8 for name, kind in COLUMNS[color])


def table_row_bytes(color: str) -> int:
    """A row of the colour's table: the declared columns, source_file (STRING) and source_month (DATE)."""
    return staged_row_bytes(color) + 2 + len(f"{color}_tripdata_2019-01.csv.gz") + 8


def billed(*scanned: float) -> float:
    """A statement's bytes: what it scans of each table it references, 10 MB at least each."""
    return sum(max(MIN_BYTES, b) for b in scanned)


@dataclass
class Load:
    """The bytes one month's load is billed, given what the colour's table held before it."""

    color: str
    rows: int
    table_rows_before: int  # of every month, this one's earlier edition included
    reload: bool = False     # the month is in the table already

    def bytes(self, partitioned: bool) -> float:
        row, staged = table_row_bytes(self.color), staged_row_bytes(self.color)
        lineage = 2 + len(f"{self.color}_tripdata_2019-01.csv.gz") + (8 if partitioned else 0)
        # What the month's counts and DELETE read: its partition, or every row of the table.
        before = (self.rows if self.reload else 0) if partitioned else self.table_rows_before
        after = self.rows if partitioned else self.table_rows_before - (self.rows if self.reload else 0) + self.rows
        counts = billed(before * lineage) + billed(after * lineage)  # the shrink check; the count after the swap
        delete = billed(before * row)
        insert = billed(self.rows * staged)                    # INSERT ... SELECT from the staging table
        loads = 2 * billed(0)                                  # nyc_tlc_loads: DELETE and INSERT
        return counts + delete + insert + loads + billed(0)    # + COUNT(*) of the staging table


def backfill(colors=("yellow", "green"), start=(2019, 1), end=(2021, 7)) -> list[Load]:
    loads = []
    for color in colors:
        held, (year, month) = 0, start
        while (year, month) <= end:
            rows = full_rows(color, year, month)
            loads.append(Load(color, rows, held))
            held += rows
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return loads


def dollars(b: float) -> str:
    return f"${b / TIB * PRICE_PER_TIB:,.2f}"


def main() -> None:
    loads = backfill()
    print("| | billed, unpartitioned (before) | billed, partitioned by month (now) |\n|---|---|---|")
    for label, chosen in [
        ("one month: yellow 2021-01 into an empty table", [Load("yellow", full_rows("yellow", 2021, 1), 0)]),
        ("one month: yellow 2021-07 reloaded, the backfill's 31 yellow months in the table",
         [Load("yellow", full_rows("yellow", 2021, 7), sum(x.rows for x in loads if x.color == "yellow"), True)]),
        ("the 62-month backfill (yellow and green 2019-01..2021-07) into empty tables", loads),
        ("the 62-month backfill again, every month reloaded",
         [Load(x.color, x.rows, sum(y.rows for y in loads if y.color == x.color), True) for x in loads]),
    ]:
        before = sum(x.bytes(partitioned=False) for x in chosen)
        after = sum(x.bytes(partitioned=True) for x in chosen)
        print(f"| {label} | {before / 2**30:,.1f} GiB, {dollars(before)} "
              f"| {after / 2**30:,.1f} GiB, {dollars(after)} |")
    print(f"\n{sum(x.rows for x in loads):,} rows in the backfill; rows of {table_row_bytes('yellow')} (yellow) and "
          f"{table_row_bytes('green')} (green) bytes; ${PRICE_PER_TIB} per TiB, the first TiB of a month free.")


if __name__ == "__main__":
    main()

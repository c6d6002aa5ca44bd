"""The flow scripts' command lines: every option's default and allowed values in --help, a bad value
refused in one line before Prefect starts."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "flows" / name), *args], capture_output=True, text=True,
                          timeout=120)


def test_help_shows_each_option_with_its_default_and_allowed_values():
    shown = " ".join(script("etl_web_to_gcs.py", "--help").stdout.split())
    for option in ("--month 1..12 the month (default: 1)", "--year 2019..2021 the year (default: 2021)",
                   "--color {yellow,green,fhv} the taxi colour (default: yellow)", "--allow-shrink"):
        assert option in shown


@pytest.mark.parametrize("name, args, says", [
    ("etl_web_to_gcs.py", ["--month", "13"], "argument --month: invalid choice: 13"),
    ("parameterized_flow.py", ["--months", "1", "0"], "argument --months: invalid choice: 0"),
    ("etl_gcs_to_bq.py", ["--color", "purple"], "argument --color: invalid choice: 'purple'"),
    ("etl_web_to_postgres.py", ["--year", "1999"], "argument --year: invalid choice: 1999"),
    ("etl_backfill.py", ["--colors", "yellow", "blue"], "argument --colors: invalid choice: 'blue'"),
])
def test_a_bad_value_is_refused_in_one_line_before_prefect_starts(name, args, says):
    result = script(name, *args)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"{name}: {says} (choose from ") and line.endswith(" (see --help)")
    assert result.stdout == ""

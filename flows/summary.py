"""The short, human-readable record each flow run leaves in the Prefect UI."""
from __future__ import annotations

from pathlib import Path

from prefect.artifacts import create_markdown_artifact


def record_month(*, color: str, year: int, month: int, url: str, rows_read: int, rows_written: int,
                 path: Path, uri: str) -> None:
    """A markdown artifact, keyed by month so re-runs show up as its history."""
    create_markdown_artifact(
        key=f"{color}-tripdata-{year}-{month:02}",
        description=f"{color} {year}-{month:02}: web -> lake -> GCS",
        markdown="\n".join([
            f"### {color} taxi trips {year}-{month:02}",
            "",
            "| | |",
            "|---|---|",
            f"| source | {url} |",
            f"| rows read | {rows_read:,} |",
            f"| rows written | {rows_written:,} |",
            f"| local file | `{path}` |",
            f"| object | `{uri}` |",
        ]),
    )

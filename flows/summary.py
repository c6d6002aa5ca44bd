"""The short, human-readable record each flow run leaves in the Prefect UI."""
from __future__ import annotations

from prefect.artifacts import create_markdown_artifact


def record_month(destination: str, color: str, year: int, month: int, facts: dict[str, object]) -> None:
    """A markdown table artifact keyed ``{destination}-{color}-{year}-{MM}``, so re-runs show as its history."""
    def cell(value: object) -> str:
        return f"{value:,}" if isinstance(value, int) else f"`{value}`"

    create_markdown_artifact(
        key=f"{destination}-{color}-{year}-{month:02}",
        description=f"{color} {year}-{month:02} -> {destination}",
        markdown="\n".join([
            f"### {color} taxi trips {year}-{month:02} -> {destination}",
            "",
            "| | |",
            "|---|---|",
            *(f"| {name} | {cell(value)} |" for name, value in facts.items()),
        ]),
    )

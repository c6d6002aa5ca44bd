"""What the flow runs leave in the Prefect UI (artifacts), beside their logs.

- each month and destination: a small table of what was loaded (``record_month``);
- each month converted: its data profile and a picture of its trips per day (``record_profile``);
- the parent flow and the backfill: an overview of months x destinations, updated as months
  finish (``Overview``);
- a failed run: the reason first (``record_failure``, a state hook in ``run_hooks``).
"""
from __future__ import annotations

import base64
import calendar
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactCreate

from nyctaxi import markdown
from nyctaxi.profile import Profile

# What Prefect puts before the exception in a failed flow or task run's state message.
_FAILED_PREAMBLE = re.compile(r"^(Flow|Task) run encountered an exception[.:]? ")  # 2.20 ". ", 3.x ": "


def failure_reason(state) -> str:
    """A failed state's message without Prefect's preamble: the exception's type and message."""
    return _FAILED_PREAMBLE.sub("", state.message or state.name)


def _cell(value: object) -> str:
    """A value as a table shows it: thousands separated, floats to cents, times to the second."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value + 0.0:,.2f}"  # + 0.0: parquet statistics write a zero minimum as -0.0
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    return str(value)


def _key(*parts: object) -> str:
    """An artifact key: lowercase letters, digits and dashes only."""
    return "-".join(str(p) for p in parts).lower().replace("_", "-")


def record_month(destination: str, color: str, year: int, month: int, facts: dict[str, object]) -> None:
    """A markdown table artifact keyed ``{destination}-{color}-{year}-{MM}``, so re-runs show as its history."""
    create_markdown_artifact(
        key=_key(destination, color, year, f"{month:02}"),
        description=f"{color} {year}-{month:02} -> {destination}",
        markdown="\n".join([
            f"### {color} taxi trips {year}-{month:02} -> {destination}",
            "",
            "| | |",
            "|---|---|",
            *(f"| {name} | {markdown.text(_cell(value))} |"
              for name, value in facts.items()),
        ]),
    )


# --- a month's data -------------------------------------------------------------------------

def profile_markdown(color: str, p: Profile) -> str:
    """The profile as markdown: the findings first, then a line per column."""
    month = f"{p.year}-{p.month:02}"
    pickup = next(c for c in p.columns if c.name == p.pickup_column)
    lines = [f"### {color} {month}: data profile", "",
             f"- **{p.rows:,} rows**, {len(p.columns)} columns.",
             f"- Pickups outside {month}: **{p.outside_month:,}** ({p.before_month:,} before, "
             f"{p.after_month:,} after"
             + (f"; pickups range from {_cell(pickup.min)} to {_cell(pickup.max)})" if p.rows else ")")
             + (f"; {p.pickup_nulls:,} without a pickup time." if p.pickup_nulls else ".")]
    if p.passengers is not None:
        lines.append(f"- passenger_count: **{p.passengers.missing:,} missing**, {p.passengers.zero:,} zero "
                     "(kept as null and 0 in the lake: no fill).")
    lines += ["", "| column | type | nulls | min | max |", "|---|---|---:|---|---|",
              *(f"| {c.name} | {c.type} | {c.nulls:,} | {markdown.text(_cell(c.min))} | {markdown.text(_cell(c.max))} |"
                for c in p.columns)]
    return "\n".join(lines)


def trips_per_day_svg(year: int, month: int, per_day: list[int], width: int = 720, height: int = 240) -> str:
    """A bar chart of trips per day of the month as an SVG document (weekends in a lighter colour)."""
    left, right, top, bottom = 56, 12, 28, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(per_day, default=0) or 1
    slot = plot_w / max(len(per_day), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="16" font-size="13" font-weight="bold">Trips per day, '
             f'{calendar.month_name[month]} {year}</text>',
             f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{peak:,}</text>',
             f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>']
    for i, trips in enumerate(per_day):
        day = i + 1
        h = plot_h * trips / peak
        x = left + i * slot
        weekend = calendar.weekday(year, month, day) >= 5
        parts.append(f'<rect x="{x + 1:.1f}" y="{top + plot_h - h:.1f}" width="{max(slot - 2, 1):.1f}" '
                     f'height="{h:.1f}" fill="{"#9ec5e8" if weekend else "#1f6fb5"}">'
                     f'<title>{year}-{month:02}-{day:02}: {trips:,} trips</title></rect>')
        if day == 1 or day % 7 == 1:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{height - 10}" text-anchor="middle">{day}</text>')
    parts.append("</svg>")
    return "".join(parts)


def record_profile(color: str, p: Profile) -> None:
    """The month's data profile and its trips per day, as two markdown artifacts of the run.

    The picture is an SVG in a ``data:`` URI inside markdown: Prefect 2.20 has no image artifact,
    and its UI renders a markdown image with a ``data:`` source as it is."""
    month = f"{p.year}-{p.month:02}"
    create_markdown_artifact(key=_key("profile", color, p.year, f"{p.month:02}"), markdown=profile_markdown(color, p),
                             description=f"{color} {month}: data profile")
    svg = base64.b64encode(trips_per_day_svg(p.year, p.month, p.trips_per_day).encode()).decode()
    busiest = p.trips_per_day.index(max(p.trips_per_day)) + 1 if any(p.trips_per_day) else "-"
    create_markdown_artifact(
        key=_key("trips-per-day", color, p.year, f"{p.month:02}"),
        description=f"{color} {month}: trips per day",
        markdown=f"### {color} {month}: trips per day\n\n"
                 f"![trips per day, {color} {month}](data:image/svg+xml;base64,{svg})\n\n"
                 f"{sum(p.trips_per_day):,} trips with a pickup in {month}; busiest day {busiest}; "
                 "weekends are lighter.",
    )


# --- many months ----------------------------------------------------------------------------

class Overview:
    """A table artifact of the calling flow run: a row per month, a column per destination (its
    rows) and the state, updated in place as months finish, so that the run's Artifacts tab shows
    how far it is; each month finished is also logged. The table lives on the server, so a subflow
    can update its parent's (``Overview(id)``)."""

    def __init__(self, artifact_id: UUID) -> None:
        self.id = artifact_id

    @classmethod
    def create(cls, key: str, description: str, months: list[str], destinations: list[str],
               known: dict[str, dict[str, object]] | None = None) -> Overview:
        """A new overview, every month Pending; ``known`` fills cells known beforehand (by month)."""
        rows = [{"month": m, **{d: _cell((known or {}).get(m, {}).get(d, "")) for d in destinations},
                 "state": "Pending"} for m in months]
        return cls(create_table_artifact(key=_key(key), table=rows, description=description))

    def update(self, month: str, state: str, got: dict[str, object] | None = None) -> None:
        """Set the month's state and what each destination got (other keys of ``got`` are ignored)."""
        with get_client(sync_client=True) as client:
            # Prefect 2's client has no update_artifact; its API has PATCH /artifacts/{id}.
            response = client._client.get(f"/artifacts/{self.id}")
            response.raise_for_status()
            rows = json.loads(response.json()["data"])
            row = next(r for r in rows if r["month"] == month)
            row["state"] = state
            row.update({d: _cell(value) for d, value in (got or {}).items() if d in row and d != "month"})
            client._client.patch(f"/artifacts/{self.id}", json={"data": json.dumps(rows)}).raise_for_status()
        if state not in ("Pending", "Running"):
            finished = sum(r["state"] not in ("Pending", "Running") for r in rows)
            get_run_logger().info(f"{month}: {state} ({finished} of {len(rows)} months finished)")

    def record(self, month: str, state, with_result: bool = True) -> None:
        """Set the month from the final Prefect state of its run (with its result, if asked)."""
        if state.is_completed():
            self.update(month, state.name, state.result() if with_result else None)
        else:
            self.update(month, f"{state.name}: {failure_reason(state)}")

    @contextmanager
    def track(self, month: str) -> Iterator[dict[str, object]]:
        """Around one month's work: Running while in it, then Completed with what the body put in
        the yielded dict, or Failed with the reason (the exception goes on)."""
        self.update(month, "Running")
        got: dict[str, object] = {}
        try:
            yield got
        except BaseException as e:
            self.update(month, f"Failed: {type(e).__name__}: {e}")
            raise
        self.update(month, "Completed", got)


# --- failures -------------------------------------------------------------------------------

async def record_failure(flow, flow_run, state) -> None:
    """``on_failure``/``on_crashed``: a short markdown artifact of the run, the reason first."""
    parameters = ", ".join(f"{k}={v!r}" for k, v in (flow_run.parameters or {}).items())
    text = "\n".join([
        f"### {state.name}: {markdown.text(failure_reason(state), limit=300)}", "",
        f"- flow: `{flow.name}` ({markdown.text(parameters, limit=300)})",
        "- the full traceback is in this run's logs;",
        "- docs/failures.md lists each known failure with its fix.",
    ])
    async with get_client() as client:
        await client.create_artifact(ArtifactCreate(
            type="markdown", flow_run_id=flow_run.id, data=text,
            description=f"why {flow.name} {state.name.lower()}",
        ))

"""What the runs leave in the Prefect UI: the data, not only that a run finished.

Through the API: the parent flow's and the backfill's overview (months x destinations, updated
in place as months finish), each month's profile and trips-per-day picture, a failed run's
reason. In headless Chromium: the same artifacts as the UI renders them (screenshots under
test-artifacts/).
"""
from __future__ import annotations

import base64
import json
import os
import re
import xml.etree.ElementTree as ET

import pytest
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
)

from etl_backfill import etl_backfill
from etl_web_to_gcs import etl_web_to_gcs
from helpers import ARTIFACTS, MIRROR_ROWS, api, artifacts_of, browser_page, needs_chromium, run_logs
from parameterized_flow import etl_parent_flow


def cell(page, text: str):
    """The table cells that read ``text``: by their text, as Prefect 3's UI wraps each one in an article."""
    return page.get_by_role("cell").filter(has_text=re.compile(f"^{re.escape(text)}$"))


def children_of(run_id) -> dict[str, object]:
    """The subflow runs of a flow run, by ``{year}-{MM}`` of their parameters (else by name)."""
    runs = api(lambda c: c.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id]))))
    return {f"{r.parameters['year']}-{r.parameters['month']:02}" if "month" in r.parameters else r.name: r
            for r in runs}


@pytest.fixture(scope="module")
def parent_run(tmp_path_factory):
    """``etl_parent_flow(months=[3, 4], year=2020, color="green")``, run once for this module."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NYC_TLC_DATA_DIR", str(tmp_path_factory.mktemp("ui") / "data"))
    try:
        state = etl_parent_flow(months=[3, 4], year=2020, color="green", return_state=True)
    finally:
        mp.undo()
    assert state.is_completed(), state
    return state.state_details.flow_run_id


def test_the_parent_flow_leaves_an_overview_of_its_months(parent_run):
    overview = artifacts_of(parent_run)["overview-green-2020"]
    assert overview.type == "table"
    assert json.loads(overview.data) == [
        {"month": f"2020-{m:02}", "lake": f"{MIRROR_ROWS:,}", "state": "Completed"} for m in (3, 4)]
    logs = run_logs(parent_run)
    assert "2020-03: Completed (1 of 2 months finished)" in logs and "2020-04: Completed (2 of 2 months finished)" in logs


def test_each_month_leaves_its_profile_and_a_picture_of_its_trips_per_day(parent_run):
    for month, child in children_of(parent_run).items():
        mm = month[-2:]
        artifacts = artifacts_of(child.id)
        profile = artifacts[f"profile-green-2020-{mm}"].data
        assert profile.startswith(f"### green {month}: data profile\n")
        assert f"**{MIRROR_ROWS:,} rows**, 20 columns" in profile
        assert re.search(rf"Pickups outside {month}: \*\*\d+\*\* \(\d+ before, \d+ after", profile)
        assert "| lpep_pickup_datetime | timestamp[us] | 0 |" in profile
        assert re.search(r"passenger_count: \*\*[\d,]+ missing\*\*", profile)

        picture = artifacts[f"trips-per-day-green-2020-{mm}"].data
        svg = ET.fromstring(base64.b64decode(re.search(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", picture)[1]))
        bars = [r for r in svg.iter("{http://www.w3.org/2000/svg}rect") if len(r)]
        assert len(bars) == (31 if mm == "03" else 30)
        trips = sum(int(re.search(r": ([\d,]+) trips", b[0].text)[1].replace(",", "")) for b in bars)
        assert f"{trips:,} trips with a pickup in {month}" in picture and 0.9 * MIRROR_ROWS < trips <= MIRROR_ROWS

        logs = run_logs(child.id)
        assert not any(log.startswith("first rows") for log in logs)  # the profile replaced that block
        assert any(log.startswith(f"profile: {MIRROR_ROWS:,} rows; pickups outside {month}:") for log in logs)


def test_a_failed_run_says_its_reason_first(server, data_dir):
    url = server.script("green", 2020, 2, "404")
    state = etl_web_to_gcs(year=2020, month=2, color="green", return_state=True)
    assert state.is_failed()
    [failure] = [a for a in artifacts_of(state.state_details.flow_run_id).values() if a.key is None]
    reason = (f"NotPublishedError: green_tripdata_2020-02.csv.gz is not published at {url} (HTTP 404): check the "
              "colour, year and month")
    assert failure.data.splitlines()[0] == f"### Failed: {reason}"
    assert state.message == reason  # the state message is the reason itself (run_hooks.reason_first)


def test_the_overview_is_updated_in_place_and_shows_a_failed_month(server, data_dir):
    server.script("green", 2020, 6, "404")
    state = etl_parent_flow(months=[5, 6], year=2020, color="green", return_state=True)
    assert state.is_failed()
    [overview] = api(lambda c: c.read_artifacts(
        artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["overview-green-2020"])),
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))))
    rows = json.loads(overview.data)
    assert rows[0] == {"month": "2020-05", "lake": f"{MIRROR_ROWS:,}", "state": "Completed"}
    assert rows[1]["month"] == "2020-06" and rows[1]["lake"] == ""
    assert rows[1]["state"].startswith("Failed: NotPublishedError: green_tripdata_2020-06.csv.gz is not published")


@pytest.mark.parametrize("runner", ["sequential", "dask"])
def test_the_backfill_leaves_an_overview_of_months_and_destinations(data_dir, runner):
    first = {"sequential": 7, "dask": 9}[runner]  # months no other test loads: each cell is this run's
    state = etl_backfill(start=f"2020-{first:02}", end=f"2020-{first + 1:02}", colors=["green"],
                         destinations=["lake", "postgres"], runner=runner, dask_workers=2, return_state=True)
    assert state.is_completed(), state
    run_id = state.state_details.flow_run_id
    overview = artifacts_of(run_id)["backfill"]
    assert json.loads(overview.data) == [
        {"month": f"green 2020-{m:02}", "lake": f"{MIRROR_ROWS:,}", "postgres": f"{MIRROR_ROWS:,}",
         "state": "Completed"} for m in (first, first + 1)]
    logs = run_logs(run_id) + [log for child in children_of(run_id).values() for log in run_logs(child.id)]
    assert sum(re.fullmatch(r"green 2020-\d\d: Completed \(\d of 2 months finished\)", log) is not None
               for log in logs) == 2


@needs_chromium
def test_the_ui_shows_the_overview_the_profile_and_the_picture(parent_run):
    from playwright.sync_api import expect

    ui = os.environ["PREFECT_API_URL"].removesuffix("/api")
    overview = artifacts_of(parent_run)["overview-green-2020"]
    artifacts = artifacts_of(children_of(parent_run)["2020-03"].id)  # not inside Playwright's event loop
    with browser_page(height=1000) as page:
        page.goto(f"{ui}/flow-runs/flow-run/{parent_run}", wait_until="networkidle")
        page.get_by_role("tablist").get_by_text("Artifacts", exact=True).click()
        expect(page.get_by_text("overview-green-2020").first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "ui-parent-artifacts.png", full_page=True)

        page.goto(f"{ui}/artifacts/artifact/{overview.id}", wait_until="networkidle")
        for month in ("2020-03", "2020-04"):
            expect(cell(page, month)).to_be_visible()
        expect(cell(page, "Completed").first).to_be_visible()
        page.screenshot(path=ARTIFACTS / "ui-overview.png", full_page=True)

        page.goto(f"{ui}/artifacts/artifact/{artifacts['profile-green-2020-03'].id}", wait_until="networkidle")
        expect(page.get_by_role("heading", name="green 2020-03: data profile")).to_be_visible()
        expect(cell(page, "lpep_pickup_datetime")).to_be_visible()
        page.screenshot(path=ARTIFACTS / "ui-profile.png", full_page=True)

        page.goto(f"{ui}/artifacts/artifact/{artifacts['trips-per-day-green-2020-03'].id}",
                  wait_until="networkidle")
        picture = page.get_by_role("img", name="trips per day, green 2020-03")
        expect(picture).to_be_visible()
        assert picture.evaluate("img => img.complete && img.naturalWidth") == 720  # decoded and drawn
        page.screenshot(path=ARTIFACTS / "ui-trips-per-day.png", full_page=True)


# Values a trip file from the web can hold (issue 28): a pipe and a line break with a heading after
# it, HTML, a link with a script.
PIPE_AND_HEADING = "a|b\n### injected"
HTML = "<b>bold</b><img src=x onerror=alert(1)>"
SCRIPT_LINK = "[x](javascript:alert(1))"


@needs_chromium
def test_values_from_the_data_show_as_their_text_in_the_ui(server, data_dir):
    """Data and error text in the artifacts is escaped: the profile's table keeps its rows, a
    value shows as written, no heading is injected and no link is made."""
    from playwright.sync_api import expect

    server.publish_cells("green", 2019, 10, {(0, "store_and_fwd_flag"): PIPE_AND_HEADING,
                                             (1, "store_and_fwd_flag"): HTML})
    loaded = etl_web_to_gcs(year=2019, month=10, color="green", return_state=True)
    assert loaded.is_completed(), loaded
    profile = artifacts_of(loaded.state_details.flow_run_id)["profile-green-2019-10"]
    server.publish_cells("green", 2019, 9, {(5, "VendorID"): SCRIPT_LINK + HTML})
    failed = etl_web_to_gcs(year=2019, month=9, color="green", return_state=True)
    assert failed.is_failed() and SCRIPT_LINK in failed.message
    [failure] = [a for a in artifacts_of(failed.state_details.flow_run_id).values() if a.key is None]

    ui = os.environ["PREFECT_API_URL"].removesuffix("/api")
    with browser_page(height=1200) as page:
        page.goto(f"{ui}/artifacts/artifact/{profile.id}", wait_until="networkidle")
        expect(page.get_by_role("heading", name="green 2019-10: data profile")).to_be_visible()
        table = page.get_by_role("table")
        expect(table.get_by_role("row")).to_have_count(1 + 20)  # the header and a row per column
        row = table.get_by_role("row").filter(has=cell(page, "store_and_fwd_flag"))
        expect(row.get_by_role("cell").nth(3)).to_have_text(HTML)  # the smallest value: "<" sorts first
        expect(row.get_by_role("cell").nth(4)).to_have_text(" ".join(PIPE_AND_HEADING.splitlines()))
        expect(page.get_by_role("heading", name="injected")).to_have_count(0)
        assert page.locator("img[src='x']").count() == 0
        page.screenshot(path=ARTIFACTS / "ui-hostile-profile.png", full_page=True)

        page.goto(f"{ui}/artifacts/artifact/{failure.id}", wait_until="networkidle")
        heading = page.get_by_role("heading").filter(has_text="Failed: SchemaError")
        expect(heading).to_contain_text(SCRIPT_LINK + HTML)
        assert page.locator("a[href^='javascript']").count() == 0 and page.locator("img[src='x']").count() == 0
        page.screenshot(path=ARTIFACTS / "ui-hostile-failure.png", full_page=True)

"""`make bench`: the project's pipeline against the course's method and the machine's limits.

Generates full-size months with the project's generator, starts a private local stack,
and runs every case in a process of its own, REPEAT times; reports the median wall
time and the median peak RSS of that process, the ratio to the raw limit and to the
course, and writes the table to bench/results/latest.json (and .md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
CASES = [PY, str(REPO / "bench" / "cases.py")]
CACHE = Path(os.environ.get("NYC_TLC_BENCH_CACHE", Path.home() / ".cache" / "nyctaxi-bench"))


@dataclass
class Row:
    step: str
    method: str
    seconds: float
    peak_rss_mb: float
    runs: int
    vs_limit: float | None = None
    vs_course: float | None = None


def measure(cmd: list[str], repeat: int, env: dict | None = None, before=None) -> tuple[float, float]:
    """Median wall seconds and median peak RSS (MB) of ``cmd`` run ``repeat`` times."""
    times, peaks = [], []
    rss_file = Path(tempfile.mkstemp(prefix="bench-rss-")[1])
    for _ in range(repeat):
        if before:
            before()
        start = time.perf_counter()
        done = subprocess.run([PY, str(REPO / "bench" / "launch.py"), str(rss_file), *cmd], env=env or dict(os.environ),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{cmd} failed:\n{done.stderr[-3000:]}")
        times.append(elapsed)
        peaks.append(int(rss_file.read_text()) / 1024)
    rss_file.unlink()
    return statistics.median(times), statistics.median(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--course-pg-repeat", type=int, default=1,
                        help="repetitions of the course's to_sql (about 100 s each; 0 leaves it out)")
    parser.add_argument("--only", choices=["steps", "parent", "backfill", "runtimes", "peers", "full-backfill"],
                        default=None,
                        help="only the single-month steps (1-4), the parent flow (5), the backfill (6), "
                             "Prefect 2.20 beside 3.9 (7), the conversion against polars and DuckDB (8), or "
                             "the whole backfill against raw tools (9: not part of the default run; "
                             "make bench-backfill)")
    parser.add_argument("--with-bigquery", action="store_true",
                        help="9 also runs the whole backfill into BigQuery (the emulator needs far more disk "
                             "than the other destinations: see bench/README.md)")
    args = parser.parse_args()

    from stack import ctl

    work = Path(tempfile.mkdtemp(prefix="nyctaxi-bench-"))
    os.environ.update(STACK_DIR=str(work / "stack"), NYC_TLC_MIRROR_ROWS="full", NYC_TLC_DATA_DIR=str(work / "data"))
    # The mirror keeps the months it generates in the cache, for the next run (generating
    # the 62 months of the full backfill takes about 10 minutes on 2 cores).
    (CACHE / "full").mkdir(parents=True, exist_ok=True)
    (work / "stack" / "mirror").mkdir(parents=True)
    (work / "stack" / "mirror" / "full").symlink_to(CACHE / "full", target_is_directory=True)
    rows: list[Row] = []
    try:
        env_file = ctl.up()
        os.environ.update(ctl.read_env(env_file))
        _hard_deletes()
        if args.only in (None, "steps"):
            rows += single_month_steps(args, work)
        if args.only in (None, "parent"):
            rows += parent_flow_modes(work)
        if args.only in (None, "backfill"):
            rows += backfill_modes(work)
        if args.only in (None, "runtimes"):
            rows += runtime_rows(work)
        if args.only in (None, "peers"):
            rows += conversion_peers(work, args.repeat)
        if args.only == "full-backfill":
            rows += full_backfill(work, args.with_bigquery)
    finally:
        ctl.down()
        shutil.rmtree(work, ignore_errors=True)

    _ratios(rows)
    report(_with_earlier(rows) if args.only else rows)


def _with_earlier(rows: list[Row]) -> list[Row]:
    """The sections this run did not measure, kept from the last table (``--only``)."""
    latest = REPO / "bench" / "results" / "latest.json"
    if not latest.exists():
        return rows
    fresh = {r.step for r in rows}
    earlier = [Row(**r) for r in json.loads(latest.read_text())["rows"] if r["step"] not in fresh]
    order = ["csv.gz", "month ->", "flow process", "etl_parent_flow", "backfill,", "whole backfill", "Prefect"]
    rank = lambda r: next((i for i, prefix in enumerate(order) if r.step.startswith(prefix)), len(order))  # noqa: E731
    return sorted(earlier + rows, key=rank)


def single_month_steps(args: argparse.Namespace, work: Path) -> list[Row]:
    """1-4: one month through each step, the course's way, the project's, the machine's limit."""
    from stack.generator import generate
    from stack.static_server import serve_directory

    rows: list[Row] = []
    src = generate("yellow", 2021, 1, "full", work / "release" / "yellow" / "yellow_tripdata_2021-01.csv.gz")
    with serve_directory(work / "release") as base:
        url = f"{base}/yellow/yellow_tripdata_2021-01.csv.gz"
        out = work / "out.parquet"
        # 1. csv.gz -> local parquet
        for method, cmd in [("raw pyarrow", [*CASES, "lake_raw", f"src={src}", f"out={out}"]),
                            ("course (pandas, gzip parquet)", [*CASES, "lake_course", f"url={url}", f"out={out}"]),
                            ("project fetch -> clean -> write_local",
                             [*CASES, "lake_project", f"url={url}", f"out={out}"]),
                            ("project clean -> write_local (file downloaded)",
                             [*CASES, "lake_convert", f"src={src}", f"out={out}"])]:
            rows.append(Row("csv.gz -> parquet (1.37 M rows)", method, *measure(cmd, args.repeat), args.repeat))
    parquet = out
    csv = work / "month.csv"
    subprocess.run([*CASES, "to_csv", f"parquet={parquet}", f"csv={csv}"], check=True)

    # 2. month -> PostgreSQL
    psql, pg_env, sql = _psql()
    sql(_plain_table_sql("bench_plain", "yellow"))
    # Every run starts from a checkpoint, so that none pays for writing out the WAL of the one
    # before (a checkpoint falling inside a run moved the ratios by 0.3x from one bench to the next).
    checkpoint = lambda: sql("CHECKPOINT")  # noqa: E731
    truncate = lambda: sql("TRUNCATE bench_plain; CHECKPOINT")  # noqa: E731
    rows.append(Row("month -> Postgres (1.37 M rows)", "psql \\copy (limit)",
                    *measure([*psql, f"\\copy bench_plain FROM '{csv}' WITH (FORMAT csv)"], args.repeat, pg_env,
                             before=truncate), args.repeat))
    if args.course_pg_repeat:
        rows.append(Row("month -> Postgres (1.37 M rows)", "course to_sql (every row)",
                        *measure([*CASES, "pg_course", f"src={src}", "table=bench_course"], args.course_pg_repeat,
                                 before=checkpoint), args.course_pg_repeat))
    rows.append(Row("month -> Postgres (1.37 M rows)", "project load_postgres (binary COPY)",
                    *measure([*CASES, "pg_project", f"parquet={parquet}", "table=bench_project"], args.repeat,
                             before=checkpoint), args.repeat))

    # 3. month -> BigQuery (emulator), the small month, then the big one for memory (each parquet
    #    also in the bucket, for the gs:// load job)
    _ask_mirror(["yellow/yellow_tripdata_2019-03.csv.gz"])
    big = work / "big.parquet"
    subprocess.run([*CASES, "lake_convert", f"src={CACHE / 'full' / 'yellow' / 'yellow_tripdata_2019-03.csv.gz'}",
                    f"out={big}"], check=True)
    from google.cloud import storage
    bucket = storage.Client(project=os.environ["GOOGLE_CLOUD_PROJECT"]).bucket(os.environ["GCS_BUCKET"])
    for label, month_file, ways in (
            ("1.37 M", parquet, [("course to_gbq (whole DataFrame)", "bq_course", args.repeat),
                                 ("project write_bq (pandas_gbq=True: pandas-gbq, staged)", "bq_project_pandas_gbq",
                                  args.repeat)]),
            ("7.83 M", big, [])):
        key = f"bench/{month_file.name}"
        bucket.blob(key, chunk_size=8 << 20).upload_from_filename(str(month_file))
        ways = [("gs:// load job (limit)", "bq_load_job", args.repeat), *ways,
                ("project write_bq (load job of the parquet file)", "bq_project", args.repeat)]
        for method, case, repeat in ways:
            cmd = [*CASES, case, f"parquet={month_file}", f"uri=gs://{bucket.name}/{key}", "table=bench_course"]
            rows.append(Row(f"month -> BigQuery emulator ({label} rows)", method, *measure(cmd, repeat), repeat))

    # 4. peak memory of whole flows, small and large month (served full-size by the stack's mirror)
    _ask_mirror(["yellow/yellow_tripdata_2021-01.csv.gz", "yellow/yellow_tripdata_2019-03.csv.gz"])
    #    A first run downloads; a second finds fetch's cached result, and Prefect then loads every
    #    installed collection (prefect-gcp, prefect-dask, ...) to read it: measured apart.
    fresh = lambda: _forget_downloads(work)  # noqa: E731
    for script in ("etl_web_to_gcs.py", "etl_web_to_postgres.py"):
        for year, month, label, cached in (("2021", "1", "1.37 M", False), ("2019", "3", "7.83 M", False),
                                           ("2019", "3", "7.83 M", True)):
            cmd = [PY, str(REPO / "flows" / script), "--year", year, "--month", month]
            how = "cached download" if cached else "fresh download"
            rows.append(Row(f"flow process, {label} rows ({how})", script.removesuffix(".py"),
                            *measure(cmd, args.repeat, before=None if cached else fresh), args.repeat))
    return rows


PARENT_MONTHS = [str(m) for m in range(1, 13)]  # green 2020: 12 small months (88 k to 450 k rows)
PARENT_STEP = "etl_parent_flow, 12 small months (green 2020) -> lake"


def parent_flow_modes(work: Path) -> list[Row]:
    """5: etl_parent_flow over 12 small months, subflows one after another vs all at once, and what
    each subflow costs on top of the plain functions doing the same work."""
    _ask_mirror([f"green/green_tripdata_2020-{int(m):02}.csv.gz" for m in PARENT_MONTHS])
    step = PARENT_STEP
    cmd = [PY, str(REPO / "flows" / "parameterized_flow.py"), "--year", "2020", "--color", "green",
           "--months", *PARENT_MONTHS]
    fresh = lambda: _forget_downloads(work)  # noqa: E731
    plain = Row(step, "plain functions, one after another (no Prefect)",
                *measure([*CASES, "lake_months", "color=green", "year=2020", f"months={','.join(PARENT_MONTHS)}",
                          f"out={work / 'plain'}"], 3, before=fresh), 3)
    sequential = Row(step, "course's way: a subflow per month", *measure(cmd, 3, before=fresh), 3)
    concurrent = Row(step, "concurrent=True: load-month tasks at once", *measure([*cmd, "--concurrent"], 3,
                                                                                   before=fresh), 3)
    overhead = Row(step, "Prefect's cost per subflow (course's way - plain) / 12",
                   (sequential.seconds - plain.seconds) / len(PARENT_MONTHS), float("nan"), 3)
    return [plain, sequential, concurrent, overhead]


def _forget_downloads(work: Path, data: str = "data") -> None:
    """Remove the downloads, so that the next run fetches (no cached result of fetch)."""
    shutil.rmtree(work / data / "raw", ignore_errors=True)


def _ask_mirror(paths: list[str]) -> None:
    """The mirror makes a month on first request: ask for them before measuring."""
    import urllib.request

    for path in paths:
        urllib.request.urlopen(urllib.request.Request(f"{os.environ['NYC_TLC_BASE_URL']}/{path}", method="HEAD"),
                               timeout=900).close()


# yellow 2019: 12 full-size months, about 84 M rows, the big year of the course's backfill. A month's
# work (about 7 M rows) outweighs the few seconds each agent-run month spends starting a Python
# process with Prefect, as it does in a real backfill.
BACKFILL_COLOR, BACKFILL_MONTHS = "yellow", ("2019-01", "2019-12")


def backfill_modes(work: Path) -> list[Row]:
    """6: twelve full-size months into the lake and PostgreSQL, one after another, on a local
    Dask cluster of two workers, and through two agents; peak RSS of the largest process."""
    from nyctaxi.backfill import months_between

    taxis = months_between(*BACKFILL_MONTHS, [BACKFILL_COLOR])
    _ask_mirror([f"{BACKFILL_COLOR}/{taxi.source_file}" for taxi in taxis])
    step = f"backfill, 12 months ({BACKFILL_COLOR} {BACKFILL_MONTHS[0]}..{BACKFILL_MONTHS[1]}) -> lake + Postgres"
    cmd = [PY, str(REPO / "flows" / "etl_backfill.py"), "--start", BACKFILL_MONTHS[0], "--end", BACKFILL_MONTHS[1],
           "--colors", BACKFILL_COLOR, "--destinations", "lake", "postgres"]
    rows = [Row(step, "course's way: sequential subflows", *measure([*cmd, "--runner", "sequential"], 1,
                                                                     before=_forget_backfill), 1),
            Row(step, "Dask, 2 workers", *measure([*cmd, "--runner", "dask", "--dask-workers", "2"], 1,
                                                  before=_forget_backfill), 1)]
    subprocess.run([PY, str(REPO / "deployments" / "backfill_deploy.py"), "--data-dir", str(work / "data"),
                    "--load-limit", "2"], check=True, stdout=subprocess.DEVNULL)
    agents = [_start_agent(work / f"agent-{i}") for i in range(2)]
    try:
        seconds, peak = measure([*cmd, "--runner", "agents"], 1, before=_forget_backfill)
    finally:
        peaks = [_stop_agent(*agent) for agent in agents]
    rows.append(Row(step, "2 agents (run_deployment), one month at a time each", seconds, max(peak, *peaks), 1))
    return rows


def _forget_backfill() -> None:
    """Empty the destinations of the backfill's months, so that every mode loads all of them."""
    _empty_destinations((BACKFILL_COLOR,))


def _empty_destinations(colors: tuple[str, ...]) -> None:
    """Drop the colours' objects in the bucket and their tables (and the loads tables) in BigQuery
    and PostgreSQL."""
    from google.cloud import storage

    from nyctaxi.lake import object_prefix
    from nyctaxi.resources import DATASET, LOADS_TABLE, bigquery_client, table_name

    bucket = storage.Client(project=os.environ["GOOGLE_CLOUD_PROJECT"]).bucket(os.environ["GCS_BUCKET"])
    client = bigquery_client()
    for color in colors:
        for blob in bucket.list_blobs(prefix=object_prefix(color)):
            blob.delete()
        client.delete_table(f"{DATASET}.{table_name(color)}", not_found_ok=True)
    client.delete_table(f"{DATASET}.{LOADS_TABLE}", not_found_ok=True)
    _psql()[2]("; ".join(f"DROP TABLE IF EXISTS {table_name(c)}" for c in colors) +
               f"; DROP TABLE IF EXISTS {LOADS_TABLE}")


def _start_agent(folder: Path) -> tuple[subprocess.Popen, Path]:
    from nyctaxi.resources import WORK_QUEUE

    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_AGENT_QUERY_INTERVAL": "1", "PREFECT_AGENT_PREFETCH_SECONDS": "5"}
    rss = folder / "rss"
    with open(folder / "agent.log", "wb") as log:
        process = subprocess.Popen([PY, str(REPO / "bench" / "launch.py"), str(rss), str(Path(PY).parent / "prefect"),
                                    "agent", "start", "-q", WORK_QUEUE, "--limit", "1"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    return process, rss


def _stop_agent(process: subprocess.Popen, rss: Path) -> float:
    """Stop an agent (it may want a second SIGTERM); return its tree's peak RSS in MB."""
    import signal

    for _ in range(3):
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
            break
        except subprocess.TimeoutExpired:
            continue
    return int(rss.read_text()) / 1024 if rss.exists() else float("nan")


# --- 8. the conversion against its peers -----------------------------------------------------------
def conversion_peers(work: Path, repeat: int) -> list[Row]:
    """8: csv.gz -> parquet on equal terms (the declared types, snappy) by the project, pyarrow
    reading the whole file (the limit), polars (streaming) and DuckDB, for a small and a big month."""
    from stack.generator import generate

    rows = []
    for year, month, label in ((2021, 1, "1.37 M"), (2019, 3, "7.83 M")):
        name = f"yellow_tripdata_{year}-{month:02}.csv.gz"
        src = generate("yellow", year, month, "full", work / "release" / "yellow" / name)
        out = work / "peer.parquet"
        for method, case in [("pyarrow, whole file (limit)", "lake_raw_declared"),
                             ("project clean -> write_local (file downloaded)", "lake_convert"),
                             ("polars scan_csv -> sink_parquet", "lake_polars"),
                             ("DuckDB read_csv -> COPY TO parquet", "lake_duckdb")]:
            rows.append(Row(f"csv.gz -> parquet, declared types, snappy ({label} rows)", method,
                            *measure([*CASES, case, f"src={src}", f"out={out}"], repeat), repeat))
    return rows


# --- 9. the whole backfill against raw tools -----------------------------------------------------
FULL_START, FULL_END, FULL_COLORS = "2019-01", "2021-07", ("yellow", "green")


def full_backfill(work: Path, with_bigquery: bool = False) -> list[Row]:
    """9: every published yellow and green month (62, full size) by ``etl_backfill`` on Dask (2
    workers) into the lake, the bucket and PostgreSQL; beside it the raw-tools reference: the same
    months converted, uploaded and COPYed by a plain script, one after another and two at a time.
    ``with_bigquery``: the backfill into BigQuery too (load jobs; the emulator's CPU reported apart)."""
    from stack.generator import full_rows

    from nyctaxi.backfill import months_between

    taxis = months_between(FULL_START, FULL_END, FULL_COLORS)
    total = sum(full_rows(t.color, t.year, t.month) for t in taxis)
    _check_disk(work, total, with_bigquery)
    _generate(taxis)
    what = f"{len(taxis)} months (yellow + green {FULL_START}..{FULL_END}, {total / 1e6:.1f} M rows)"
    step = f"whole backfill, {what} -> lake + bucket + Postgres"
    _, pg_env, sql = _psql()
    months = ",".join(t.dataset_file for t in taxis)
    rows = []
    for parallel, method in ((2, "raw tools, no Prefect: two months at a time (limit)"),
                             (1, "raw tools, no Prefect: one month after another")):
        def fresh() -> None:
            _forget_full(work)
            sql("; ".join(_plain_table_sql(f"raw_{c}", c) for c in FULL_COLORS) + "; CHECKPOINT")

        cmd = [*CASES, "raw_backfill", f"months={months}", f"release={CACHE / 'full'}", f"out={work / 'raw'}",
               f"parallel={parallel}"]
        rows.append(Row(step, method, *measure(cmd, 1, pg_env, before=fresh), 1))
        _print_row(rows[-1])
        sql("; ".join(f"DROP TABLE raw_{c}" for c in FULL_COLORS))  # about 20 GB: not kept for the next run
    cmd = [PY, str(REPO / "flows" / "etl_backfill.py"), "--start", FULL_START, "--end", FULL_END,
           "--colors", *FULL_COLORS, "--runner", "dask", "--dask-workers", "2", "--destinations", "lake", "postgres"]
    fresh = lambda: (_forget_full(work), sql("CHECKPOINT"))  # noqa: E731
    rows.append(Row(step, "project etl_backfill, Dask, 2 workers", *measure(cmd, 1, before=fresh), 1))
    _print_row(rows[-1])
    if with_bigquery:
        step4 = f"whole backfill, {what} -> lake + bucket + Postgres + BigQuery emulator (load jobs)"
        emulator = json.loads((work / "stack" / "pids" / "bigquery.json").read_text())["pid"]
        before = _cpu(emulator)
        rows.append(Row(step4, "project etl_backfill, Dask, 2 workers",
                        *measure([*cmd, "bigquery"], 1, before=fresh), 1))
        rows.append(Row(step4, "of which the BigQuery emulator's CPU (s, its DuckDB loading)",
                        _cpu(emulator) - before, float("nan"), 1))
        _print_row(rows[-2])
        _print_row(rows[-1])
    _forget_full(work)
    return rows


# Disk per row, measured in the first full run: PostgreSQL's tables (about 160 B a row, the raw
# reference's at the same time as nothing else), the csv.gz cache, the downloads, the lake files and
# the bucket's copies (about 25 + 25 + 20 + 20 B); the BigQuery emulator's DuckDB file grew by about
# 350 B a row (its deleted staging tables are not given back).
DISK_BYTES_PER_ROW, BIGQUERY_BYTES_PER_ROW = 250, 350


def _check_disk(work: Path, rows: int, with_bigquery: bool) -> None:
    """Refuse to start a run the disk cannot hold (the stack's services fail in odd ways when it fills)."""
    need = rows * (DISK_BYTES_PER_ROW + (BIGQUERY_BYTES_PER_ROW if with_bigquery else 0))
    free = shutil.disk_usage(work).free
    if free < need:
        or_less = ", or leave out --with-bigquery" if with_bigquery else ""
        raise SystemExit(f"the whole backfill needs about {need / 1e9:.0f} GB of free disk under {work.parent}, "
                         f"{free / 1e9:.0f} GB are free: free some (make clean removes the stacks and data/), "
                         f"or set TMPDIR to a bigger disk{or_less}")


def _hard_deletes() -> None:
    """The bench's bucket deletes for good: the emulator, like GCS, keeps deleted objects for 7 days
    by default, and the backfill's runs delete and reload gigabytes."""
    from google.cloud import storage

    bucket = storage.Client(project=os.environ["GOOGLE_CLOUD_PROJECT"]).get_bucket(os.environ["GCS_BUCKET"])
    bucket.soft_delete_policy.retention_duration_seconds = 0
    bucket.patch()


def _generate(taxis: list) -> None:
    """The months the mirror will serve, generated into the cache beforehand, two at a time (not timed)."""
    from concurrent.futures import ProcessPoolExecutor

    from stack.generator import full_rows, generate

    missing = [t for t in taxis if not (CACHE / "full" / t.color / t.source_file).exists()]
    # The biggest first, so that the two processes finish together.
    missing.sort(key=lambda t: -full_rows(t.color, t.year, t.month))
    with ProcessPoolExecutor(2) as pool:
        futures = [pool.submit(generate, t.color, t.year, t.month, "full", CACHE / "full" / t.color / t.source_file)
                   for t in missing]
        for i, future in enumerate(futures, 1):
            print(f"generated {i}/{len(missing)}: {future.result().name}", flush=True)


def _forget_full(work: Path) -> None:
    """Empty every destination of the whole backfill and the local data (downloads, lake files)."""
    _empty_destinations(FULL_COLORS)
    for folder in ("data", "raw"):
        shutil.rmtree(work / folder, ignore_errors=True)


def _print_row(row: Row) -> None:
    """A long run's rows as they come (the table is written at the end)."""
    print(f"{row.step} | {row.method}: {row.seconds:.1f} s, peak {row.peak_rss_mb:.0f} MB", flush=True)


# --- 7. Prefect 2.20 beside 3.9 ------------------------------------------------------------------
PY3 = str(REPO / ".venv-prefect3" / "bin" / "python")  # make bench installs it (make venv PREFECT=3)
DEPLOYMENT_RUNS = 3


def runtime_rows(work: Path) -> list[Row]:
    """7: the same flows on Prefect 2.20 (this venv, this stack) and 3.9 (.venv-prefect3, a stack of
    its own, the months from this stack's mirror): what a subflow costs, what a deployment run costs
    before its flow starts (agent vs worker), and a whole flow's peak RSS, fresh and cached download."""
    from nyctaxi.resources import PROCESS_POOL

    _ask_mirror([f"green/green_tripdata_2020-{int(m):02}.csv.gz" for m in PARENT_MONTHS]
                + ["yellow/yellow_tripdata_2019-03.csv.gz"])
    runtimes = [(_prefect_version(PY), PY, dict(os.environ), "data"), (_prefect_version(PY3), PY3,
                                                                        _start_stack3(work), "data-prefect3")]
    rows: list[Row] = []
    try:
        plain = Row(f"Prefect: {PARENT_STEP}", "plain functions, one after another (no Prefect)",
                    *measure([*CASES, "lake_months", "color=green", "year=2020", f"months={','.join(PARENT_MONTHS)}",
                              f"out={work / 'plain'}"], 3, before=lambda: _forget_downloads(work)), 3)
        rows.append(plain)
        for version, py, env, data in runtimes:
            fresh = lambda data=data: _forget_downloads(work, data)  # noqa: E731
            cmd = [py, str(REPO / "flows" / "parameterized_flow.py"), "--year", "2020", "--color", "green",
                   "--months", *PARENT_MONTHS]
            subflows = Row(f"Prefect: {PARENT_STEP}", f"Prefect {version}: a subflow per month",
                           *measure(cmd, 3, env, before=fresh), 3)
            rows += [subflows, Row(f"Prefect: {PARENT_STEP}", f"Prefect {version}: cost per subflow "
                                   "((subflows - plain) / 12; goal <= 0.5)",
                                   (subflows.seconds - plain.seconds) / len(PARENT_MONTHS), float("nan"), 3)]
        for version, py, env, data in runtimes:
            fresh = lambda data=data: _forget_downloads(work, data)  # noqa: E731
            cmd = [py, str(REPO / "flows" / "etl_web_to_gcs.py"), "--year", "2019", "--month", "3"]
            for how, cached in (("fresh", False), ("cached", True)):
                rows.append(Row(f"Prefect: flow process, 7.83 M rows ({how} download; goal <= 300 MB)",
                                f"Prefect {version}: etl_web_to_gcs",
                                *measure(cmd, 3, env, before=None if cached else fresh), 3))
        launchers = [(runtimes[0], "agent", "process-flow"), (runtimes[0], "process worker", PROCESS_POOL),
                     (runtimes[1], "process worker", PROCESS_POOL)]
        for (version, py, env, data), launcher, deployment in launchers:
            starts, cpus = _deployment_runs(py, env, launcher, deployment, work / data)
            step = "Prefect: a deployment run of the parent flow (green 2020-01), before its flow begins"
            rows += [Row(step, f"Prefect {version}, {launcher}: Pending -> Running (s)",
                         statistics.median(starts), float("nan"), DEPLOYMENT_RUNS),
                     Row(step, f"Prefect {version}, {launcher}: CPU of the run's process by then (s)",
                         statistics.median(cpus), float("nan"), DEPLOYMENT_RUNS)]
    finally:
        subprocess.run([PY3, "-m", "stack.ctl", "down"], env=runtimes[1][2], stdout=subprocess.DEVNULL)
    return rows


def _prefect_version(py: str) -> str:
    return subprocess.run([py, "-c", "from importlib.metadata import version; print(version('prefect'))"],
                          capture_output=True, text=True, check=True).stdout.strip()


def _start_stack3(work: Path) -> dict[str, str]:
    """A Prefect 3.9 stack beside this one; its flows read this stack's mirror (full-size months)."""
    from stack import ctl

    env = {**os.environ, "STACK_DIR": str(work / "stack-prefect3"), "NYC_TLC_MIRROR_ROWS": "1000"}
    subprocess.run([PY3, "-m", "stack.ctl", "up"], env=env, check=True, stdout=subprocess.DEVNULL)
    return {**env, **ctl.read_env(work / "stack-prefect3" / "env"), "NYC_TLC_BASE_URL": os.environ["NYC_TLC_BASE_URL"],
            "NYC_TLC_DATA_DIR": str(work / "data-prefect3")}


def _deployment_runs(py: str, env: dict[str, str], launcher: str, deployment: str,
                     data: Path) -> tuple[list[float], list[float]]:
    """Run ``etl-parent-flow/<deployment>`` for green 2020-01 DEPLOYMENT_RUNS times through an agent
    or a process worker; per run, the seconds from Pending (the launcher took it) to Running (the flow
    began), and the CPU seconds the run's process had spent when it began (sampled every 0.1 s)."""
    import re

    from nyctaxi.resources import PROCESS_POOL, WORK_QUEUE

    prefect = str(Path(py).parent / "prefect")
    quiet = {"env": env, "check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if launcher == "agent":
        subprocess.run([py, str(REPO / "deployments" / "process_deploy.py"), "--data-dir", str(data)], **quiet)
        args, poll = ["agent", "start", "-q", WORK_QUEUE], {"PREFECT_AGENT_QUERY_INTERVAL": "1"}
    else:
        subprocess.run([prefect, "work-pool", "create", "-t", "process", PROCESS_POOL, "--overwrite"], **quiet)
        subprocess.run([prefect, "--no-prompt", "deploy", "-n", deployment], cwd=REPO, **quiet)
        args, poll = ["worker", "start", "-p", PROCESS_POOL], {"PREFECT_WORKER_QUERY_SECONDS": "1"}
    process = subprocess.Popen([prefect, *args], env={**env, **poll}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    api = _rest(env)
    starts, cpus = [], []
    try:
        for _ in range(DEPLOYMENT_RUNS):
            out = subprocess.run([prefect, "deployment", "run", f"etl-parent-flow/{deployment}", "-p", "months=[1]",
                                  "-p", "year=2020", "-p", "color=green"],
                                 env=env, capture_output=True, text=True, check=True).stdout
            run_id = re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)
            deadline = time.monotonic() + 180
            cpu = float("nan")  # the flow began before the first look: not measured
            while api(f"/flow_runs/{run_id}")["state_type"] in ("SCHEDULED", "PENDING"):
                cpu = _descendants_cpu(process.pid)  # the run's process, until its flow begins
                if time.monotonic() > deadline:
                    raise SystemExit(f"flow run {run_id} did not start")
                time.sleep(0.1)
            cpus.append(cpu)
            states = _final_states(api, run_id)
            starts.append(states["RUNNING"] - states["PENDING"])
    finally:
        import signal

        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return starts, cpus


def _cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants_cpu(pid: int) -> float:
    """CPU seconds (user + system) of the live processes under ``pid``, not counting ``pid``."""
    total = 0.0
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            total += _cpu(int(child)) + _descendants_cpu(int(child))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def _rest(env: dict[str, str]):
    """GET on the Prefect REST API of ``env`` (Prefect 3's with its basic auth): one client for both
    servers."""
    import base64
    import urllib.request

    auth = env.get("PREFECT_API_AUTH_STRING")
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}

    def get(path: str):
        request = urllib.request.Request(env["PREFECT_API_URL"] + path, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    return get


def _final_states(api, run_id: str, timeout_s: float = 300) -> dict[str, float]:
    """When the flow run entered each state (epoch seconds), once it has Completed."""
    from datetime import datetime

    deadline = time.monotonic() + timeout_s
    while (state := api(f"/flow_runs/{run_id}")["state_type"]) not in ("COMPLETED", "FAILED", "CRASHED"):
        if time.monotonic() > deadline:
            raise SystemExit(f"flow run {run_id} did not finish in {timeout_s} s")
        time.sleep(0.5)
    states = api(f"/flow_run_states/?flow_run_id={run_id}")
    if state != "COMPLETED":
        raise SystemExit(f"flow run {run_id} did not complete: {states[-1]}")
    return {s["type"]: datetime.fromisoformat(s["timestamp"].replace("Z", "+00:00")).timestamp() for s in states}


def _psql():
    """``cases.psql_command()`` (psql as the stack's superuser), and a function running one SQL text with it."""
    from cases import psql_command

    psql, pg_env = psql_command()
    return psql, pg_env, lambda text: subprocess.run([*psql, text], env=pg_env, check=True)


def _plain_table_sql(table: str, color: str) -> str:
    """A plain table of ``color``'s declared columns, no lineage, no partitions: raw COPY's target."""
    from nyctaxi.postgres import PG_TYPES
    from nyctaxi.schema import COLUMNS

    cols = ", ".join(f'"{name}" {PG_TYPES[kind]}' for name, kind in COLUMNS[color])
    return f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({cols})"


def _ratios(rows: list[Row]) -> None:
    by_step: dict[str, list[Row]] = {}
    for row in rows:
        by_step.setdefault(row.step, []).append(row)
    for step_rows in by_step.values():
        limit = next((r for r in step_rows if "(limit)" in r.method or r.method.startswith("raw")), None)
        course = next((r for r in step_rows if r.method.startswith("course")), None)
        for row in step_rows:
            row.vs_limit = round(row.seconds / limit.seconds, 2) if limit else None
            row.vs_course = round(row.seconds / course.seconds, 2) if course else None


def report(rows: list[Row]) -> None:
    machine = f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"
    lines = [f"Machine: {machine}", "",
             "| step | method | time (s, median) | x limit | x course | peak RSS (MB) | runs |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        fmt = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
        rss = "" if r.peak_rss_mb != r.peak_rss_mb else f"{r.peak_rss_mb:.0f}"  # NaN: not a process
        lines.append(f"| {r.step} | {r.method} | {r.seconds:.2f} | {fmt(r.vs_limit)} | {fmt(r.vs_course)} | "
                     f"{rss} | {r.runs} |")
    table = "\n".join(lines)
    print(table)
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.md").write_text(table + "\n")
    (results / "latest.json").write_text(json.dumps({"machine": machine, "rows": [asdict(r) for r in rows]}, indent=2))


if __name__ == "__main__":
    main()

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
sys.path[:0] = [str(REPO / "stack"), str(REPO / "flows")]
PY = sys.executable
CASES = [PY, str(REPO / "bench" / "cases.py")]


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
    args = parser.parse_args()

    import ctl
    from generator import generate
    from static_server import serve_directory

    work = Path(tempfile.mkdtemp(prefix="nyctaxi-bench-"))
    os.environ.update(STACK_DIR=str(work / "stack"), NYC_TLC_MIRROR_ROWS="full", NYC_TLC_DATA_DIR=str(work / "data"))
    rows: list[Row] = []
    try:
        env_file = ctl.up()
        os.environ.update(ctl.read_env(env_file))
        src = generate("yellow", 2021, 1, "full", work / "release" / "yellow" / "yellow_tripdata_2021-01.csv.gz")
        with serve_directory(work / "release") as base:
            url = f"{base}/yellow/yellow_tripdata_2021-01.csv.gz"
            out = work / "out.parquet"
            # 1. csv.gz -> local parquet
            for method, cmd in [("raw pyarrow", [*CASES, "lake_raw", f"src={src}", f"out={out}"]),
                                ("course (pandas, gzip parquet)", [*CASES, "lake_course", f"url={url}", f"out={out}"]),
                                ("project fetch -> clean -> write_local", [*CASES, "lake_project", f"url={url}", f"out={out}"])]:
                rows.append(Row("csv.gz -> parquet (1.37 M rows)", method, *measure(cmd, args.repeat), args.repeat))
        parquet = out
        csv = work / "month.csv"
        subprocess.run([*CASES, "to_csv", f"parquet={parquet}", f"csv={csv}"], check=True)

        # 2. month -> PostgreSQL
        from pg_cluster import bin_dir
        pg_env = {**os.environ, "PGPASSWORD": Path(os.environ["POSTGRES_PASSWORD_FILE"]).read_text().strip()}
        psql = [str(bin_dir() / "psql"), "-h", "127.0.0.1", "-p", os.environ["POSTGRES_PORT"], "-U",
                os.environ["POSTGRES_USER"], "-d", os.environ["POSTGRES_DB"], "-q", "-c"]
        subprocess.run([*psql, _plain_table_sql()], env=pg_env, check=True)
        truncate = lambda: subprocess.run([*psql, "TRUNCATE bench_plain"], env=pg_env, check=True)  # noqa: E731
        rows.append(Row("month -> Postgres (1.37 M rows)", "psql \\copy (limit)",
                        *measure([*psql, f"\\copy bench_plain FROM '{csv}' WITH (FORMAT csv)"], args.repeat, pg_env,
                                 before=truncate), args.repeat))
        if args.course_pg_repeat:
            rows.append(Row("month -> Postgres (1.37 M rows)", "course to_sql (every row)",
                            *measure([*CASES, "pg_course", f"src={src}", "table=bench_course"], args.course_pg_repeat),
                            args.course_pg_repeat))
        rows.append(Row("month -> Postgres (1.37 M rows)", "project load_postgres (COPY)",
                        *measure([*CASES, "pg_project", f"parquet={parquet}", "table=bench_project"], args.repeat),
                        args.repeat))

        # 3. month -> BigQuery (emulator)
        from google.cloud import storage
        key = "data/yellow/yellow_tripdata_2021-01.parquet"
        storage.Client(project=os.environ["GOOGLE_CLOUD_PROJECT"]).bucket(os.environ["GCS_BUCKET"]).blob(key) \
            .upload_from_filename(str(parquet))
        uri = f"gs://{os.environ['GCS_BUCKET']}/{key}"
        for method, case, repeat in [("gs:// load job (limit)", ["bq_load_job", f"uri={uri}"], args.repeat),
                                     ("course to_gbq (whole DataFrame)", ["bq_course", f"parquet={parquet}",
                                                                          "table=bench_course"], args.repeat),
                                     ("project write_bq (pandas-gbq, staged)", ["bq_project", f"parquet={parquet}"],
                                      args.repeat)]:
            rows.append(Row("month -> BigQuery emulator (1.37 M rows)", method, *measure([*CASES, *case], repeat), repeat))

        # 4. peak memory of whole flows, small and large month (served full-size by the stack's mirror,
        #    which makes a month on first request: ask for them before measuring)
        import urllib.request
        for path in ("yellow/yellow_tripdata_2021-01.csv.gz", "yellow/yellow_tripdata_2019-03.csv.gz"):
            urllib.request.urlopen(urllib.request.Request(f"{os.environ['NYC_TLC_BASE_URL']}/{path}", method="HEAD"),
                                   timeout=600).close()
        for script in ("etl_web_to_gcs.py", "etl_web_to_postgres.py"):
            for year, month, label in (("2021", "1", "1.37 M"), ("2019", "3", "7.83 M")):
                cmd = [PY, str(REPO / "flows" / script), "--year", year, "--month", month]
                rows.append(Row(f"flow process, {label} rows", script.removesuffix(".py"),
                                *measure(cmd, args.repeat), args.repeat))
    finally:
        ctl.down()
        shutil.rmtree(work, ignore_errors=True)

    _ratios(rows)
    report(rows)


def _plain_table_sql() -> str:
    from nyctaxi.postgres import PG_TYPES
    from nyctaxi.schema import COLUMNS

    cols = ", ".join(f'"{name}" {PG_TYPES[kind]}' for name, kind in COLUMNS["yellow"])
    return f"DROP TABLE IF EXISTS bench_plain; CREATE TABLE bench_plain ({cols})"


def _ratios(rows: list[Row]) -> None:
    by_step: dict[str, list[Row]] = {}
    for row in rows:
        by_step.setdefault(row.step, []).append(row)
    for step_rows in by_step.values():
        limit = next((r for r in step_rows if "limit" in r.method or "raw" in r.method), None)
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
        lines.append(f"| {r.step} | {r.method} | {r.seconds:.2f} | {fmt(r.vs_limit)} | {fmt(r.vs_course)} | "
                     f"{r.peak_rss_mb:.0f} | {r.runs} |")
    table = "\n".join(lines)
    print(table)
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.md").write_text(table + "\n")
    (results / "latest.json").write_text(json.dumps({"machine": machine, "rows": [asdict(r) for r in rows]}, indent=2))


if __name__ == "__main__":
    main()

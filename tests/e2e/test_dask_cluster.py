"""A Dask cluster the way users run one across machines: `dask scheduler` and two `dask worker`
processes started from the CLI, each with a working folder and a data root of its own (as if on
its own machine), sharing only the Prefect API, the bucket and the databases; the backfill runs
on it with `--dask-address`. One worker dies mid-backfill: every month still lands, once.

Each test publishes its months on a release server of its own, with a row count no other test
uses: a new edition of each month, so the backfill loads every one whatever the session loaded
before, and the counts say it was this edition, once.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from stack.services import free_port

from faults import FaultServer
from helpers import BIN, MIRROR_ROWS, REPO, postgres_counts, run, stop_group

MACHINES = ("a", "b")


def start(log: Path, cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@contextmanager
def dask_cluster(tmp_path: Path, base_url: str) -> Iterator[tuple[str, dict[str, subprocess.Popen]]]:
    """A scheduler and one worker per machine (one thread each: a month at a time). What each
    machine has, the scheduler's included: this checkout and its venv, ``flows/`` on PYTHONPATH
    (the scheduler unpickles the tasks, which name their modules); the workers also the Prefect
    API's address and the stack's other settings in their environment, and a data root of their own."""
    address = f"tcp://127.0.0.1:{free_port()}"
    flows = {"PYTHONPATH": str(REPO / "flows")}
    scheduler = start(tmp_path / "scheduler.log", [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                                   address.rsplit(":", 1)[1], "--no-dashboard"],
                      {**os.environ, **flows}, tmp_path)
    workers = {}
    for name in MACHINES:
        machine = tmp_path / name
        (machine / "dask").mkdir(parents=True)
        env = {**os.environ, **flows, "NYC_TLC_DATA_DIR": str(machine / "data"), "NYC_TLC_BASE_URL": base_url}
        workers[name] = start(machine / "worker.log", [str(BIN / "dask"), "worker", address, "--name", name,
                                                       "--nthreads", "1", "--memory-limit", "2GiB",
                                                       "--local-directory", str(machine / "dask"), "--no-dashboard"],
                              env, machine)
    try:
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(len(MACHINES), timeout=60)
        yield address, workers
    finally:
        for process in [*workers.values(), scheduler]:
            stop_group(process)


def backfill(address: str, months: tuple[str, str]) -> list[str]:
    return [str(BIN / "python"), str(REPO / "flows" / "etl_backfill.py"), "--start", months[0], "--end", months[1],
            "--colors", "fhv", "--destinations", "lake", "postgres", "--dask-address", address]


def landed(tmp_path: Path, machine: str) -> set[str]:
    return {p.name for p in (tmp_path / machine / "data" / "fhv").glob("*.parquet")}


def test_a_backfill_on_a_cli_started_cluster_spreads_the_months_over_both_machines(tmp_path):
    files = [f"fhv_tripdata_2020-{m:02}.csv.gz" for m in range(7, 11)]
    rows = MIRROR_ROWS + 7
    with FaultServer(tmp_path / "release", rows=rows) as release, \
            dask_cluster(tmp_path, release.base_url) as (address, _):
        env = {**os.environ, "NYC_TLC_BASE_URL": release.base_url, "NYC_TLC_DATA_DIR": str(tmp_path)}
        out = run(*backfill(address, ("2020-07", "2020-10")), env=env)
    assert "4 months asked, 0 already loaded and unchanged, 4 to run" in out
    counts = postgres_counts("fhv_tripdata")
    assert {f: counts.get(f) for f in files} == dict.fromkeys(files, rows)
    # Each month's files stayed on the machine that ran it, and both machines ran months.
    on_a, on_b = landed(tmp_path, "a"), landed(tmp_path, "b")
    assert on_a and on_b and not on_a & on_b
    assert on_a | on_b == {f.replace(".csv.gz", ".parquet") for f in files}
    assert not (tmp_path / "fhv").exists()  # nothing ran in the backfill's own process


@pytest.mark.timeout(600)
def test_a_machine_lost_mid_backfill_leaves_every_month_loaded_once(tmp_path):
    months = range(1, 7)
    files = [f"fhv_tripdata_2021-{m:02}.csv.gz" for m in months]
    rows = MIRROR_ROWS + 11
    with FaultServer(tmp_path / "release", rows=rows, slow_s=4) as release, \
            dask_cluster(tmp_path, release.base_url) as (address, workers):
        for m in months:  # every download takes a while: the kill falls in the middle of the work
            release.script("fhv", 2021, m, "slow")
        env = {**os.environ, "NYC_TLC_BASE_URL": release.base_url, "NYC_TLC_DATA_DIR": str(tmp_path)}
        first = start(tmp_path / "backfill.log", backfill(address, ("2021-01", "2021-06")), env,
                      tmp_path)
        deadline = time.monotonic() + 120
        while not landed(tmp_path, "b"):  # machine b has finished a month and is into its next
            assert time.monotonic() < deadline and first.poll() is None, (tmp_path / "backfill.log").read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(1)  # into its next month's download (4 s)
        stop_group(workers["b"], signals=(signal.SIGKILL,))  # the machine goes away, nanny and all
        first.wait(timeout=300)
        if first.returncode != 0:  # what the cluster could not finish, a second run does
            run(*backfill(address, ("2021-01", "2021-06")), env=env)
    counts = postgres_counts("fhv_tripdata")
    assert {f: counts.get(f) for f in files} == dict.fromkeys(files, rows)
    assert landed(tmp_path, "a") | landed(tmp_path, "b") == {f.replace(".csv.gz", ".parquet") for f in files}

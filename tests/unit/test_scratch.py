"""Scratch folders per process: what a killed process left is removed by the next one, nothing else."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from nyctaxi import scratch

REPO = Path(__file__).resolve().parents[2]
# A process that makes its scratch folder, writes a partial file into it and prints the folder.
MAKE_SCRATCH = ("import sys, time; from pathlib import Path; from nyctaxi import scratch; "
                "d = scratch.scratch_dir(Path(sys.argv[1])); (d / 'month.parquet').write_bytes(b'half'); "
                "print(d, flush=True); time.sleep(float(sys.argv[2]))")


def other_process(folder: Path, lives_s: float) -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen([sys.executable, "-c", MAKE_SCRATCH, str(folder), str(lives_s)],
                               env={**os.environ, "PYTHONPATH": str(REPO / "flows")}, stdout=subprocess.PIPE, text=True)
    return process, Path(process.stdout.readline().strip())


def test_a_dead_process_s_folder_is_removed_and_a_running_one_s_kept(tmp_path):
    dead, dead_dir = other_process(tmp_path, 0)
    dead.wait()
    alive, alive_dir = other_process(tmp_path, 60)
    try:
        mine = scratch.scratch_dir(tmp_path)
        assert mine.name == scratch.owner() and mine.name.startswith(f"{socket.gethostname()}-{os.getpid()}-")
        assert not dead_dir.exists()
        assert (alive_dir / "month.parquet").read_bytes() == b"half"
    finally:
        alive.kill()
        alive.wait()


def test_another_host_s_folder_is_kept_until_it_is_a_day_old(tmp_path):
    fresh, stale = tmp_path / "other-host-12-345", tmp_path / "other-host-13-346"
    loose = tmp_path / "yellow_tripdata_2021-01.abcd1234.parquet"  # as an older version staged files
    for folder in (fresh, stale):
        folder.mkdir()
        (folder / "m.parquet").write_bytes(b"x")
    loose.write_bytes(b"x")
    day_ago = time.time() - scratch.FOREIGN_MAX_AGE_S - 60
    for path in (stale, loose):
        os.utime(path, (day_ago, day_ago))
    scratch.scratch_dir(tmp_path)
    assert fresh.exists() and not stale.exists() and not loose.exists()

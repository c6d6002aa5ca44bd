"""Telling a flow run whose process is gone from one whose process still runs."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from stack.crashed_runs import _process_gone

HERE = socket.gethostname()


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_a_run_whose_process_runs_is_left_alone():
    started_later = iso(datetime.now(UTC) + timedelta(seconds=5))  # the process began before its run
    assert _process_gone(f"{HERE}:{os.getpid()}", started_later) is None


def test_a_run_whose_process_ended_is_gone():
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(ended.stdout)
    assert _process_gone(f"{HERE}:{pid}", iso(datetime.now(UTC))) == pid


def test_a_later_process_with_the_same_id_is_not_the_run_s():
    long_ago = iso(datetime.now(UTC) - timedelta(days=3650))  # the run began before this process
    assert _process_gone(f"{HERE}:{os.getpid()}", long_ago) == os.getpid()


def test_runs_of_other_hosts_or_containers_are_not_judged_here():
    assert _process_gone(f"another-host:{os.getpid() + 1}", None) is None
    assert _process_gone(f"{HERE}:0123abcd-container-id", None) is None
    assert _process_gone(None, None) is None

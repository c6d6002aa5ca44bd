"""What the flow scripts share on the command line: the course's flags (--year, --month or --months,
--color), and how a flow is run from there."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import urllib.request
from pathlib import Path

from artifacts import failure_reason
from nyctaxi import scratch
from nyctaxi.dataset import FIRST_YEAR, LAST_YEAR
from nyctaxi.failures import cannot_connect
from nyctaxi.resources import seconds, set_up_problem, setting
from nyctaxi.schema import COLORS


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with every option's default in --help, and a bad value told in one line."""

    def __init__(self, description: str | None) -> None:
        super().__init__(description=description, formatter_class=_Help)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def parser(description: str | None, *, months: list[int] | None = None) -> ArgumentParser:
    """``--month`` (default 1), or ``--months`` (default ``months``) when given; ``--year``, ``--color``."""
    p = ArgumentParser(description)
    allowed_months = range(1, 13)
    if months is None:
        p.add_argument("--month", type=int, default=1, choices=allowed_months, metavar="1..12", help="the month")
    else:
        p.add_argument("--months", type=int, nargs="+", default=months, choices=allowed_months, metavar="1..12",
                       help="the months")
    p.add_argument("--year", type=int, default=2021, choices=range(FIRST_YEAR, LAST_YEAR + 1),
                   metavar=f"{FIRST_YEAR}..{LAST_YEAR}", help="the year")
    p.add_argument("--color", default="yellow", choices=COLORS, help="the taxi colour")
    p.add_argument("--allow-shrink", action="store_true",
                   help="replace a loaded month even with an edition that has no rows or far fewer")
    return p


def run(flow, blocks: list[str], **parameters) -> None:
    """Run ``flow`` with ``parameters``, as the scripts do when called from a shell.

    The set-up comes first: a shell without the local stack's environment, a Prefect API out of
    reach or a missing block (``blocks``) stops the script before any download, with one line
    naming the fix (exit 2). A run that fails ends the output with one line saying why (exit 1);
    the traceback is above it, and in the run's logs. So does a run whose Prefect API goes away.
    """
    script = Path(sys.argv[0]).name
    problem = set_up_problem(blocks)
    if problem:
        print(f"{script}: {problem}", file=sys.stderr)
        sys.exit(2)
    watch = _LostApiWatch(script)
    logging.getLogger("prefect.flow_runs").addHandler(watch)
    try:
        state = flow(**parameters, return_state=True)
    except Exception as e:
        reason = cannot_connect(e)
        if reason is None:
            raise
        _say_api_lost(script, reason)
        sys.exit(1)
    finally:
        watch.cancel()
    if not state.is_completed():
        print(f"{script}: {flow.name} ended {state.name}: {failure_reason(state)}",
              file=sys.stderr)
        sys.exit(1)


def _say_api_lost(script: str, reason: str) -> None:
    """The last line of a script whose Prefect API went away mid-run."""
    # Prefect has logged the crash (its last line unended); the last line says what it was and what to do.
    sys.stdout.flush()
    print(f"\n{script}: the Prefect API at {setting('PREFECT_API_URL')} stopped answering mid-run ({reason}): "
          "once it is back (make stack), the run is marked Crashed; then run the script again (a month is "
          "replaced whole, never doubled)", file=sys.stderr, flush=True)


class _LostApiWatch(logging.Handler):
    """Ends the process (exit 1) with ``_say_api_lost``'s line if, ``NYC_TLC_API_LOST_GRACE_S`` after
    Prefect logged a flow run's crash on a failed API request, the run has still not returned.
    Prefect 2.20's engine can wait for ever there: when the API goes away while a task run is being
    set up, the flow run's crash is logged but the flow's call of the task never returns (seen with
    faulthandler: the main thread waits on the task's queue)."""

    def __init__(self, script: str) -> None:
        super().__init__(logging.ERROR)
        self.script, self.timer = script, None

    def emit(self, record: logging.LogRecord) -> None:
        if self.timer is None and record.getMessage().startswith("Crash detected! Request to "):
            self.timer = threading.Timer(seconds("NYC_TLC_API_LOST_GRACE_S"), self._give_up)
            self.timer.daemon = True
            self.timer.start()

    def cancel(self) -> None:
        logging.getLogger("prefect.flow_runs").removeHandler(self)
        if self.timer is not None:
            self.timer.cancel()

    def _give_up(self) -> None:
        try:  # what the API says now is the reason
            urllib.request.urlopen(f"{setting('PREFECT_API_URL')}/health", timeout=5).close()
            reason = "it answers again, too late for this run"
        except Exception as e:
            reason = cannot_connect(e) or f"{type(e).__name__}: {e}"
        _say_api_lost(self.script, reason)
        # The run's work is orphaned (nothing of it can be recorded) and each destination is safe to kill
        # (staged, then swapped in one step): end the process, whatever its main thread waits on, with
        # what it staged removed (no hook or finally block runs after os._exit).
        scratch.remove_mine()
        os._exit(1)

"""What every flow run does beside its own work, as Prefect state hooks (``@flow(..., **RUN_HOOKS)``).

- As it starts, it records the process that runs it. Prefect 2 has no heartbeat for flow runs:
  a process that dies while the API is out of reach (it cannot report its own crash) leaves its
  run Running for ever, and no failure notification fires. So each run records its process as
  Prefect's agents do for theirs (``infrastructure_pid`` = ``host:pid``), and when the local stack
  starts its Prefect server it marks Crashed the Running runs whose process is gone
  (``stack/crashed_runs.py``).
- As it ends, however it ends, it removes what its steps staged and did not consume: the flow
  run owns its staged files (``tasks.staging_path``). A step that consumes one removes it as soon
  as it is done with it, or has failed for the last time; files of a killed process are swept by
  the next run on the machine (``nyctaxi.scratch``).
- If it fails or crashes, it leaves an artifact with the reason first (``artifacts.record_failure``).

And ``@reason_first`` (under ``@flow``) makes a failed run's state message the reason itself, and
validates the parameters inside the run, so that a refused one fails a run that runs its hooks.
"""
from __future__ import annotations

import functools
import inspect
import os
import shutil
import socket

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.states import Failed

from artifacts import record_failure
from nyctaxi import lake


async def record_process(flow, flow_run, state) -> None:
    """``on_running``: record this process as the run's ``infrastructure_pid``, unless the agent that
    started it recorded its own (a container's id, say)."""
    async with get_client() as client:
        if (await client.read_flow_run(flow_run.id)).infrastructure_pid:
            return
        await client.update_flow_run(flow_run.id, infrastructure_pid=f"{socket.gethostname()}:{os.getpid()}")


def drop_staged_files(flow, flow_run, state) -> None:
    """On the run's end: remove the folder of the files it staged in this process."""
    shutil.rmtree(lake.run_staging_dir(str(flow_run.id)), ignore_errors=True)


RUN_HOOKS = {
    "on_running": [record_process],
    "on_completion": [drop_staged_files],
    "on_failure": [drop_staged_files, record_failure],
    "on_crashed": [drop_staged_files, record_failure],
    "on_cancellation": [drop_staged_files],
    # Prefect's validation of the parameters, done by ``reason_first`` inside the run instead: where
    # Prefect does it, a refused parameter fails the run before it starts, and a deployment's or a
    # subflow's run then runs no hook (no failure artifact).
    "validate_parameters": False,
}


def reason_first(fn):
    """Under ``@flow``: a run that fails ends Failed with the exception's type and message as its state
    message (what the UI, notifications and the command line show first), not after Prefect's
    "Flow run encountered an exception." The traceback is logged as Prefect logs it, and the
    exception still reaches whoever called the flow (a parent flow gets the same exception)."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            flow = FlowRunContext.get().flow
            if not flow.should_validate_parameters:  # RUN_HOOKS: Prefect's own validation, here
                args, kwargs = (), flow.validate_parameters(signature.bind_partial(*args, **kwargs).arguments)
            return fn(*args, **kwargs)
        except Exception as e:
            get_run_logger().exception("Encountered exception during execution:")
            return Failed(message=f"{type(e).__name__}: {e}", data=e)
    # The parameters' types, resolved where the flow is written: Prefect 3 would look the names of
    # string annotations (``from __future__ import annotations``) up in this module.
    run.__signature__ = signature = inspect.signature(fn, eval_str=True)
    return run

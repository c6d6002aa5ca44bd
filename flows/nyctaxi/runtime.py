"""What differs between the Prefect releases the project runs on (2.20, the course's; 3.x), in one place.

The flows, tasks, block scripts and the local stack are one code base; where an API they use
changed, the difference is here. Prefect is imported inside the functions only.
"""
from __future__ import annotations

from importlib.metadata import version

from .resources import seconds

# From the installed metadata, not ``prefect.__version__``: importing prefect reads its settings, and
# the local stack's tools decide on the runtime before they set the environment Prefect should read.
PREFECT_VERSION = version("prefect")
PREFECT_MAJOR = int(PREFECT_VERSION.split(".")[0])


def final_state(future, timeout: float | None = None):
    """The final state of a task's future, waiting up to ``timeout`` seconds (None: as long as it
    takes); None if it has not finished by then. Prefect 2's ``wait`` returns the state; 3's
    returns nothing and the future's ``state`` says."""
    state = future.wait(timeout)
    if PREFECT_MAJOR >= 3:
        state = future.state
        if not state.is_final():
            return None
        # A wait that timed out just before the run ended leaves 3's future reading the state from
        # the API, which has no result (MissingResult): the run is over, so a second wait returns at
        # once and keeps the state the task returned, result included.
        future.wait()
        return future.state
    return state


# --- alerts -----------------------------------------------------------------------------------
# Prefect 2 sends a notification block through a flow-run notification policy; Prefect 3 removed
# the policies for automations. Both say the same thing.
ALERT_STATES = ["Failed", "Crashed"]
ALERT_PREFIX = "alert on "  # the names of the automations alert_on_failure makes
POLICY_MESSAGE = ("Flow run {flow_run_name} of flow {flow_name} entered state {flow_run_state_name}: "
                  "{flow_run_state_message}\n{flow_run_url}")
AUTOMATION_SUBJECT = "Prefect flow run {{ flow_run.name }}: {{ flow_run.state.name }}"
AUTOMATION_BODY = ("Flow run {{ flow_run.name }} of flow {{ flow.name }} entered state {{ flow_run.state.name }}: "
                   "{{ flow_run.state.message }}\n{{ flow_run|ui_url }}")
# Prefect 3's flows send a heartbeat every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (the stack sets
# heartbeat_s()); a run that misses them for silence_s() is Crashed (its process is gone), which alerts.


def heartbeat_s() -> int:
    """Seconds between a flow run's heartbeats on the local stack (``NYC_TLC_HEARTBEAT_S``, 30)."""
    return int(seconds("NYC_TLC_HEARTBEAT_S"))


def silence_s() -> int:
    """Seconds without a heartbeat after which a run is Crashed (``NYC_TLC_SILENCE_S``, 90)."""
    return int(seconds("NYC_TLC_SILENCE_S"))

CRASH_SILENT_RUNS = "crash flow runs whose heartbeats stopped"


def _alert_name(block_document_id) -> str:
    return f"{ALERT_PREFIX}{' or '.join(ALERT_STATES)} via block {block_document_id}"


async def _replace_automation(client, automation) -> None:
    for old in await client.read_automations_by_name(automation.name):
        await client.delete_automation(old.id)
    await client.create_automation(automation)


async def alert_on_failure(block_document_id) -> None:
    """Send the notification block when any flow run ends Failed or Crashed; replaces what an
    earlier call made for the same block."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        if PREFECT_MAJOR < 3:
            from prefect.client.schemas.filters import FlowRunNotificationPolicyFilter

            for policy in await client.read_flow_run_notification_policies(FlowRunNotificationPolicyFilter()):
                if policy.block_document_id == block_document_id:
                    await client.delete_flow_run_notification_policy(policy.id)
            await client.create_flow_run_notification_policy(
                block_document_id=block_document_id, state_names=ALERT_STATES, tags=[],
                message_template=POLICY_MESSAGE)
            return
        from prefect.events.actions import SendNotification
        from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

        await _replace_automation(client, AutomationCore(
            name=_alert_name(block_document_id),
            trigger=EventTrigger(match={"prefect.resource.id": "prefect.flow-run.*"},
                                 expect={f"prefect.flow-run.{state}" for state in ALERT_STATES},
                                 posture=Posture.Reactive, threshold=1),
            actions=[SendNotification(block_document_id=block_document_id,
                                      subject=AUTOMATION_SUBJECT,
                                      body=AUTOMATION_BODY)]))


async def stop_alerts() -> None:
    """Remove every alert ``alert_on_failure`` made."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        if PREFECT_MAJOR < 3:
            from prefect.client.schemas.filters import FlowRunNotificationPolicyFilter

            for policy in await client.read_flow_run_notification_policies(FlowRunNotificationPolicyFilter()):
                await client.delete_flow_run_notification_policy(policy.id)
            return
        for automation in await client.read_automations():
            if automation.name.startswith(ALERT_PREFIX):
                await client.delete_automation(automation.id)


async def crash_silent_runs() -> None:
    """Prefect 3: an automation that sets Crashed a flow run that has been Running for ``silence_s()``
    seconds without a heartbeat (its process died, or its machine). Prefect 2 has no heartbeats: the stack marks such
    runs when its server starts (``stack/crashed_runs.py``)."""
    if PREFECT_MAJOR < 3:
        return
    from datetime import timedelta

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    ended = {f"prefect.flow-run.{state}" for state in ("Completed", "Failed", "Cancelled", "Crashed")}
    silence = silence_s()
    async with get_client() as client:
        await _replace_automation(client, AutomationCore(
            name=CRASH_SILENT_RUNS,
            trigger=EventTrigger(match={"prefect.resource.id": "prefect.flow-run.*"},
                                 for_each={"prefect.resource.id"},
                                 # Armed by Running too (an event of the server's own): a run
                                 # whose process died before its first heartbeat got out is caught.
                                 after={"prefect.flow-run.Running", "prefect.flow-run.heartbeat"},
                                 expect={"prefect.flow-run.heartbeat", *ended},
                                 posture=Posture.Proactive, threshold=1, within=timedelta(seconds=silence)),
            actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                        message=f"no heartbeat for {silence} s: the flow run's process is gone")]))

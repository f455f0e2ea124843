"""Timer triggers: the SECAS sync, the case lifecycle check, and Graph subscription upkeep.

Each puts work on the queue; the queue worker runs it. Schedules are NCRONTAB expressions from app
settings, so operations can change them without a deployment.
"""

from __future__ import annotations

import azure.functions as func

from flows.queue_wire import message_json

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions ships it untyped

WORK_QUEUE = "%BRIDGE_WORK_QUEUE%"
STORAGE = "AzureWebJobsStorage"


@blueprint.timer_trigger(arg_name="timer", schedule="%BRIDGE_SYNC_SCHEDULE%", run_on_startup=False)
@blueprint.queue_output(arg_name="work", queue_name=WORK_QUEUE, connection=STORAGE)
def secas_sync(timer: func.TimerRequest, work: func.Out[str]) -> None:
    """Queue one SECAS sync (the flow reads the CPL location from settings)."""
    work.set(message_json("recurrence", flow="secas-sync"))


@blueprint.timer_trigger(arg_name="timer", schedule="%BRIDGE_LIFECYCLE_SCHEDULE%", run_on_startup=False)
@blueprint.queue_output(arg_name="work", queue_name=WORK_QUEUE, connection=STORAGE)
def case_lifecycle(timer: func.TimerRequest, work: func.Out[str]) -> None:
    """Queue the hourly case checks (escalation of long waits)."""
    work.set(message_json("recurrence", flow="case-lifecycle"))


@blueprint.timer_trigger(arg_name="timer", schedule="%BRIDGE_GRAPH_RENEW_SCHEDULE%", run_on_startup=True)
@blueprint.queue_output(arg_name="work", queue_name=WORK_QUEUE, connection=STORAGE)
def graph_upkeep(timer: func.TimerRequest, work: func.Out[str]) -> None:
    """Renew the list subscription and run a delta pass: list subscriptions get no 'missed' events,
    so this pass is the safety net for any notification Graph dropped."""
    work.set(message_json("list_changed", {"renew_subscription": True}))

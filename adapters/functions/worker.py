"""Queue triggers: the worker that runs flows, and the watcher of the poison queue.

The bridge is built once per worker process, on the first message (one Graph client, one set of
store clients per worker), never at import.
"""

from __future__ import annotations

import logging

import azure.functions as func

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions ships it untyped

WORK_QUEUE = "%BRIDGE_WORK_QUEUE%"
POISON_QUEUE = "%BRIDGE_WORK_QUEUE%-poison"
STORAGE = "AzureWebJobsStorage"
log = logging.getLogger(__name__)


@blueprint.queue_trigger(arg_name="msg", queue_name=WORK_QUEUE, connection=STORAGE)
def run_work(msg: func.QueueMessage) -> None:
    """Run what a message triggers. A failed *run* is recorded and shown to operators; only a failure
    of the bridge itself raises, so the host retries the message and finally moves it to poison."""
    from adapters.functions.runtime import current_app  # heavy: built on first use only
    from flows.queue_message import Message

    message = Message.model_validate_json(msg.get_body())
    log.info("message %s (%s) dequeued %s time(s)", message.message_id, message.type, msg.dequeue_count)
    current_app().process(message)


@blueprint.queue_trigger(arg_name="msg", queue_name=POISON_QUEUE, connection=STORAGE)
def poison_alert(msg: func.QueueMessage) -> None:
    """A message the worker gave up on: keep it in a table until an operator puts it back (the host
    deletes it from the poison queue once this returns), then tell the operators, with what it was
    (never its payload). If either fails, the failure is logged and the message put back, hidden, to be
    tried later: raised, it would end in ``<queue>-poison-poison``, which nothing watches
    (``BridgeApp.alert_poisoned``)."""
    from adapters.azure_storage.poisoned import identify
    from adapters.functions.runtime import current_app

    body = msg.get_body()
    # Named as ``poisoned`` lists it (an unreadable one by its digest), so the card's requeue works.
    message_id, kind, flow = identify(body)
    what = {"message_id": message_id, "type": kind, "flow": flow}
    what["poisoning"] = msg.id  # the poison queue's own message: a retry of this trigger keeps it
    current_app().alert_poisoned(what, body)

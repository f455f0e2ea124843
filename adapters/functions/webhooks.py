"""HTTP triggers: Microsoft Graph change notifications and form responses pushed by Power Automate.

Both only check and enqueue: Graph must be answered within 3 seconds, and a response is safe once
it is on the queue. Neither imports the engine or msgraph. What they refuse, and why, is in
``adapters.functions.wire``; a refused call queues nothing.
"""

from __future__ import annotations

import hmac
import json
import os
from typing import Any

import azure.functions as func

from adapters.functions.wire import Refused, json_body, queued
from flows.queue_wire import NotAResponse, message_json, response_id_of

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions ships it untyped

WORK_QUEUE = "%BRIDGE_WORK_QUEUE%"
STORAGE = "AzureWebJobsStorage"
MAX_RESOURCES = 20  # named (each cut to 400 characters) in a list_changed message; the delta pass
# reads the whole list whatever they are, so they only inform


@blueprint.route(route="graph/notifications", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@blueprint.queue_output(arg_name="work", queue_name=WORK_QUEUE, connection=STORAGE)
def graph_notifications(req: func.HttpRequest, work: func.Out[str]) -> func.HttpResponse:
    """Validation handshake, or a batch of list-change notifications: one delta pass is queued."""
    token = req.params.get("validationToken")
    if token is not None:  # Graph checks the endpoint: echo the token exactly, as plain text
        nosniff = {"X-Content-Type-Options": "nosniff"}  # a browser must not take the echo for HTML
        return func.HttpResponse(token, status_code=200, mimetype="text/plain", headers=nosniff)
    try:
        notifications = _verified_notifications(json_body(req))
        resources = sorted({str(n.get("resource", ""))[:400] for n in notifications})
        body: dict[str, Any] = {"resources": resources[:MAX_RESOURCES]}
        if len(resources) > MAX_RESOURCES:
            body["resources_not_named"] = len(resources) - MAX_RESOURCES
        message = queued(message_json("list_changed", body))
    except Refused as refused:
        return refused.response()
    work.set(message)
    return func.HttpResponse(status_code=202)


def _verified_notifications(payload: Any) -> list[dict[str, Any]]:
    # In any case, as the settings read it (pydantic-settings): one spelling must not pass the
    # bridge's checks and leave the webhook refusing every notification (503).
    expected = next(
        (value for name, value in os.environ.items() if name.upper() == "BRIDGE_GRAPH_CLIENT_STATE"), ""
    )
    if not expected:
        raise Refused(503, "the bridge has no Graph client state configured")
    if not isinstance(payload, dict) or not isinstance(payload.get("value"), list) or not payload["value"]:
        raise Refused(400, "expected a JSON object with a non-empty 'value' array of notifications")
    notifications: list[dict[str, Any]] = payload["value"]
    for index, notification in enumerate(notifications):
        given = notification.get("clientState") if isinstance(notification, dict) else None
        # Constant-time: the client state is the shared secret that tells Graph's calls from forgeries.
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), expected.encode()):
            raise Refused(403, f"notification {index}: clientState does not match")
    return notifications


@blueprint.route(route="forms/responses", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@blueprint.queue_output(arg_name="work", queue_name=WORK_QUEUE, connection=STORAGE)
def form_responses(req: func.HttpRequest, work: func.Out[str]) -> func.HttpResponse:
    """A form response pushed by a Power Automate HTTP action (function key auth): queue it."""
    try:
        payload = json_body(req)
        try:
            response_id = response_id_of(payload)
        except NotAResponse as error:
            raise Refused(400, str(error)) from error
        message = queued(message_json("form_response", {"response_id": response_id, "payload": payload}))
    except Refused as refused:
        return refused.response()
    work.set(message)
    answer = json.dumps({"accepted": True, "response_id": response_id})
    return func.HttpResponse(answer, status_code=202, mimetype="application/json")

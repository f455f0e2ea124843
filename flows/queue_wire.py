"""The work queue's wire format, written without pydantic: the HTTP and timer triggers import only
this, so a cold worker answers Graph's webhook without building any model. ``Message`` in
``flows.queue_message`` reads the same JSON (a test holds the two together)."""

from __future__ import annotations

import json
import uuid
from typing import Any


class NotAResponse(ValueError):
    """A payload that cannot be queued as a form response; says why."""


def message_json(
    type: str, body: dict[str, Any] | None = None, *, flow: str | None = None, event: str | None = None
) -> str:
    """A new queue message as JSON, with a fresh id."""
    message = {"message_id": uuid.uuid4().hex, "type": type, "event": event, "flow": flow, "body": body or {}}
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def response_id_of(payload: Any) -> str:
    """The response id of a Forms response or a SharePoint list item; ``NotAResponse`` if none.

    Only the id is checked here; the notification itself is validated by the intake flow, which
    records a rejection instead of losing the response.
    """
    if not isinstance(payload, dict):
        raise NotAResponse("expected a JSON object: one form response")
    fields = payload.get("fields") if isinstance(payload.get("fields"), dict) else {}
    response_id = payload.get("responseId", fields.get("ResponseId") if fields else None)
    if isinstance(response_id, bool) or not isinstance(response_id, int | str) or str(response_id) == "":
        raise NotAResponse("the response has no responseId")
    text = str(response_id).strip()
    if len(text) > 64 or not text.replace("-", "").isalnum():
        raise NotAResponse("responseId must be at most 64 letters, digits or dashes")
    return text

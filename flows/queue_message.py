"""The message on the work queue, in a module of its own so that the webhook path, which must
answer Graph within 3 seconds, can build one without importing the engine."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TriggerType = Literal["form_response", "recurrence", "event", "http", "list_changed"]
"""``list_changed`` is not a flow trigger: it asks a worker for a SharePoint delta pass, whose items
then arrive as ``form_response`` messages."""


class Message(BaseModel):
    """One unit of queued work: a trigger, with the id its runs derive from."""

    model_config = ConfigDict(extra="forbid")

    message_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    type: TriggerType
    event: str | None = None
    flow: str | None = None  # only this flow (for http and recurrence triggers aimed at one flow)
    body: dict[str, Any] = Field(default_factory=dict)


class NotAResponse(ValueError):
    """A payload that cannot be queued as a form response; says why."""


def form_response_message(payload: Any) -> Message:
    """A Forms response or a SharePoint list item, queued under its response id.

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
    return Message(type="form_response", body={"response_id": text, "payload": payload})

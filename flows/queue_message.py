"""The message on the work queue, in a module of its own so that the webhook path, which must
answer Graph within 3 seconds, can build one without importing the engine."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flows.queue_wire import NotAResponse, response_id_of

__all__ = ["Message", "NotAResponse", "TriggerType", "form_response_message"]

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


def form_response_message(payload: Any) -> Message:
    """A Forms response or a SharePoint list item, queued under its response id."""
    return Message(type="form_response", body={"response_id": response_id_of(payload), "payload": payload})

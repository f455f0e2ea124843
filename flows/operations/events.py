"""Events between flows: an action puts one on the work queue; flows triggered by it run next."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from flows.engine.registry import ActionContext

_EVENT_IDS = uuid.UUID("8f6b2f0e-5d1c-4f1e-9a44-3c2f6d1b7a10")  # namespace of event message ids


class Emits(Protocol):
    def __call__(self, event: str, body: Mapping[str, Any], *, message_id: str) -> object: ...


class EventOperations:
    def __init__(self, emit: Emits) -> None:
        self._emit = emit

    def emit(self, context: ActionContext, event: str, body: dict[str, Any]) -> dict[str, Any]:
        """Queue an event under a message id made from the action's idempotency key.

        The engine remembers the key once the action is recorded; a process that dies between the
        event's queueing and that record queues it again on redelivery, but under the same id, so
        the flows it triggers run under the same run ids and the second copy finds them done.
        """
        message_id = uuid.uuid5(_EVENT_IDS, context.idempotency_key).hex
        self._emit(event, {**body, "caused_by": context.run_id}, message_id=message_id)
        return {"event": event, "message_id": message_id}

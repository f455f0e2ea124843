"""Events between flows: an action puts one on the work queue; flows triggered by it run next."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from flows.engine.registry import ActionContext
from flows.queue_message import Message


class Emits(Protocol):
    def __call__(self, event: str, body: Mapping[str, Any], *, once_per: str) -> Message: ...


class EventOperations:
    def __init__(self, emit: Emits) -> None:
        self._emit = emit

    def emit(self, context: ActionContext, event: str, body: dict[str, Any]) -> dict[str, Any]:
        """Queue an event once per idempotency key: a process that dies between the queueing and the
        engine's record of this action queues it again on redelivery, as the same message."""
        message = self._emit(event, {**body, "caused_by": context.run_id}, once_per=context.idempotency_key)
        return {"event": event, "message_id": message.message_id}

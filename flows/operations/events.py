"""Events between flows: an action puts one on the work queue; flows triggered by it run next."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flows.engine.registry import ActionContext


class EventOperations:
    def __init__(self, emit: Callable[[str, Mapping[str, Any]], object]) -> None:
        self._emit = emit

    def emit(self, context: ActionContext, event: str, body: dict[str, Any]) -> dict[str, Any]:
        """Queue an event. Its idempotency key (remembered by the engine) stops a second copy."""
        self._emit(event, {**body, "caused_by": context.run_id})
        return {"event": event}

"""Connectors by name: what ``use: smi.load`` in a flow file calls.

Registration is explicit (no dynamic imports, no ``eval``): the composition root registers each
operation with whether it has a side effect, so that dry runs and idempotency keys know which do.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from flows.errors import BadInput


class UnknownConnector(BadInput):
    """A ``use:`` naming an operation nobody registered."""


@dataclass(frozen=True)
class ActionContext:
    """What an operation knows about the call it serves."""

    flow: str
    run_id: str
    action: str
    idempotency_key: str
    now: datetime
    attempt: int = 1


Operation = Callable[..., Any]
"""Called as ``operation(context, **inputs)``; returns JSON-shaped outputs."""


@dataclass
class Connector:
    name: str
    operation: Operation
    side_effect: bool
    description: str

    @cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.operation)

    def call(self, context: ActionContext, inputs: dict[str, Any]) -> Any:
        # Inputs that do not fit the signature fail at the call, before the operation runs; they are
        # told apart from a TypeError raised inside it by binding, only then (binding every call
        # cost a tenth of the engine's own time per action).
        try:
            return self.operation(context, **inputs)
        except TypeError as error:
            try:
                self.signature.bind(context, **inputs)
            except TypeError:
                raise BadInput(f"{self.name}: inputs do not fit: {error}") from error
            raise


class ConnectorRegistry:
    def __init__(self) -> None:
        self._connectors: dict[str, Connector] = {}

    def register(self, name: str, operation: Operation, *, side_effect: bool, description: str = "") -> None:
        if name in self._connectors:
            raise ValueError(f"connector {name!r} is registered twice")
        doc = description or (inspect.getdoc(operation) or "").split("\n", 1)[0]
        self._connectors[name] = Connector(name, operation, side_effect, doc)

    def get(self, name: str) -> Connector:
        try:
            return self._connectors[name]
        except KeyError:
            known = ", ".join(sorted(self._connectors))
            raise UnknownConnector(f"unknown connector {name!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._connectors

    def __iter__(self) -> Iterator[Connector]:
        return iter(sorted(self._connectors.values(), key=lambda connector: connector.name))

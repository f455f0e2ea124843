"""Run history: every run of a flow as a record of typed states, and the port that keeps it.

Each action's result is written before the next action starts, keyed by run and action path, so a
run that is cut off and delivered again resumes where it was. Secure values are replaced by
``REDACTED`` before anything reaches this record.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from flows.engine.definition import ActionStatus

REDACTED = "***redacted***"


class RunStatus(StrEnum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ActionRecord(BaseModel):
    """One action's result in one run (one iteration's, inside a ``foreach``)."""

    path: str
    status: ActionStatus
    attempts: int = 0
    inputs: Any = None
    outputs: Any = None
    redacted: bool = False  # outputs were secure: a resumed run must call the action again
    error: str | None = None
    # The failure may pass (a ``TransientError`` of any kind, retries spent, or a time-out): what a
    # later action reads as ``actions.<name>.transient``, rather than a class name in ``error``.
    transient: bool = False
    idempotency_key: str | None = None
    deduplicated: bool = False  # the side effect had been made before: its earlier result was reused
    started_at: datetime
    ended_at: datetime


class RunRecord(BaseModel):
    run_id: str
    flow: str
    flow_version: str
    trigger: dict[str, Any]
    keys: list[str] = Field(default_factory=list)
    status: RunStatus = RunStatus.RUNNING
    started_at: datetime
    ended_at: datetime | None = None
    replay_of: str | None = None
    # The first run of the chain this one replays: a flow without a business key keys its side
    # effects by it, so a resubmit makes none of them twice.
    replay_root: str | None = None
    replay_from: str | None = None
    dry_run: bool = False
    error: str | None = None
    actions: dict[str, ActionRecord] = Field(default_factory=dict)

    def failed_actions(self) -> list[ActionRecord]:
        return [a for a in self.actions.values() if a.status in {ActionStatus.FAILED, ActionStatus.TIMED_OUT}]


class RunStore(Protocol):
    """Where run histories live (SQLite locally, Table storage in Azure)."""

    def start(self, run: RunRecord) -> bool:
        """Keep a new run; False (nothing written) when the run id exists already."""
        ...

    def get(self, run_id: str) -> RunRecord | None: ...

    def record_action(self, run_id: str, record: ActionRecord) -> None:
        """Write (or overwrite) one action's result: durable when this returns."""
        ...

    def finish(
        self, run_id: str, status: RunStatus, *, ended_at: datetime, error: str | None, keys: list[str]
    ) -> None:
        """Close a run, adding the business keys learnt while it ran."""
        ...

    def find(
        self,
        *,
        key: str | None = None,
        flow: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Newest first; ``key`` matches any business key the run carries."""
        ...


@runtime_checkable
class SharedTransactions(Protocol):
    """What a store offers when its writes can share one transaction with another store's.

    The engine writes an action's record and the idempotency key of its side effect together when
    the run store and the idempotency store both offer this with the same ``transaction_scope``
    (the embedded stores on one SQLite file): one commit instead of two, and never one without the
    other. Stores without it (Azure tables, test wrappers) are written one after the other.
    """

    @property
    def transaction_scope(self) -> object:
        """Stores whose scopes are the same object can share a transaction."""
        ...

    def transaction(self) -> AbstractContextManager[object]:
        """One transaction around every write made inside it: all durable together, or none."""
        ...


def shares_transactions(one: object, other: object) -> bool:
    """Whether two stores' writes can share one transaction (``SharedTransactions``, same scope)."""
    return (
        isinstance(one, SharedTransactions)
        and isinstance(other, SharedTransactions)
        and one.transaction_scope is other.transaction_scope
    )

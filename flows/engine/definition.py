"""The flow format: what a flow file may say, as pydantic models.

A flow is a trigger and named actions. An action calls one connector operation (``use``), or holds
nested actions as a ``scope`` or a ``foreach``. ``runAfter`` says which actions must end first and in
which states; ``if`` skips an action when false. The JSON Schema kept in ``flows/flow.schema.json`` is
generated from these models, so an editor checks a flow as it is written.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

ACTION_NAME = r"^[a-z][a-z0-9_]*$"


class ActionStatus(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    TIMED_OUT = "TimedOut"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RetryPolicy(_Strict):
    """How often and how patiently a failing connector call is tried again.

    Only transient failures are retried; a Retry-After from the far side wins over the interval.
    Durations are ISO-8601 (``PT5S``).
    """

    type: Literal["none", "fixed", "exponential"] = "exponential"
    count: int = Field(default=4, ge=0, le=90)
    interval: timedelta = timedelta(seconds=2)
    maximum_interval: timedelta = Field(default=timedelta(minutes=1), alias="maximumInterval")

    @property
    def attempts(self) -> int:
        return 1 if self.type == "none" else 1 + self.count


NO_RETRY = RetryPolicy(type="none", count=0)


class Secure(_Strict):
    """Which sides of an action are kept out of the run history."""

    inputs: bool = False
    outputs: bool = False


RunAfter = dict[str, Annotated[list[ActionStatus], Field(min_length=1)]]
"""Which siblings must end first, and in which states; an empty list would mean 'never', so it is refused."""


class _ActionBase(_Strict):
    description: str = ""
    run_after: RunAfter = Field(default_factory=dict, alias="runAfter")
    condition: str | None = Field(default=None, alias="if")


class CallAction(_ActionBase):
    """Calls one connector operation with inputs written as expressions."""

    kind: Literal["call"] = "call"
    use: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
    inputs: dict[str, Any] = Field(default_factory=dict)
    retry: RetryPolicy | None = None
    # On a call only: a scope or for-each cannot be stopped part-way without stopping each action in it.
    timeout: timedelta | None = None
    secure: Secure = Secure()
    idempotency_key: str | None = Field(
        default=None,
        alias="idempotencyKey",
        description="Expression for the key handed to a side effect; by default the flow, the run's "
        "business key and the action's place. Set it when the same effect may be reached from several flows.",
    )


class ScopeAction(_ActionBase):
    """Groups actions; it ends Failed if any of its actions failed."""

    kind: Literal["scope"] = "scope"
    actions: dict[Annotated[str, Field(pattern=ACTION_NAME)], Action]


class ForEachAction(_ActionBase):
    """Runs its actions once per item of a list; ``item`` names the current one in expressions."""

    kind: Literal["foreach"] = "foreach"
    foreach: str
    concurrency: int = Field(default=1, ge=1, le=50)
    item_key: str | None = Field(
        default=None,
        alias="itemKey",
        description="Expression giving each item a stable key (default: its position) "
        "for history and idempotency.",
    )
    actions: dict[Annotated[str, Field(pattern=ACTION_NAME)], Action]


def _action_kind(value: Any) -> str:
    if isinstance(value, dict):
        if "foreach" in value:
            return "foreach"
        if "use" in value:
            return "call"
        if "actions" in value:
            return "scope"
    return "call"


Action = Annotated[
    Annotated[CallAction, Tag("call")]
    | Annotated[ScopeAction, Tag("scope")]
    | Annotated[ForEachAction, Tag("foreach")],
    Discriminator(_action_kind),
]


class Trigger(_Strict):
    """What starts a run: a form response, a schedule, an event from another flow, or an HTTP call."""

    type: Literal["form_response", "recurrence", "event", "http"]
    event: str | None = None  # for type: event, the event's name
    every: timedelta | None = None  # for type: recurrence
    path: str | None = None  # for type: http

    @model_validator(mode="after")
    def _needs_its_detail(self) -> Trigger:
        if self.type == "event" and not self.event:
            raise ValueError("an event trigger names its event (event: ...)")
        if self.type == "recurrence" and not self.every:
            raise ValueError("a recurrence trigger says how often (every: PT5M)")
        return self


class FlowDefinition(_Strict):
    """One flow file."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    description: str = ""
    triggers: list[Trigger] = Field(min_length=1)
    key: str | None = Field(
        default=None,
        description="Expression giving the run's business key (a response id, a CPL entry id). "
        "Idempotency keys of side effects derive from it, so a duplicate delivery changes nothing.",
    )
    keys: list[str] = Field(
        default_factory=list,
        description="Expressions evaluated when the run ends, giving more business keys to find it by "
        "(a supplier, a CPL entry id). Values that are empty are left out.",
    )
    secure_trigger: bool = Field(
        default=False,
        alias="secureTrigger",
        description="Keep the trigger out of the run history (it holds personal data); the engine keeps "
        "it apart, for resubmission only.",
    )
    retry: RetryPolicy = RetryPolicy()
    actions: dict[Annotated[str, Field(pattern=ACTION_NAME)], Action] = Field(min_length=1)


ScopeAction.model_rebuild()
ForEachAction.model_rebuild()
FlowDefinition.model_rebuild()

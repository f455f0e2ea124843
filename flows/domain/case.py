"""A case: one emergency notification followed from intake until its model reaches the EPCL.

The allowed transitions are the domain's. Every change (and every noteworthy event that is not a
change, such as an escalation) is appended to the case's timeline with its time, cause and evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from flows.domain.cpl import DeviceModelCombination
from flows.domain.matching import entry_not_loadable
from flows.domain.notification import EmergencyNotification


class CaseState(StrEnum):
    RECEIVED = "received"
    REJECTED = "rejected"
    AWAITING_CPL = "awaiting_cpl"
    NEEDS_ATTENTION = "needs_attention"
    LOADED = "loaded"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


S = CaseState
ALLOWED_TRANSITIONS: dict[CaseState, frozenset[CaseState]] = {
    # An open case closes when the CPL lists its combination on the EPCL before any emergency entry is
    # loaded for it (it appeared there first, or its entry was promoted while it needed attention).
    S.RECEIVED: frozenset({S.REJECTED, S.AWAITING_CPL, S.NEEDS_ATTENTION, S.LOADED, S.CLOSED}),
    # A re-check after SECAS corrects (or withdraws) its entry moves a case on, or back to waiting.
    S.AWAITING_CPL: frozenset({S.NEEDS_ATTENTION, S.LOADED, S.WITHDRAWN, S.REJECTED, S.CLOSED}),
    S.NEEDS_ATTENTION: frozenset({S.AWAITING_CPL, S.LOADED, S.REJECTED, S.WITHDRAWN, S.CLOSED}),
    # SECAS re-issued the loaded entry under a new id, and the new one differs: a person decides.
    S.LOADED: frozenset({S.CLOSED, S.WITHDRAWN, S.NEEDS_ATTENTION}),
    S.REJECTED: frozenset(),
    S.CLOSED: frozenset(),
    S.WITHDRAWN: frozenset(),
}
TERMINAL_STATES = frozenset(state for state, nexts in ALLOWED_TRANSITIONS.items() if not nexts)
NOT_LOADABLE = "the paired CPL entry may not be loaded"
"""The cause an assessment records when it finds a case's paired entry withdrawn (cancelled, expired):
from then on the case waits for SECAS, not for an operator (``Case.waiting_for_cpl_since``)."""


class LoadedAs(NamedTuple):
    """What a case loaded into the SMI, as its timeline recorded it when it was loaded."""

    entry_id: str
    combination: DeviceModelCombination
    accepted: tuple[str, ...]
    """The differences from the notification an operator had accepted for the load (none, mostly)."""
    at: datetime | None = None
    """When the load (or the following of a re-issue) was recorded."""


class IllegalTransition(ValueError):
    """A transition the process does not allow, e.g. closing a case that was never loaded."""

    def __init__(self, response_id: str, current: CaseState, requested: CaseState) -> None:
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[current])) or "none (final state)"
        super().__init__(
            f"case {response_id}: cannot go from {current.value} to {requested.value}; allowed: {allowed}"
        )
        self.current = current
        self.requested = requested


class TimelineEntry(BaseModel):
    """One recorded step in a case's life."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    from_state: CaseState | None
    to_state: CaseState
    cause: str
    evidence: dict[str, Any] = Field(default_factory=dict)


class Case(BaseModel):
    """One emergency notification's case, keyed by the form's response id."""

    response_id: str
    state: CaseState
    supplier: str = ""
    notification: EmergencyNotification | None = None
    responder: str = ""
    """Where to write about a notification that could not be read (``notification`` None), when its
    responder may be told why (``SupplierRegister.answers_to``); empty otherwise."""
    cpl_entry_id: str | None = None
    problems: list[str] = Field(default_factory=list)
    opened_at: datetime
    timeline: list[TimelineEntry] = Field(default_factory=list)
    version: int = 0  # bumped by the stores on every save: optimistic concurrency

    @classmethod
    def open(
        cls,
        response_id: str,
        *,
        at: datetime,
        supplier: str = "",
        notification: EmergencyNotification | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> Case:
        case = cls(
            response_id=response_id,
            state=CaseState.RECEIVED,
            supplier=supplier,
            notification=notification,
            opened_at=at,
        )
        case.timeline.append(
            TimelineEntry(
                at=at,
                from_state=None,
                to_state=CaseState.RECEIVED,
                cause="notification received",
                evidence=evidence or {},
            )
        )
        return case

    @property
    def is_final(self) -> bool:
        return self.state in TERMINAL_STATES

    def can_move_to(self, target: CaseState) -> bool:
        return target in ALLOWED_TRANSITIONS[self.state]

    def move_to(
        self,
        target: CaseState,
        *,
        at: datetime,
        cause: str,
        evidence: dict[str, Any] | None = None,
        problems: list[str] | None = None,
    ) -> None:
        """Make an allowed transition and record it; problems replace the previous ones."""
        if not self.can_move_to(target):
            raise IllegalTransition(self.response_id, self.state, target)
        self.timeline.append(
            TimelineEntry(at=at, from_state=self.state, to_state=target, cause=cause, evidence=evidence or {})
        )
        self.state = target
        if problems is not None:
            self.problems = list(problems)

    def record(self, *, at: datetime, cause: str, evidence: dict[str, Any] | None = None) -> None:
        """Note an event that changes no state (an escalation, a reminder, an operator's comment)."""
        self.timeline.append(
            TimelineEntry(
                at=at, from_state=self.state, to_state=self.state, cause=cause, evidence=evidence or {}
            )
        )

    def loaded_from(self) -> set[str]:
        """The CPL entries this case's combination was loaded into the SMI from: the entry of each
        load, and each re-issue of it the case followed (recorded with ``cpl_entry_id`` evidence)."""
        return {
            entry_id
            for step in self.timeline
            if step.to_state is CaseState.LOADED
            and isinstance(entry_id := step.evidence.get("cpl_entry_id"), str)
        }

    def loaded_as(self) -> LoadedAs | None:
        """The combination this case last loaded into the SMI (or followed to a re-issue listing it),
        as recorded in its timeline at the load (``combination`` and ``accepted_differences``
        evidence), whatever its entry says since. None for a case never loaded, or loaded before
        the combination was recorded."""
        for step in reversed(self.timeline):
            recorded = step.evidence.get("combination")
            entry_id = step.evidence.get("cpl_entry_id")
            if step.to_state is not CaseState.LOADED or not isinstance(recorded, dict):
                continue
            try:
                combination = DeviceModelCombination(
                    **{k: str(recorded[k]) for k in DeviceModelCombination._fields}
                )
            except KeyError:
                continue
            accepted = step.evidence.get("accepted_differences")
            return LoadedAs(
                entry_id if isinstance(entry_id, str) else "",
                combination,
                tuple(str(line) for line in accepted) if isinstance(accepted, list) else (),
                step.at,
            )
        return None

    def waited_since(self) -> datetime:
        """When the case last entered its current state."""
        return _entered_state(self.timeline, self.opened_at)

    def waiting_for_cpl_since(self) -> datetime | None:
        """Since when the case has waited for SECAS to publish an entry it may load, or None when it
        waits for an operator instead (an entry that differs, a load the SMI refused). A case needing
        attention waits for SECAS from the step that found its entry withdrawn (cancelled, expired,
        ``NOT_LOADABLE``), or from its move to needs attention when that found it so."""
        if self.state is not CaseState.NEEDS_ATTENTION:
            return self.waited_since()
        if not entry_not_loadable(self.problems):
            return None
        for step in reversed(self.timeline):
            if step.from_state != step.to_state or step.cause == NOT_LOADABLE:
                return step.at
        return self.opened_at


class CaseSummary(NamedTuple):
    """What a list of cases shows, without the notification and the evidence: what the stores can
    give for thousands of cases at once (the console's cases page) far faster than whole cases.
    A named tuple because ten thousand of them are made per page."""

    response_id: str
    state: CaseState
    supplier: str
    cpl_entry_id: str | None
    problems: tuple[str, ...]
    opened_at: datetime
    state_since: datetime
    """When the case last entered its current state (``Case.waited_since``)."""
    notified: bool
    """Whether the case has its notification (a form that could not be read leaves none)."""

    @classmethod
    def of(cls, case: Case) -> CaseSummary:
        return cls(case.response_id, case.state, case.supplier, case.cpl_entry_id, tuple(case.problems),
                   case.opened_at, case.waited_since(), case.notification is not None)  # fmt: skip


class _Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    at: datetime
    from_state: CaseState | None
    to_state: CaseState


class _Given(BaseModel):
    """A JSON object read only for being there: none of its keys is kept or validated."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class SummaryDocument(BaseModel):
    """A stored case's JSON read for its summary only: the notification is neither validated nor kept,
    only whether there is one."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    response_id: str
    state: CaseState
    supplier: str = ""
    notification: _Given | None = None
    cpl_entry_id: str | None = None
    problems: tuple[str, ...] = ()
    opened_at: datetime
    timeline: tuple[_Step, ...] = ()

    def summary(self) -> CaseSummary:
        return CaseSummary(self.response_id, self.state, self.supplier, self.cpl_entry_id, self.problems,
                           self.opened_at, _entered_state(self.timeline, self.opened_at),
                           self.notification is not None)  # fmt: skip


class _NotificationHead(BaseModel):
    """The notification's fields a report shows; the rest is neither validated nor kept."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    secas_reference: str
    device_type: str


class CaseReport(BaseModel):
    """A stored case as a report on cases reads it (the console's export): the whole case but its
    notification, of which only the two fields a report shows. Read from the stored JSON without
    running the notification's rules again, for thousands of cases at once."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    response_id: str
    state: CaseState
    supplier: str = ""
    notification: _NotificationHead | None = None
    cpl_entry_id: str | None = None
    problems: tuple[str, ...] = ()
    opened_at: datetime
    timeline: tuple[TimelineEntry, ...] = ()

    @classmethod
    def of(cls, case: Case) -> CaseReport:
        n = case.notification
        head = None if n is None else _NotificationHead(secas_reference=n.secas_reference,
                                                        device_type=n.device_type.value)  # fmt: skip
        return cls(response_id=case.response_id, state=case.state, supplier=case.supplier, notification=head,
                   cpl_entry_id=case.cpl_entry_id, problems=tuple(case.problems), opened_at=case.opened_at,
                   timeline=tuple(case.timeline))  # fmt: skip

    def waited_since(self) -> datetime:
        """When the case last entered its current state (``Case.waited_since``)."""
        return _entered_state(self.timeline, self.opened_at)


def _entered_state(timeline: Sequence[TimelineEntry | _Step], opened_at: datetime) -> datetime:
    for entry in reversed(timeline):
        if entry.from_state != entry.to_state:
            return entry.at
    return opened_at

"""An operator's decision on a case that a person must look at: re-check, accept or reject.

Every decision is recorded in the case's timeline with who made it and why. Accepting does not load
anything by itself: it records the exact differences the operator accepted, and the next assessment
treats the case as agreeing only while the CPL entry shows those differences and no others. A new
difference (SECAS changes the entry again) needs a new decision. An entry SECAS withdrew, cancelled or
let expire is never loaded, whoever accepts it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.domain.case import Case, CaseState
from flows.domain.cpl import CplEntry, CplPublication, DeviceModelCombination
from flows.domain.matching import Agreement, FieldVerdict, assess_entry, entry_not_loadable

MAX_REASON = 1000
ACCEPTED = "an operator accepted the differences"
RECHECK_ASKED = "an operator asked for a re-check"
REJECTED_BY_OPERATOR = "an operator rejected the notification"
DECISION_CAUSES = frozenset({ACCEPTED, RECHECK_ASKED, REJECTED_BY_OPERATOR})
REJECTED_BY_DCC = "rejected by DCC"
"""The problem an operator's rejection gives a case, before its reason (``rejected by DCC: <reason>``)."""
REASON_IN_TIMELINE = f"{REJECTED_BY_DCC} (the operator's reason is in the case's timeline)"
"""What a run's history keeps in its place (``problems_for_runs``)."""


class DecisionKind(StrEnum):
    RECHECK = "recheck"
    ACCEPT = "accept"
    REJECT = "reject"


class Decision(BaseModel):
    """What an operator decided, who they are and why; ``decision_id`` makes recording it idempotent."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    decision_id: str = Field(min_length=1, max_length=100)
    kind: DecisionKind
    operator: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=MAX_REASON)
    # ``problems_seen(case.problems)`` as the operator was shown them (the console sends it): an
    # acceptance is refused once the differences are not those any more.
    seen: str | None = Field(default=None, max_length=100)

    @field_validator("operator", "reason")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
            raise ValueError("must not hold control characters")
        return value


def problems_seen(problems: list[str]) -> str:
    """A short fingerprint of a case's differences, for a form to say which ones it showed."""
    return hashlib.sha256(json.dumps(problems).encode()).hexdigest()[:32]


def decision_problems(case: Case, decision: Decision) -> list[str]:
    """Why ``decision`` cannot be made on ``case`` now; empty when it can."""
    problems = []
    if decision.kind is DecisionKind.RECHECK:
        if case.state not in (CaseState.NEEDS_ATTENTION, CaseState.AWAITING_CPL):
            problems.append(
                "only a case that needs attention or awaits the CPL can be re-checked; "
                f"this one is {case.state.value}"
            )
    elif case.state is not CaseState.NEEDS_ATTENTION:
        problems.append(
            f"only a case that needs attention can be {_past(decision.kind)}; this one is {case.state.value}"
        )
    if decision.kind is not DecisionKind.RECHECK and not decision.reason:
        problems.append(f"a reason is needed to {decision.kind.value} a case")
    if (
        decision.kind is DecisionKind.ACCEPT
        and decision.seen is not None
        and decision.seen != problems_seen(case.problems)
    ):
        problems.append("the differences changed since the page was shown: look at them again")
    if decision.kind is DecisionKind.ACCEPT and entry_not_loadable(case.problems):
        problems.append(
            "the paired CPL entry may never be loaded (withdrawn, cancelled or expired): "
            "reject or re-check instead"
        )
    return problems


def record_decision(case: Case, decision: Decision, *, at: datetime) -> bool:
    """Record ``decision`` in ``case`` (moving it when the decision is a rejection).

    Returns False, changing nothing, when this decision (by id) is recorded already. Raises
    ``ValueError`` naming the problems when the decision cannot be made.
    """
    if find_decision(case, decision.decision_id) is not None:
        return False
    problems = decision_problems(case, decision)
    if problems:
        raise ValueError(f"case {case.response_id}: " + "; ".join(problems))
    evidence: dict[str, Any] = {
        "decision_id": decision.decision_id,
        "decision": decision.kind.value,
        "operator": decision.operator,
        "reason": decision.reason,
    }
    if decision.kind is DecisionKind.REJECT:
        rejected = [f"{REJECTED_BY_DCC}: {decision.reason}"]
        case.move_to(
            CaseState.REJECTED, at=at, cause=REJECTED_BY_OPERATOR, evidence=evidence, problems=rejected
        )
    elif decision.kind is DecisionKind.ACCEPT:
        case.record(at=at, cause=ACCEPTED, evidence={**evidence, "accepted_problems": list(case.problems)})
    else:
        case.record(at=at, cause=RECHECK_ASKED, evidence=evidence)
    return True


def find_decision(case: Case, decision_id: str) -> dict[str, Any] | None:
    """The evidence recorded for a decision, by its id."""
    for entry in case.timeline:
        if entry.cause in DECISION_CAUSES and entry.evidence.get("decision_id") == decision_id:
            return entry.evidence
    return None


def accepted_differences(case: Case) -> list[str] | None:
    """The differences an operator last accepted, while the case has stayed where they accepted it.

    A later change of state (the case moved on, or back) ends the acceptance: it was made on what the
    operator saw then.
    """
    for entry in reversed(case.timeline):
        if entry.from_state != entry.to_state:
            return None
        if entry.cause == ACCEPTED:
            accepted = entry.evidence.get("accepted_problems")
            return list(accepted) if isinstance(accepted, list) else None
    return None


def problems_for_runs(case: Case) -> list[str]:
    """A case's problems as a run's history may keep them: an operator's reason for a rejection stays
    in the timeline with who gave it (free text, which may name a person or a telephone number; the
    console and the supplier's e-mail read it from the case, not from a run).
    """
    if case.state is CaseState.REJECTED and any(
        step.to_state is CaseState.REJECTED and step.cause == REJECTED_BY_OPERATOR for step in case.timeline
    ):
        return [REASON_IN_TIMELINE]
    return list(case.problems)


def accepted_verdicts(
    case: Case, entry: CplEntry | None, publication: CplPublication
) -> tuple[FieldVerdict, ...]:
    """How what a loaded case loaded differs from its notification, as an operator accepted it: one
    verdict per field, ``notified`` what the supplier notified and ``published`` what was loaded (or,
    for a field outside the combination, what the CPL entry lists). Empty for a case loaded as notified.

    For the supplier, told it may start: the firmware it upgrades to may not be the one it notified.
    The combination's fields come from the load's record in the timeline (``Case.loaded_as``); the
    others (image hash, S1SP...) from comparing the notification with ``entry`` again, each kept only
    when it is one the operator accepted.
    """
    loaded = case.loaded_as()
    notification = case.notification
    if loaded is None or not loaded.accepted or notification is None:
        return ()
    shown = {
        field: FieldVerdict(field=field, notified=notified, published=was_loaded, agreement=Agreement.DIFFERS)
        for field, notified, was_loaded in zip(
            DeviceModelCombination._fields, notification.dmc, loaded.combination, strict=True
        )
        if notified != was_loaded
    }
    if entry is not None:
        for verdict in assess_entry(notification, entry, publication).differences:
            if verdict.describe() in loaded.accepted:
                shown.setdefault(verdict.field, verdict)
    return tuple(shown.values())


def _past(kind: DecisionKind) -> str:
    return {
        DecisionKind.ACCEPT: "accepted",
        DecisionKind.REJECT: "rejected",
        DecisionKind.RECHECK: "re-checked",
    }[kind]

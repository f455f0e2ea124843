"""Operators' decisions on cases, at the domain level: what may be decided when, what is recorded, and
what an acceptance covers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from flows.domain.case import Case, CaseState
from flows.domain.decisions import (
    ACCEPTED,
    REJECTED_BY_OPERATOR,
    Decision,
    DecisionKind,
    accepted_differences,
    decision_problems,
    find_decision,
    record_decision,
)

AT = datetime(2026, 11, 27, 16, tzinfo=UTC)
DIFFERENCE = "firmware_version: notified '01030012', CPL has '01030011'"


def attention_case(*problems: str) -> Case:
    case = Case.open("4", at=AT - timedelta(days=3), supplier="Amberline Energy")
    case.move_to(CaseState.NEEDS_ATTENTION, at=AT - timedelta(days=2), cause="differs",
                 problems=list(problems or [DIFFERENCE]))  # fmt: skip
    return case


def decision(kind: str, reason: str = "only formatting", decision_id: str = "d1") -> Decision:
    return Decision(decision_id=decision_id, kind=DecisionKind(kind), operator="Ann Operator", reason=reason)


def test_accepting_records_who_why_and_exactly_what_was_accepted() -> None:
    case = attention_case()
    assert record_decision(case, decision("accept"), at=AT)
    last = case.timeline[-1]
    attention = CaseState.NEEDS_ATTENTION
    assert (last.cause, last.from_state, last.to_state, last.at) == (ACCEPTED, attention, attention, AT)
    assert last.evidence == {
        "decision_id": "d1", "decision": "accept", "operator": "Ann Operator", "reason": "only formatting",
        "accepted_problems": [DIFFERENCE],
    }  # fmt: skip
    assert accepted_differences(case) == [DIFFERENCE]


def test_rejecting_moves_the_case_and_says_why_in_its_problems() -> None:
    case = attention_case()
    record_decision(case, decision("reject", "the firmware is not the one SECAS listed"), at=AT)
    assert case.state is CaseState.REJECTED
    assert case.problems == ["rejected by DCC: the firmware is not the one SECAS listed"]
    assert case.timeline[-1].cause == REJECTED_BY_OPERATOR
    assert case.timeline[-1].evidence["operator"] == "Ann Operator"


def test_a_decision_is_recorded_once_by_its_id() -> None:
    case = attention_case()
    assert record_decision(case, decision("accept"), at=AT)
    assert not record_decision(case, decision("accept"), at=AT + timedelta(minutes=1))
    assert len([e for e in case.timeline if e.cause == ACCEPTED]) == 1
    assert find_decision(case, "d1") is not None and find_decision(case, "other") is None


@pytest.mark.parametrize(
    ("state", "kind", "reason", "says"),
    [
        (
            CaseState.LOADED,
            "accept",
            "x",
            "only a case that needs attention can be accepted; this one is loaded",
        ),
        (CaseState.LOADED, "reject", "x", "can be rejected; this one is loaded"),
        (CaseState.LOADED, "recheck", "", "can be re-checked; this one is loaded"),
        (CaseState.NEEDS_ATTENTION, "accept", "", "a reason is needed to accept a case"),
        (CaseState.NEEDS_ATTENTION, "reject", "", "a reason is needed to reject a case"),
    ],
)
def test_what_cannot_be_decided_is_named(state: CaseState, kind: str, reason: str, says: str) -> None:
    case = attention_case()
    if state is CaseState.LOADED:
        case.move_to(CaseState.LOADED, at=AT, cause="loaded")
    assert any(says in problem for problem in decision_problems(case, decision(kind, reason)))
    before = case.model_copy(deep=True)
    with pytest.raises(ValueError, match="case 4: "):
        record_decision(case, decision(kind, reason), at=AT)
    assert case == before  # nothing half-recorded


def test_a_recheck_needs_no_reason_and_may_be_asked_while_waiting_for_the_cpl() -> None:
    case = Case.open("6", at=AT, supplier="Bramble Power")
    case.move_to(CaseState.AWAITING_CPL, at=AT, cause="waiting")
    assert decision_problems(case, decision("recheck", "")) == []


@pytest.mark.parametrize("status", ["Withdrawn", "Cancelled", "Expired"])
def test_an_entry_that_may_never_be_loaded_cannot_be_accepted(status: str) -> None:
    case = attention_case(f"CPL entry S1-000320 is {status}")
    assert any("may never be loaded" in p for p in decision_problems(case, decision("accept")))
    assert decision_problems(case, decision("reject", "withdrawn by SECAS")) == []


def test_an_acceptance_ends_when_the_case_moves_on() -> None:
    case = attention_case()
    record_decision(case, decision("accept"), at=AT)
    case.move_to(CaseState.AWAITING_CPL, at=AT + timedelta(hours=1), cause="SECAS withdrew the pairing entry")
    case.move_to(CaseState.NEEDS_ATTENTION, at=AT + timedelta(hours=2), cause="differs again",
                 problems=[DIFFERENCE])  # fmt: skip
    assert accepted_differences(case) is None  # what was accepted then is not accepted now


def test_a_note_after_the_acceptance_does_not_end_it() -> None:
    case = attention_case()
    record_decision(case, decision("accept"), at=AT)
    case.record(at=AT + timedelta(minutes=5), cause="escalated: waited past the limit")
    assert accepted_differences(case) == [DIFFERENCE]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"operator": "  "}, "operator"),
        ({"operator": "x" * 201}, "operator"),
        ({"reason": "x" * 1001}, "reason"),
        ({"reason": "line\x00break"}, "reason"),
        ({"kind": "approve"}, "kind"),
    ],
)
def test_a_malformed_decision_names_its_field(changes: dict[str, str], field: str) -> None:
    values = {"decision_id": "d1", "kind": "accept", "operator": "Ann", "reason": "ok", **changes}
    with pytest.raises(ValidationError) as caught:
        Decision.model_validate(values)
    assert [error["loc"][0] for error in caught.value.errors()] == [field]

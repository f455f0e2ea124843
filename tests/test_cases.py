"""Case states, allowed transitions and the timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flows.domain.case import ALLOWED_TRANSITIONS, NOT_LOADABLE, Case, CaseState, IllegalTransition

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def test_every_state_is_in_the_transition_table() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(CaseState)


def test_a_case_records_every_transition_with_cause_and_evidence() -> None:
    case = Case.open("2", at=T0, supplier="Bramble Power", evidence={"run": "r1"})
    case.move_to(
        CaseState.AWAITING_CPL, at=T0 + timedelta(minutes=1), cause="no entry yet", evidence={"pub": "a"}
    )
    case.move_to(CaseState.LOADED, at=T0 + timedelta(days=1), cause="loaded", evidence={"run": "r9"})
    case.move_to(CaseState.CLOSED, at=T0 + timedelta(days=30), cause="on the EPCL")
    assert [(e.from_state, e.to_state) for e in case.timeline] == [
        (None, CaseState.RECEIVED),
        (CaseState.RECEIVED, CaseState.AWAITING_CPL),
        (CaseState.AWAITING_CPL, CaseState.LOADED),
        (CaseState.LOADED, CaseState.CLOSED),
    ]
    assert case.timeline[2].evidence == {"run": "r9"}
    assert case.is_final


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ([], CaseState.WITHDRAWN),  # received cannot be withdrawn: it was never paired with an entry
        ([CaseState.REJECTED], CaseState.LOADED),  # rejected is final
        ([CaseState.LOADED], CaseState.AWAITING_CPL),
        ([CaseState.LOADED, CaseState.CLOSED], CaseState.WITHDRAWN),
    ],
)
def test_transitions_the_process_does_not_allow_are_refused(
    path: list[CaseState], refused: CaseState
) -> None:
    case = Case.open("1", at=T0)
    for state in path:
        case.move_to(state, at=T0, cause="test")
    with pytest.raises(IllegalTransition, match=f"cannot go from {case.state.value} to {refused.value}"):
        case.move_to(refused, at=T0, cause="test")
    assert case.timeline[-1].to_state == case.state  # nothing recorded for the refused move


def test_an_event_without_a_state_change_keeps_the_waiting_time() -> None:
    case = Case.open("6", at=T0)
    case.move_to(CaseState.AWAITING_CPL, at=T0 + timedelta(hours=1), cause="waiting")
    case.record(at=T0 + timedelta(hours=80), cause="escalated")
    assert case.state is CaseState.AWAITING_CPL
    assert case.waited_since() == T0 + timedelta(hours=1)


def test_waiting_for_the_cpl_counts_from_the_step_that_found_the_entry_not_loadable() -> None:
    case = Case.open("7", at=T0)
    assert case.waiting_for_cpl_since() == T0  # received: waits for SECAS from its opening
    case.move_to(
        CaseState.NEEDS_ATTENTION, at=T0 + timedelta(hours=1), cause="differs", problems=["firmware differs"]
    )
    assert case.waiting_for_cpl_since() is None  # waits for an operator's decision, not for SECAS
    case.record(at=T0 + timedelta(hours=5), cause=NOT_LOADABLE)
    case.problems = ["CPL entry S1-000301 is Withdrawn"]
    case.record(at=T0 + timedelta(hours=6), cause="escalated: waited past the limit")
    assert case.waiting_for_cpl_since() == T0 + timedelta(hours=5)
    assert case.waited_since() == T0 + timedelta(hours=1)  # never later than the wait for the CPL

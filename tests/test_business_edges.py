"""The flows' business rules past the sample scenario (found by review): what a withdrawal takes out
of the SMI. Each scenario goes through the command line, on publications made from the sample's."""

from __future__ import annotations

import email
import email.message
import email.policy
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.http_retry import NO_RETRY
from adapters.identity import TokenServiceBusy
from adapters.smi import HttpInventory
from flows.bootstrap import bootstrap
from flows.domain.decisions import Decision, DecisionKind
from flows.engine.registry import ActionContext
from flows.errors import PermanentError
from flows.ports import InventoryStatus
from flows.queue_message import form_response_message
from flows.settings import Settings
from flows.wiring import Parts
from tests.smi_server import SmiServer
from tests.support.cpl_workbooks import Cell
from tests.support.cpl_world import CplWorld, entry, response


@pytest.fixture
def world(tmp_path: Path) -> CplWorld:
    return CplWorld(tmp_path)


def test_a_withdrawal_takes_out_what_was_loaded_not_what_was_notified(world: CplWorld) -> None:
    """The operator accepted the CPL's firmware over the notified one: the SMI holds the CPL's."""
    assert world.notify("2026-11-20T08:00:00Z", 301, new_firmware_version="01020012") == 0
    assert world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00") == 0
    assert world.case(301).state.value == "needs_attention"
    assert world.cli(
        "2026-11-20T09:30:00Z", "cases", "decide", "301", "--accept", "--reason", "SECAS: 01020011 is right",
        "--operator", "Olu",
    ) == 0  # fmt: skip
    [loaded] = world.smi()
    assert (loaded.firmware_version, loaded.status) == ("01020011", InventoryStatus.ACTIVE)
    assert (
        world.publish("2026-11-21T09:05:00Z", [entry(cpl_status="Withdrawn")], "21 November 2026 09:00") == 0
    )
    assert world.case(301).state.value == "withdrawn"
    [record] = world.smi()
    assert record.status is InventoryStatus.WITHDRAWN


def test_a_case_never_loaded_withdraws_nothing_another_case_loaded(world: CplWorld) -> None:
    """Two suppliers notified one combination; one loaded it, the other's entry (a typo) is withdrawn."""
    world.notify("2026-11-20T08:00:00Z", 311)
    world.notify(
        "2026-11-20T08:10:00Z", 312, supplier="Bramble Power", supplier_party_id="90-B3-D5-1F-30-01-00-02",
        responder="tom.okafor@bramblepower.example", secas_reference="ECPL-2026-0050",
    )  # fmt: skip
    typo = entry(entry_id="S1-000400", secas_reference="ECPL-2026-0050", firmware_version="01020021")
    world.publish("2026-11-20T09:05:00Z", [entry(), typo], "20 November 2026 09:00")
    assert (world.case(311).state.value, world.case(312).state.value) == ("loaded", "needs_attention")
    withdrawn = {**typo, "cpl_status": "Withdrawn"}
    world.publish("2026-11-21T09:05:00Z", [entry(), withdrawn], "21 November 2026 09:00")
    # 312 was never loaded: re-checked, not withdrawn (SECAS may publish a corrected entry).
    assert (world.case(311).state.value, world.case(312).state.value) == ("loaded", "needs_attention")
    [record] = world.smi()
    assert (record.response_id, record.status) == ("311", InventoryStatus.ACTIVE)
    assert not [name for name in world.mails() if "withdrawn" in name]


def test_a_publication_older_than_the_last_one_is_not_kept(world: CplWorld) -> None:
    """A stale copy served again would bring a withdrawn entry back, and it would be loaded."""
    assert (
        world.publish("2026-11-24T09:05:00Z", [entry(cpl_status="Withdrawn")], "24 November 2026 09:00") == 0
    )
    assert world.publish("2026-11-24T09:10:00Z", [entry()], "20 November 2026 09:00") == 1  # the old file
    assert world.notify("2026-11-24T10:00:00Z", 321) == 0
    assert world.case(321).state.value != "loaded" and world.smi() == []


def test_a_case_back_to_waiting_is_escalated_again_when_it_waits_too_long_again(world: CplWorld) -> None:
    world.notify("2026-11-20T08:00:00Z", 331)  # nothing on the CPL yet: it waits
    assert world.cli("2026-11-23T09:00:00Z", "tick") == 0  # 73 hours: escalated
    assert world.cli("2026-11-23T10:00:00Z", "tick") == 0  # still the same wait: not again
    typo = entry(firmware_version="01020021")
    world.publish("2026-11-23T11:00:00Z", [typo], "23 November 2026 11:00")
    assert world.case(331).state.value == "needs_attention"
    world.publish("2026-11-23T12:00:00Z", [], "23 November 2026 12:00")  # SECAS took the entry off
    assert world.cli(
        "2026-11-24T09:00:00Z", "cases", "decide", "331", "--recheck", "--operator", "Olu"
    ) == 0  # fmt: skip
    assert world.case(331).state.value == "awaiting_cpl"  # a new wait
    assert world.cli("2026-11-27T10:00:00Z", "tick") == 0  # 73 hours into it
    escalations = [e for e in world.case(331).timeline if e.cause.startswith("escalated")]
    assert len(escalations) == 2


def test_operators_hear_when_a_case_they_were_asked_about_waits_again(world: CplWorld) -> None:
    """Its entry moved to the EPCL while it needed a decision: it is no candidate any more."""
    world.notify("2026-11-20T08:00:00Z", 341)
    typo = entry(firmware_version="01020021")
    world.publish("2026-11-20T09:05:00Z", [typo], "20 November 2026 09:00")
    assert world.case(341).state.value == "needs_attention"
    world.publish("2026-11-21T09:05:00Z", [{**typo, "epcl_status": "EPCL"}], "21 November 2026 09:00")
    assert world.case(341).state.value == "awaiting_cpl"
    cards = [path.read_text(encoding="utf-8") for path in (world.home / "outbox" / "teams").glob("*.json")]
    [waiting] = [card for card in cards if "Waiting again: case 341" in card]
    assert "moved to the EPCL" in waiting and "S1-000316" in waiting


def test_the_operators_are_told_also_when_the_assessment_is_delivered_again(world: CplWorld) -> None:
    """A worker that died after saving the case, before recording the action: the redelivered
    assessment finds the case already waiting, and says so all the same (from the timeline)."""
    world.notify("2026-11-20T08:00:00Z", 351)
    typo = entry(firmware_version="01020021")
    world.publish("2026-11-20T09:05:00Z", [typo], "20 November 2026 09:00")
    world.publish("2026-11-21T09:05:00Z", [{**typo, "epcl_status": "EPCL"}], "21 November 2026 09:00")
    [moved] = [
        e
        for e in world.case(351).timeline
        if (e.from_state, e.to_state) == ("needs_attention", "awaiting_cpl")
    ]
    with bootstrap(Settings(home=world.home)) as app:
        context = ActionContext("emergency-load", moved.evidence["run"], "assess", "k", moved.at)
        again = app.registry.get("cases.assess").call(context, {"response_id": "351"})
    assert again["waiting_again"] is True and again["previous_entry"]["entry_id"] == "S1-000316"


def test_operators_hear_when_a_loaded_entry_is_gone_from_the_cpl(world: CplWorld) -> None:
    """Not withdrawn, not promoted: gone. Nothing is withdrawn on that alone (a file cut short looks
    the same), but the operators are told, once, for each case it concerns."""
    world.notify("2026-11-20T08:00:00Z", 361)
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    assert world.case(361).state.value == "loaded"
    world.publish("2026-11-21T09:05:00Z", [], "21 November 2026 09:00")
    world.publish("2026-11-22T09:05:00Z", [], "22 November 2026 09:00")  # still gone: no second card
    cards = [path.read_text(encoding="utf-8") for path in (world.home / "outbox" / "teams").glob("*.json")]
    [gone] = [card for card in cards if "is gone from the CPL: case 361" in card]
    assert "The SMI still holds the combination" in gone
    assert world.case(361).state.value == "loaded"
    [record] = world.smi()
    assert record.status is InventoryStatus.ACTIVE


def test_a_reissued_entry_is_followed_not_withdrawn(world: CplWorld) -> None:
    """SECAS withdraws the loaded entry and re-issues the same combination under a new id in one
    publication: the combination is still allowed, so nothing is withdrawn and the supplier is not told
    to stop; the case follows the new entry, and a later withdrawal of that one still reaches the SMI."""
    world.notify("2026-11-20T08:00:00Z", 371)
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    assert world.case(371).state.value == "loaded"
    reissued = entry(entry_id="S1-000500")
    world.publish("2026-11-21T09:05:00Z", [entry(cpl_status="Withdrawn"), reissued], "21 November 2026 09:00")
    case = world.case(371)
    assert (case.state.value, case.cpl_entry_id) == ("loaded", "S1-000500")
    [followed] = [step for step in case.timeline if "re-issued" in step.cause]
    assert "S1-000316" in followed.cause and followed.evidence["previous_entry"] == "S1-000316"
    [record] = world.smi()
    assert (record.status, record.cpl_entry_id) == (InventoryStatus.ACTIVE, "S1-000500")
    assert not [name for name in world.mails() if "withdrawn" in name]
    [card] = [card for card in world.cards() if "re-issued" in card]
    assert "S1-000316" in card and "S1-000500" in card
    world.publish(
        "2026-11-22T09:05:00Z",
        [entry(cpl_status="Withdrawn"), {**reissued, "cpl_status": "Withdrawn"}],
        "22 November 2026 09:00",
    )
    assert world.case(371).state.value == "withdrawn"
    [record] = world.smi()
    assert record.status is InventoryStatus.WITHDRAWN


def test_a_reissued_entry_that_differs_is_put_to_an_operator(world: CplWorld) -> None:
    """The new entry lists another image hash: not accepted silently. The SMI keeps the combination
    (still on the CPL), the supplier is not told to stop, and an operator sees the difference."""
    world.notify("2026-11-20T08:00:00Z", 381)
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    reissued = entry(entry_id="S1-000500", image_hash="5" * 64)
    world.publish("2026-11-21T09:05:00Z", [entry(cpl_status="Withdrawn"), reissued], "21 November 2026 09:00")
    case = world.case(381)
    assert (case.state.value, case.cpl_entry_id) == ("needs_attention", "S1-000500")
    assert [problem for problem in case.problems if problem.startswith("image_hash")]
    [record] = world.smi()
    assert record.status is InventoryStatus.ACTIVE
    assert not [name for name in world.mails() if "withdrawn" in name]
    [card] = [card for card in world.cards() if "re-issued" in card]
    assert "5" * 64 in card
    assert world.cli(
        "2026-11-21T10:00:00Z", "cases", "decide", "381", "--accept", "--reason", "SECAS: new build",
        "--operator", "Olu",
    ) == 0  # fmt: skip
    assert world.case(381).state.value == "loaded"
    [record] = world.smi()
    assert (record.status, record.cpl_entry_id) == (InventoryStatus.ACTIVE, "S1-000500")


def test_a_new_case_pairs_with_the_reissue_wherever_the_file_lists_it(world: CplWorld) -> None:
    """The withdrawn entry listed after its re-issue (same reference, same firmware) must not win."""
    world.publish(
        "2026-11-21T09:05:00Z",
        [entry(entry_id="S1-000500"), entry(cpl_status="Withdrawn")],
        "21 November 2026 09:00",
    )
    world.notify("2026-11-21T10:00:00Z", 391)
    case = world.case(391)
    assert (case.state.value, case.cpl_entry_id) == ("loaded", "S1-000500")


def test_a_load_the_smi_refuses_for_good_puts_the_case_before_an_operator(world: CplWorld) -> None:
    """The SMI refuses the bridge's token (a permanent error: not retried). The case must not stay
    'received' unseen: it needs attention with the failure named, and a re-check once the cause is
    mended loads it."""
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    token = ["a-token-the-smi-refuses"]
    with SmiServer() as smi, httpx.Client(timeout=5.0) as http:

        def real_smi(parts: Parts) -> None:
            parts.inventory = HttpInventory(smi.url, http, lambda: token[0], retry=NO_RETRY)

        with world.app("2026-11-20T10:00:00+00:00", adjust=real_smi) as app:
            app.process(form_response_message(response(401)))
            case = app.cases.get("401")
            assert case is not None and case.state.value == "needs_attention"
            assert any("SMI" in problem and "401" in problem for problem in case.problems), case.problems
            assert [step for step in case.timeline if step.cause.startswith("loading into the SMI failed")]
            assert smi.records == {}
            assert not [name for name in world.mails() if "loaded" in name]
            [card] = [card for card in world.cards() if "Loading failed: case 401" in card]
            assert "S1-000316" in card and "HTTP 401" in card
            token[0] = "token-1"  # the operators mend the SMI's credentials, then re-check the case
            recheck = Decision(decision_id="d-401", kind=DecisionKind.RECHECK, operator="Olu")
            assert app.decide("401", recheck).state.value == "loaded"
        assert len(smi.records) == 1
    assert [name for name in world.mails() if "loaded" in name]


def escalated_once(world: CplWorld, marker: str, before_limit: str, past_limit: str) -> str:
    """The lifecycle's hourly tick just before the waiting limit posts no card with ``marker``; just
    past it one; an hour later no second one. Returns the card."""
    assert world.cli(before_limit, "tick", "--flow", "case-lifecycle") == 0
    assert not [card for card in world.cards() if marker in card]
    an_hour_later = (datetime.fromisoformat(past_limit) + timedelta(hours=1)).isoformat()
    for moment in (past_limit, an_hour_later):
        assert world.cli(moment, "tick", "--flow", "case-lifecycle") == 0
    [card] = [card for card in world.cards() if marker in card]
    return card


def test_a_case_left_received_by_an_smi_that_stayed_down_is_escalated_past_the_limit(
    world: CplWorld,
) -> None:
    """The SMI refuses connections through every retry: the emergency-load run fails and the case
    stays 'received', where no operator list looks. The waiting limit must reach it too."""
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")

    moment = datetime.fromisoformat("2026-11-20T10:00:00+00:00")
    with httpx.Client(timeout=2.0) as http:

        def smi_down(parts: Parts) -> None:  # nothing listens on the discard port
            parts.inventory = HttpInventory("http://127.0.0.1:9", http, lambda: "t", retry=NO_RETRY)

        settings = Settings(home=world.home)
        with bootstrap(settings, clock=lambda: moment, adjust=smi_down, sleep=lambda seconds: None) as app:
            app.process(form_response_message(response(402)))
    assert world.case(402).state.value == "received"
    # 71 hours: not yet; 73 hours: escalated; an hour later: once per wait
    card = escalated_once(world, "Waiting too long: case 402", "2026-11-23T09:00:00Z", "2026-11-23T11:00:00Z")
    assert "waiting to be checked" in card


def test_a_model_that_first_appears_on_the_epcl_closes_the_case_waiting_for_it(world: CplWorld) -> None:
    """The case waits for a Non-EPCL entry; SECAS lists the combination straight on the EPCL. The
    emergency route is over (the supplier upgrades the usual way): the case closes as on the EPCL, the
    supplier and operators are told, and nothing is loaded by the bridge."""
    world.notify("2026-11-20T08:00:00Z", 401)
    assert world.case(401).state.value == "awaiting_cpl"
    on_epcl = entry(entry_id="S1-000600", epcl_status="EPCL", secas_reference="")
    world.publish("2026-11-21T09:05:00Z", [on_epcl], "21 November 2026 09:00")
    case = world.case(401)
    assert (case.state.value, case.cpl_entry_id) == ("closed", "S1-000600")
    assert "EPCL" in case.timeline[-1].cause
    assert [name for name in world.mails() if name.startswith("mail_closed_401")]
    [card] = [card for card in world.cards() if "Case 401 closed" in card]
    assert "S1-000600" in card
    assert world.smi() == []
    assert world.cli("2026-11-24T09:00:00Z", "tick") == 0  # closed: never escalated
    assert not [step for step in world.case(401).timeline if step.cause.startswith("escalated")]


def test_a_case_opened_for_a_model_already_on_the_epcl_is_closed_at_once(world: CplWorld) -> None:
    world.publish("2026-11-20T09:05:00Z", [entry(epcl_status="EPCL")], "20 November 2026 09:00")
    world.notify("2026-11-20T10:00:00Z", 402)
    assert world.case(402).state.value == "closed"
    withdrawn = entry(
        entry_id="S1-000601", epcl_status="EPCL", cpl_status="Withdrawn", firmware_version="01020012"
    )
    world.publish("2026-11-21T09:05:00Z", [entry(epcl_status="EPCL"), withdrawn], "21 November 2026 09:00")
    world.notify("2026-11-21T10:00:00Z", 403, new_firmware_version="01020012")
    assert world.case(403).state.value == "awaiting_cpl"  # a withdrawn EPCL entry is not the usual route


def test_operators_hear_when_what_identifies_a_loaded_entry_changes(world: CplWorld) -> None:
    """SECAS changes the firmware version and image hash of the entry a case was loaded from. Nothing
    is withdrawn or loaded on that alone; the operators are told what changed, once per publication."""
    world.notify("2026-11-20T08:00:00Z", 411)
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    assert world.case(411).state.value == "loaded"
    changed = entry(firmware_version="01020012", image_hash="6" * 64)
    world.publish("2026-11-21T09:05:00Z", [changed], "21 November 2026 09:00")
    world.publish(
        "2026-11-22T09:05:00Z", [{**changed, "model_name": "Corrie GSME 2B"}], "22 November 2026 09:00"
    )
    case = world.case(411)
    assert (case.state.value, case.cpl_entry_id) == ("loaded", "S1-000316")
    [noted] = [step for step in case.timeline if step.cause.startswith("SECAS changed CPL entry S1-000316")]
    assert "firmware_version" in noted.cause and "image_hash" in noted.cause
    [record] = world.smi()
    assert (record.status, record.firmware_version) == (InventoryStatus.ACTIVE, "01020011")
    [card] = [card for card in world.cards() if "CPL entry S1-000316 changed: case 411" in card]
    assert "01020011" in card and "01020012" in card and "6" * 64 in card
    assert "Corrie GSME 2B" not in card  # a name is not what identifies the entry


def test_a_second_emergency_for_a_model_waits_for_its_own_entry(world: CplWorld) -> None:
    """The model's first emergency (S1-000316, ECPL-2026-0031) is still listed when the supplier notifies
    a second one (new reference, new firmware) that SECAS has not published yet. The old entry shares the
    model only: it must not pair (an operator's accept would load the old firmware), so the case waits,
    and is escalated if it waits too long; its own entry, once published, loads."""
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    second = {
        "secas_reference": "ECPL-2026-0040",
        "current_firmware_version": "01020011",
        "new_firmware_version": "01020021",
    }
    assert world.notify("2026-11-25T10:00:00Z", 421, **second) == 0
    case = world.case(421)
    assert (case.state.value, case.cpl_entry_id, case.problems) == ("awaiting_cpl", None, [])
    assert world.cli("2026-11-28T11:00:00Z", "tick") == 0
    assert [step for step in world.case(421).timeline if step.cause.startswith("escalated")]
    own = entry(
        entry_id="S1-000700", secas_reference="ECPL-2026-0040", firmware_version="01020021",
        previous_entry_ids="S1-000316",
    )  # fmt: skip
    world.publish("2026-11-28T12:05:00Z", [entry(), own], "28 November 2026 12:00")
    case = world.case(421)
    assert (case.state.value, case.cpl_entry_id) == ("loaded", "S1-000700")
    assert {record.firmware_version for record in world.smi()} == {"01020021"}


def test_a_model_promoted_under_a_new_entry_id_closes_the_case_and_stays_in_the_smi(world: CplWorld) -> None:
    """Fast-track PPCT done: SECAS lists the loaded combination as a new EPCL entry and lets the
    emergency entry expire, in one publication. The combination is allowed by the usual route now: the
    case closes as on the EPCL (the close e-mail and card), nothing is withdrawn from the SMI, and the
    supplier is not told to stop the upgrades."""
    world.notify("2026-11-20T08:00:00Z", 431)
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    assert world.case(431).state.value == "loaded"
    promoted = entry(entry_id="S1-000321", epcl_status="EPCL", secas_reference="")
    world.publish("2026-11-26T09:05:00Z", [entry(cpl_status="Expired"), promoted], "26 November 2026 09:00")
    case = world.case(431)
    assert (case.state.value, case.cpl_entry_id) == ("closed", "S1-000321")
    assert "S1-000316" in case.timeline[-1].cause and "S1-000321" in case.timeline[-1].cause
    [record] = world.smi()
    assert (record.status, record.cpl_entry_id) == (InventoryStatus.ACTIVE, "S1-000316")
    assert [name for name in world.mails() if name.startswith("mail_closed_431")]
    assert not [name for name in world.mails() if "withdrawn" in name]
    [card] = [card for card in world.cards() if "Case 431 closed" in card]
    assert "S1-000321" in card
    assert not [card for card in world.cards() if "withdrawn: case 431" in card]


def test_a_loaded_model_listed_on_the_epcl_under_a_new_id_closes_the_case(world: CplWorld) -> None:
    """The emergency entry stays listed (Non-EPCL, active) beside the new EPCL entry: the case closes
    all the same (the model reached the EPCL), once, and SECAS expiring the entry later changes nothing
    (the case is closed: the withdrawal's run does not list it). That two flows reaching one close tell
    it once is the next test's."""
    world.notify("2026-11-20T08:00:00Z", 432)
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    promoted = entry(entry_id="S1-000321", epcl_status="EPCL", secas_reference="")
    world.publish("2026-11-26T09:05:00Z", [entry(), promoted], "26 November 2026 09:00")
    case = world.case(432)
    assert (case.state.value, case.cpl_entry_id) == ("closed", "S1-000321")
    world.publish("2026-11-27T09:05:00Z", [entry(cpl_status="Expired"), promoted], "27 November 2026 09:00")
    assert world.case(432).timeline[-1].to_state.value == "closed"
    [record] = world.smi()
    assert record.status is InventoryStatus.ACTIVE
    assert len([name for name in world.mails() if name.startswith("mail_closed_432")]) == 1
    assert len([card for card in world.cards() if "Case 432 closed" in card]) == 1
    assert not [name for name in world.mails() if "withdrawn" in name]


def test_a_case_closed_by_one_flow_is_told_once_when_another_reaches_the_close_too(world: CplWorld) -> None:
    """One publication expires the loaded entry and lists its combination on the EPCL: the withdrawal's
    run and the EPCL addition's run may both reach the close (two workers; here the withdrawal's run
    fails after listing the case, the EPCL run closes it, and the withdrawal's run is resubmitted). The
    supplier and the operators are told once: every close shares the keys mail/closed/<case> and
    teams/closed/<case>."""
    world.notify("2026-11-20T08:00:00Z", 433)
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    assert world.case(433).state.value == "loaded"
    armed = [True]

    class FailingWithdrawalClose:
        """A case store whose save of a close on the withdrawal fails while armed."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def save(self, case: Any) -> Any:
            if armed[0] and case.timeline[-1].cause.startswith("SECAS withdrew CPL entry"):
                raise PermanentError("the case store refused the write")
            return self.inner.save(case)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    def failing(parts: Parts) -> None:
        parts.cases = FailingWithdrawalClose(parts.cases)

    promoted = entry(entry_id="S1-000321", epcl_status="EPCL", secas_reference="")
    with world.app("2026-11-26T09:05:00+00:00", adjust=failing) as app:
        world.publish_in(app, [entry(cpl_status="Expired"), promoted], "26 November 2026 09:00")
        [withdrawal] = app.parts.runs.find(key="S1-000316", flow="case-lifecycle", limit=1)
        assert withdrawal.status.value == "Failed" and withdrawal.trigger["event"] == "cpl.entry_withdrawn"
        assert withdrawal.actions["withdrawn_cases"].outputs == {"response_ids": ["433"]}
        assert world.case(433).state.value == "closed"  # by the EPCL addition's run
        armed[0] = False
        again = app.bridge.resubmit(withdrawal.run_id, from_action="withdraw_each")
    assert again.status.value == "Succeeded"
    assert again.actions["withdraw_each[433].resolve"].outputs["outcome"] == "on_epcl"
    told = again.actions["withdraw_each[433].tell_supplier_closed_on_epcl"]
    assert told.status.value == "Succeeded" and told.deduplicated
    assert len([name for name in world.mails() if name.startswith("mail_closed_433")]) == 1
    assert len([card for card in world.cards() if "Case 433 closed" in card]) == 1
    assert not [name for name in world.mails() if "withdrawn" in name]


def test_a_case_never_loaded_waits_for_the_entry_that_corrects_a_withdrawn_one(world: CplWorld) -> None:
    """SECAS published the case's entry with the wrong firmware, withdraws it, then publishes the
    corrected entry under a new id. The case was never loaded: the withdrawal re-checks it (operators
    see the entry withdrawn) and never ends it, the supplier (never told to start) is not told to stop,
    and the corrected entry loads."""
    world.notify("2026-11-23T09:40:00Z", 441)
    wrong = entry(firmware_version="01020021")
    world.publish("2026-11-24T09:05:00Z", [wrong], "24 November 2026 09:00")
    assert world.case(441).state.value == "needs_attention"
    world.publish("2026-11-25T09:05:00Z", [{**wrong, "cpl_status": "Withdrawn"}], "25 November 2026 09:00")
    case = world.case(441)
    assert case.state.value == "needs_attention"
    assert case.problems[0] == "CPL entry S1-000316 is Withdrawn"
    assert not [name for name in world.mails() if "withdrawn" in name]
    assert not [card for card in world.cards() if "withdrawn: case 441" in card]
    assert [card for card in world.cards() if "lists entry S1-000316 as Withdrawn" in card]
    corrected = entry(entry_id="S1-000321")
    world.publish(
        "2026-11-26T09:05:00Z", [{**wrong, "cpl_status": "Withdrawn"}, corrected], "26 November 2026 09:00"
    )
    case = world.case(441)
    assert (case.state.value, case.cpl_entry_id) == ("loaded", "S1-000321")
    [record] = world.smi()
    assert (record.status, record.firmware_version) == (InventoryStatus.ACTIVE, "01020011")
    assert [name for name in world.mails() if name.startswith("mail_loaded_441")]


def test_a_case_never_loaded_closes_when_its_expired_entry_is_on_the_epcl_under_a_new_id(
    world: CplWorld,
) -> None:
    """The case needed attention (another image hash); SECAS lets the entry expire and lists the
    notified combination on the EPCL: the usual route applies, the case closes (not withdrawn)."""
    world.notify("2026-11-20T08:00:00Z", 442)
    other_hash = entry(image_hash="5" * 64)
    world.publish("2026-11-20T09:05:00Z", [other_hash], "20 November 2026 09:00")
    assert world.case(442).state.value == "needs_attention"
    promoted = entry(entry_id="S1-000321", epcl_status="EPCL", secas_reference="")
    world.publish(
        "2026-11-26T09:05:00Z", [{**other_hash, "cpl_status": "Expired"}, promoted], "26 November 2026 09:00"
    )
    case = world.case(442)
    assert (case.state.value, case.cpl_entry_id) == ("closed", "S1-000321")
    assert [name for name in world.mails() if name.startswith("mail_closed_442")]
    assert not [name for name in world.mails() if "withdrawn" in name]
    assert world.smi() == []


def test_operators_hear_when_the_epcl_entry_a_loaded_case_closed_on_is_withdrawn(world: CplWorld) -> None:
    """A case closed on the EPCL is over; the SMI still holds what the bridge loaded for it. SECAS later
    withdraws that EPCL entry: nothing is acted on (the EPCL is the usual route's), the case stays closed,
    and the operators are told once. A case that closed without loading anything is not told about."""
    world.notify("2026-11-20T08:00:00Z", 451)
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    promoted = entry(entry_id="S1-000321", epcl_status="EPCL", secas_reference="")
    world.publish("2026-11-26T09:05:00Z", [entry(cpl_status="Expired"), promoted], "26 November 2026 09:00")
    assert world.case(451).state.value == "closed"
    world.notify("2026-11-26T10:00:00Z", 452)  # its combination is on the EPCL: closed at once
    assert world.case(452).state.value == "closed"
    pulled = {**promoted, "cpl_status": "Withdrawn"}
    world.publish("2026-11-30T09:05:00Z", [entry(cpl_status="Expired"), pulled], "30 November 2026 09:00")
    # SECAS reinstates the EPCL entry, then withdraws it again: a second withdrawal event, not told again.
    world.publish("2026-12-01T09:05:00Z", [entry(cpl_status="Expired"), promoted], "1 December 2026 09:00")
    world.publish("2026-12-02T09:05:00Z", [entry(cpl_status="Expired"), pulled], "2 December 2026 09:00")
    with bootstrap(Settings(home=world.home)) as app:
        withdrawals = app.parts.runs.find(key="S1-000321", flow="case-lifecycle")
    assert [run.trigger["event"] for run in withdrawals] == ["cpl.entry_withdrawn"] * 2
    assert all(run.actions["closed_cases"].outputs == {"response_ids": ["451"]} for run in withdrawals)
    assert (world.case(451).state.value, world.case(452).state.value) == ("closed", "closed")
    [record] = world.smi()
    assert record.status is InventoryStatus.ACTIVE
    [card] = [card for card in world.cards() if "EPCL entry S1-000321 withdrawn" in card]
    assert "closed case 451" in card and "still holds the combination" in card
    assert not [name for name in world.mails() if "withdrawn" in name]


def test_a_reissue_is_judged_against_what_was_loaded_not_the_entry_as_changed_since(world: CplWorld) -> None:
    """SECAS changes the loaded entry's firmware (told, not acted on), then withdraws it and re-issues
    the changed combination under a new id. The re-issue differs from what the SMI holds for the case:
    an operator decides; nothing nobody accepted is loaded, and the SMI keeps what was loaded."""
    world.notify("2026-11-20T08:00:00Z", 461)
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    assert world.case(461).state.value == "loaded"
    world.publish("2026-11-21T09:05:00Z", [entry(firmware_version="01020012")], "21 November 2026 09:00")
    assert world.case(461).state.value == "loaded"
    withdrawn = entry(firmware_version="01020012", cpl_status="Withdrawn")
    reissued = entry(entry_id="S1-000500", firmware_version="01020012")
    world.publish("2026-11-22T09:05:00Z", [withdrawn, reissued], "22 November 2026 09:00")
    case = world.case(461)
    assert (case.state.value, case.cpl_entry_id) == ("needs_attention", "S1-000500")
    assert "firmware_version: loaded into the SMI '01020011', CPL has '01020012'" in case.problems
    [record] = world.smi()
    assert (record.firmware_version, record.status) == ("01020011", InventoryStatus.ACTIVE)
    [card] = [card for card in world.cards() if "re-issued as S1-000500: case 461" in card]
    assert "the case needs a decision" in card and "01020011" in card
    # The re-issue lists what the withdrawn entry lists now, which is not what was loaded: said so.
    assert "the device model combination S1-000316 lists now, which is not the one loaded" in card
    assert "same device model combination" not in card
    # A re-check does not load it either: only an operator's acceptance of the difference does.
    assert world.cli("2026-11-22T10:00:00Z", "cases", "decide", "461", "--recheck", "--operator", "Olu") == 0
    assert world.case(461).state.value == "needs_attention"
    assert [r.firmware_version for r in world.smi()] == ["01020011"]
    assert world.cli(
        "2026-11-22T11:00:00Z", "cases", "decide", "461", "--accept", "--reason", "SECAS: new build",
        "--operator", "Olu",
    ) == 0  # fmt: skip
    case = world.case(461)
    assert (case.state.value, case.cpl_entry_id) == ("loaded", "S1-000500")
    assert {r.firmware_version for r in world.smi()} == {"01020011", "01020012"}


def test_a_reissue_of_what_was_loaded_is_followed_though_the_entry_changed_before_its_withdrawal(
    world: CplWorld,
) -> None:
    """SECAS changes the loaded entry's firmware, then withdraws it and re-issues the combination that
    was loaded: the case follows the re-issue, which lists what the SMI holds."""
    world.notify("2026-11-20T08:00:00Z", 462)
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    world.publish("2026-11-21T09:05:00Z", [entry(firmware_version="01020012")], "21 November 2026 09:00")
    withdrawn = entry(firmware_version="01020012", cpl_status="Withdrawn")
    world.publish("2026-11-22T09:05:00Z", [withdrawn, entry(entry_id="S1-000500")], "22 November 2026 09:00")
    case = world.case(462)
    assert (case.state.value, case.cpl_entry_id) == ("loaded", "S1-000500")
    [record] = world.smi()
    assert (record.firmware_version, record.status, record.cpl_entry_id) == (
        "01020011", InventoryStatus.ACTIVE, "S1-000500",
    )  # fmt: skip
    assert not [name for name in world.mails() if "withdrawn" in name]
    # The withdrawn entry lists other firmware now: the card says the re-issue lists what was loaded.
    [card] = [card for card in world.cards() if "re-issued as S1-000500: case 462" in card]
    assert "(Active, Non-EPCL) the device model combination loaded into the SMI for this case." in card
    assert "same device model combination" not in card


def test_a_changed_combination_listed_on_the_epcl_does_not_close_the_case_that_loaded_another(
    world: CplWorld,
) -> None:
    """One publication changes the loaded entry's firmware and lists the new combination on the EPCL.
    What was loaded (01020011) is not on the EPCL: the case stays loaded, the supplier is not told it
    closed, and the operators get one card on the change."""
    world.notify("2026-11-20T08:00:00Z", 463)
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    changed = entry(firmware_version="01020012")
    on_epcl = entry(entry_id="S1-000321", epcl_status="EPCL", secas_reference="", firmware_version="01020012")
    world.publish("2026-11-26T09:05:00Z", [changed, on_epcl], "26 November 2026 09:00")
    case = world.case(463)
    assert (case.state.value, case.cpl_entry_id) == ("loaded", "S1-000316")
    assert not [name for name in world.mails() if name.startswith("mail_closed_463")]
    assert not [card for card in world.cards() if "Case 463 closed" in card]
    [card] = [card for card in world.cards() if "CPL entry S1-000316 changed: case 463" in card]
    assert "01020011" in card and "01020012" in card
    [record] = world.smi()
    assert (record.firmware_version, record.status) == ("01020011", InventoryStatus.ACTIVE)
    # Later, the changed combination's EPCL entry is listed again beside other EPCL additions: told once.
    more = entry(entry_id="S1-000322", epcl_status="EPCL", secas_reference="", model_id="0099")
    world.publish("2026-11-27T09:05:00Z", [changed, on_epcl, more], "27 November 2026 09:00")
    assert world.case(463).state.value == "loaded"
    assert len([card for card in world.cards() if "CPL entry S1-000316 changed: case 463" in card]) == 1
    # What was loaded reaching the EPCL closes it.
    loaded_on_epcl = entry(entry_id="S1-000323", epcl_status="EPCL", secas_reference="")
    world.publish("2026-11-28T09:05:00Z", [changed, on_epcl, more, loaded_on_epcl], "28 November 2026 09:00")
    case = world.case(463)
    assert (case.state.value, case.cpl_entry_id) == ("closed", "S1-000323")


def test_an_entry_promoted_with_another_combination_does_not_close_the_case(world: CplWorld) -> None:
    """One publication moves the loaded entry to the EPCL and changes its firmware: the EPCL lists a
    combination the bridge never loaded for the case, which stays loaded; the operators are told once."""
    world.notify("2026-11-20T08:00:00Z", 464)
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    promoted = entry(epcl_status="EPCL", firmware_version="01020012")
    world.publish("2026-11-26T09:05:00Z", [promoted], "26 November 2026 09:00")
    case = world.case(464)
    assert case.state.value == "loaded"
    assert not [name for name in world.mails() if name.startswith("mail_closed_464")]
    assert len([card for card in world.cards() if "CPL entry S1-000316 changed: case 464" in card]) == 1


def test_a_load_that_failed_transiently_in_any_kind_of_transient_error_is_not_put_to_an_operator(
    world: CplWorld,
) -> None:
    """The token service stayed busy through every retry (``TokenServiceBusy``, a ``TransientError``
    by another name): the run fails, to be resubmitted when the SMI is back. It is not a refusal, so the
    case is not put before an operator as one."""

    class Busy:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def upsert(self, record: Any, *, idempotency_key: str, attempt: int = 1) -> Any:
            raise TokenServiceBusy(503)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    def busy(parts: Parts) -> None:
        parts.inventory = Busy(parts.inventory)

    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    moment = datetime.fromisoformat("2026-11-20T10:00:00+00:00")
    settings = Settings(home=world.home)
    with bootstrap(settings, clock=lambda: moment, adjust=busy, sleep=lambda seconds: None) as app:
        app.process(form_response_message(response(471)))
    case = world.case(471)
    assert case.state.value == "received" and not case.problems
    assert not [card for card in world.cards() if "Loading failed: case 471" in card]


def test_a_refused_load_is_not_tried_again_on_every_publication_until_an_operator_re_checks(
    world: CplWorld,
) -> None:
    """The SMI refuses the load for good; later publications start emergency-load over every open
    case. The refused case is not loaded again, nor told about again, until an operator re-checks it
    or its entry changes: each would fail the same way and post another card."""
    calls: list[str] = []

    class Refusing:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def upsert(self, record: Any, *, idempotency_key: str, attempt: int = 1) -> Any:
            calls.append(record.cpl_entry_id)
            raise PermanentError("SMI PUT /device-models: HTTP 422 record refused")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    def refusing(parts: Parts) -> None:
        parts.inventory = Refusing(parts.inventory)

    def failures() -> int:
        return sum(step.cause.startswith("loading into the SMI failed") for step in world.case(481).timeline)

    def cards() -> int:
        return len([card for card in world.cards() if "Loading failed: case 481" in card])

    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    with world.app("2026-11-20T10:00:00+00:00", adjust=refusing) as app:
        app.process(form_response_message(response(481)))
        assert (world.case(481).state.value, calls, failures(), cards()) == (
            "needs_attention",
            ["S1-000316"],
            1,
            1,
        )
        others = [
            entry(entry_id=f"S1-0009{i}0", secas_reference=f"ECPL-2026-09{i}0", model_id=f"00{i}9")
            for i in range(3)
        ]
        world.publish_in(app, [entry(), *others], "21 November 2026 09:00")
        case = world.case(481)
        assert (case.state.value, len(calls), failures(), cards()) == ("needs_attention", 1, 1, 1)
        assert case.problems and "HTTP 422" in case.problems[0]
        # An operator re-checks: tried again; the same failure of the same entry is not told twice.
        recheck = Decision(decision_id="d-481", kind=DecisionKind.RECHECK, operator="Olu")
        assert app.decide("481", recheck).state.value == "needs_attention"
        assert (len(calls), failures(), cards()) == (2, 2, 1)
        # SECAS changes the entry: tried again.
        world.publish_in(app, [entry(model_name="Corrie GSME 2B"), *others], "22 November 2026 09:00")
        assert (len(calls), failures()) == (3, 3)


def test_an_ordinary_load_writes_one_record_per_step_taken_and_one_per_branch_not_taken(
    world: CplWorld,
) -> None:
    """Every record is a write (a row locally, an entity on Azure) in each case's run: the branches an
    ordinary load does not take (the case closing on the EPCL, waiting again, needing attention, a load
    the SMI refused) are scopes, each recorded once as skipped, not once per action in them."""
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    world.notify("2026-11-20T10:00:00Z", 491)
    assert world.case(491).state.value == "loaded"
    with bootstrap(Settings(home=world.home)) as app:
        [run] = list(app.parts.runs.find(key="491", flow="emergency-load"))
    assert run.trigger["event"] == "case.opened"
    skipped = sorted(path for path, action in run.actions.items() if action.status.value == "Skipped")
    assert skipped == ["each_case[491].load_refused", "each_case[491].not_ready"]
    assert len(run.actions) == 9, sorted(run.actions)


def test_a_case_loaded_when_it_opened_is_loaded_again_when_an_operator_accepts_a_reissue(
    world: CplWorld,
) -> None:
    """The case loaded in the run its notification started (business key: the response id); its entry
    is re-issued with another image hash, and an operator accepts it: the re-check's run has the same
    business key, and must mark the case loaded all the same."""
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    world.notify("2026-11-20T10:00:00Z", 492)
    assert world.case(492).state.value == "loaded"
    reissued = entry(entry_id="S1-000500", image_hash="5" * 64)
    world.publish("2026-11-21T09:05:00Z", [entry(cpl_status="Withdrawn"), reissued], "21 November 2026 09:00")
    assert world.case(492).state.value == "needs_attention"
    assert world.cli(
        "2026-11-21T10:00:00Z", "cases", "decide", "492", "--accept", "--reason", "SECAS: new build",
        "--operator", "Olu",
    ) == 0  # fmt: skip
    case = world.case(492)
    assert (case.state.value, case.cpl_entry_id) == ("loaded", "S1-000500")


def test_a_case_never_loaded_whose_only_entry_is_withdrawn_is_escalated_past_the_limit(
    world: CplWorld,
) -> None:
    """Its entry withdrawn, the case waits for SECAS to publish one it may load, in needs attention,
    where no decision can load it: the waiting limit reaches it, counted from the withdrawal. A case
    whose entry only differs waits for an operator, not for SECAS, and is not escalated."""
    world.notify("2026-11-23T09:40:00Z", 443)
    world.notify(
        "2026-11-23T09:45:00Z", 444, supplier="Bramble Power", supplier_party_id="90-B3-D5-1F-30-01-00-02",
        responder="tom.okafor@bramblepower.example", secas_reference="ECPL-2026-0050",
    )  # fmt: skip
    wrong = entry(firmware_version="01020021")
    other = entry(entry_id="S1-000400", secas_reference="ECPL-2026-0050", image_hash="5" * 64)
    world.publish("2026-11-24T09:05:00Z", [wrong, other], "24 November 2026 09:00")
    assert (world.case(443).state.value, world.case(444).state.value) == ("needs_attention",) * 2
    withdrawn = {**wrong, "cpl_status": "Withdrawn"}
    world.publish("2026-11-25T09:05:00Z", [withdrawn, other], "25 November 2026 09:00")
    assert world.case(443).state.value == "needs_attention"
    # 71.9 hours: not yet; 72.9 hours: escalated; an hour later: once per wait
    card = escalated_once(world, "Waiting too long", "2026-11-28T09:00:00Z", "2026-11-28T10:00:00Z")
    assert "case 443" in card and "waiting for SECAS to publish a CPL entry it may load" in card
    assert "CPL entry S1-000316 is Withdrawn" in card
    escalations = [step for step in world.case(443).timeline if step.cause.startswith("escalated")]
    assert [step.evidence["hours_waiting"] for step in escalations] == [72.9]


def loaded_then_put_to_an_operator_by_a_reissue(
    world: CplWorld, response_id: int
) -> tuple[dict[str, Cell], dict[str, Cell]]:
    """A case loaded on 20 November whose entry SECAS re-issued on the 21st with another image hash:
    it needs a decision. The withdrawn entry and its re-issue, as published."""
    world.notify("2026-11-20T08:00:00Z", response_id)
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    reissued = entry(entry_id="S1-000500", image_hash="5" * 64)
    withdrawn = entry(cpl_status="Withdrawn")
    world.publish("2026-11-21T09:05:00Z", [withdrawn, reissued], "21 November 2026 09:00")
    assert world.case(response_id).state.value == "needs_attention"
    return withdrawn, reissued


def test_a_case_loaded_again_from_an_accepted_reissue_tells_its_supplier_of_each_load_once(
    world: CplWorld,
) -> None:
    """Loaded from S1-000316, then from its re-issue S1-000500 (another image hash) once an operator
    accepted it: the supplier is told of the second load too, naming the entry now loaded; a later
    publication listing the same tells nothing more."""
    withdrawn, reissued = loaded_then_put_to_an_operator_by_a_reissue(world, 467)
    assert world.cli(
        "2026-11-21T10:00:00Z", "cases", "decide", "467", "--accept", "--reason", "SECAS: new build",
        "--operator", "Olu",
    ) == 0  # fmt: skip
    assert (world.case(467).state.value, world.case(467).cpl_entry_id) == ("loaded", "S1-000500")
    world.publish("2026-11-22T09:05:00Z", [withdrawn, reissued], "22 November 2026 09:00")
    subjects = []
    for name in world.mails():
        if name.startswith("mail_loaded_467_"):
            message = email.message_from_bytes(
                world.home.joinpath("outbox", "mail", name).read_bytes(), policy=email.policy.default
            )
            subjects.append(str(message["Subject"]))
    assert sorted(subjects) == [
        f"You may start the firmware upgrades: CPL entry {entry} is loaded (DCC case 467)"
        for entry in ("S1-000316", "S1-000500")
    ]
    loaded_cards = [card for card in world.cards() if '"Loaded into the SMI: case 467' in card]
    assert len(loaded_cards) == 2, loaded_cards  # the operators hear of each load once too


def test_a_case_put_to_an_operator_by_a_reissue_closes_when_what_it_loaded_reaches_the_epcl(
    world: CplWorld,
) -> None:
    """The loaded entry's re-issue lists another image hash: the case needs a decision, the SMI keeping
    the combination loaded. That combination then appears on the EPCL: the process is over (DESIGN ends
    it on the EPCL), the decision moot. The case closes, told once, and nothing is withdrawn."""
    withdrawn, reissued = loaded_then_put_to_an_operator_by_a_reissue(world, 465)
    on_epcl = entry(entry_id="S1-000321", epcl_status="EPCL", secas_reference="")
    world.publish("2026-11-26T09:05:00Z", [withdrawn, reissued, on_epcl], "26 November 2026 09:00")
    case = world.case(465)
    assert (case.state.value, case.cpl_entry_id, case.problems) == ("closed", "S1-000321", [])
    assert "loaded from CPL entry S1-000316" in case.timeline[-1].cause
    assert len([name for name in world.mails() if name.startswith("mail_closed_465")]) == 1
    assert len([card for card in world.cards() if "Case 465 closed" in card]) == 1
    [record] = world.smi()
    assert (record.firmware_version, record.status) == ("01020011", InventoryStatus.ACTIVE)
    assert not [name for name in world.mails() if "withdrawn" in name]


def test_a_case_put_to_an_operator_by_a_reissue_closes_when_that_reissue_is_promoted(world: CplWorld) -> None:
    """The re-issue differs only in its image hash, so it lists the combination loaded; SECAS moves it
    to the EPCL: what the SMI holds for the case is on the EPCL, and the case closes on it."""
    withdrawn, reissued = loaded_then_put_to_an_operator_by_a_reissue(world, 466)
    world.publish(
        "2026-11-26T09:05:00Z", [withdrawn, {**reissued, "epcl_status": "EPCL"}], "26 November 2026 09:00"
    )
    case = world.case(466)
    assert (case.state.value, case.cpl_entry_id) == ("closed", "S1-000500")
    assert len([name for name in world.mails() if name.startswith("mail_closed_466")]) == 1


def test_a_date_added_that_is_no_date_does_not_hold_back_an_emergency_entry(world: CplWorld) -> None:
    """SECAS typed 31 February in the emergency entry's Date Added, which no rule reads: the entry is
    loaded and the supplier told, and the sync's run names the cell it left out."""
    world.notify("2026-11-20T08:00:00Z", 471)
    typo = entry(date_added="31/02/2026")
    assert world.publish("2026-11-20T09:05:00Z", [typo], "20 November 2026 09:00") == 0
    case = world.case(471)
    assert (case.state.value, case.cpl_entry_id) == ("loaded", "S1-000316")
    assert [name for name in world.mails() if name.startswith("mail_loaded_471")]
    with bootstrap(Settings(home=world.home)) as app:
        [sync] = app.parts.runs.find(flow="secas-sync")
    [unread] = sync.actions["fetch"].outputs["unread_cells"]
    assert "column 'Date Added': '31/02/2026' is not a date" in unread and unread.endswith("read as no date")
    # Operators are told once, naming the cell; the next publication, mended, tells nothing more.
    told = [card for card in world.cards() if "could not be read" in card]
    assert len(told) == 1 and "31/02/2026" in told[0]
    world.publish("2026-11-21T09:05:00Z", [entry(date_added="2026-02-28")], "21 November 2026 09:00")
    assert len([card for card in world.cards() if "could not be read" in card]) == 1


def loaded_mail(world: CplWorld, response_id: int) -> tuple[str, str]:
    """The text and HTML bodies of the "you may start" e-mail of a case."""
    return mail_bodies(world, f"mail_loaded_{response_id}_")


def mail_bodies(world: CplWorld, name_start: str) -> tuple[str, str]:
    """The text and HTML bodies of the one e-mail whose file name starts with ``name_start``."""
    [path] = (world.home / "outbox" / "mail").glob(f"{name_start}*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_the_loaded_email_names_what_an_operator_accepted_over_the_notification(world: CplWorld) -> None:
    """The supplier notified firmware 01020012, SECAS listed 01020011 and an operator accepted it: the
    supplier must not read that what was loaded is what it notified."""
    world.notify("2026-11-20T08:00:00Z", 302, new_firmware_version="01020012")
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    assert world.cli(
        "2026-11-20T09:30:00Z", "cases", "decide", "302", "--accept", "--reason", "SECAS: 01020011 is right",
        "--operator", "Olu",
    ) == 0  # fmt: skip
    text, html = loaded_mail(world, 302)
    assert "Firmware version: you notified 01020012; loaded 01020011" in text
    assert "checked it against your notification and loaded" not in text
    assert "you notified <strong>01020012</strong>;\nloaded <strong>01020011</strong>" in html


def test_the_loaded_email_names_an_accepted_difference_outside_the_combination(world: CplWorld) -> None:
    world.notify("2026-11-20T08:00:00Z", 304)
    world.publish("2026-11-20T09:05:00Z", [entry(image_hash="5" * 64)], "20 November 2026 09:00")
    notified = world.case(304).notification
    assert notified is not None and notified.image_hash
    assert world.cli(
        "2026-11-20T09:30:00Z", "cases", "decide", "304", "--accept", "--reason", "SECAS: rebuilt image",
        "--operator", "Olu",
    ) == 0  # fmt: skip
    text, _ = loaded_mail(world, 304)
    assert f"Image hash: you notified {notified.image_hash}; the CPL entry has {'5' * 64}" in text
    assert "Firmware version: you notified" not in text


def test_the_loaded_email_of_a_case_loaded_as_notified_lists_no_difference(world: CplWorld) -> None:
    world.notify("2026-11-20T08:00:00Z", 303)
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    text, html = loaded_mail(world, 303)
    assert "We have checked it against your notification and loaded this device model" in text
    assert "you notified" not in text and "you notified" not in html


def test_an_operators_reason_for_a_rejection_stays_out_of_the_run_history(world: CplWorld) -> None:
    """ARCHITECTURE: who decided and why stay in the timeline. The reason is free text (here a telephone
    number): the case, the console and the supplier's e-mail have it, no run record does."""
    reason = "Priya on 07700 900123 says the build is withdrawn"
    world.notify("2026-11-20T08:00:00Z", 305, new_firmware_version="01020012")
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    assert world.cli(
        "2026-11-20T09:30:00Z", "cases", "decide", "305", "--reject", "--reason", reason, "--operator", "Olu",
    ) == 0  # fmt: skip
    case = world.case(305)
    assert (case.state.value, case.problems) == ("rejected", [f"rejected by DCC: {reason}"])
    with bootstrap(Settings(home=world.home)) as app:
        runs = list(app.parts.runs.find(key="305"))
    [decided] = [run for run in runs if run.flow == "case-decision"]
    assert decided.actions["decision"].outputs["problems"] == [
        "rejected by DCC (the operator's reason is in the case's timeline)"
    ]
    assert all("07700" not in run.model_dump_json() for run in runs)
    text, _ = mail_bodies(world, "mail_rejected-by-operator_305-")
    assert reason in text


@pytest.mark.parametrize(
    ("answers", "problem"),
    [
        ({"planned_start": "30/11/2026"}, "planned_start: is not a date (like 2026-11-30): '30/11/2026'"),
        # The supplier's name misspelt too: the party id given is Amberline's, as a readable form's would be.
        (
            {"supplier": "Amberline Enrgy", "planned_start": "30/11/2026"},
            "planned_start: is not a date (like 2026-11-30): '30/11/2026'",
        ),
        (
            {"supplier_party_id": "90-B3-D5-1F-30-01-00-12"},
            "supplier_party_id: 90-B3-D5-1F-30-01-00-12 is not the SEC party id registered for "
            "Amberline Energy",
        ),
    ],
)
def test_a_registered_suppliers_refused_notification_is_answered_naming_each_problem(
    world: CplWorld, answers: dict[str, str], problem: str
) -> None:
    """A typo in a date or the party id: the supplier hears why, to correct it and submit again. Its
    responder is known by the supplier named or the party id given, whether the form could be read
    or not."""
    assert world.notify("2026-11-20T08:00:00Z", 306, **answers) == 0
    assert world.case(306).state.value == "rejected"
    text, _ = mail_bodies(world, "mail_acknowledge_306-")
    assert "We could not accept your notification" in text and f"  - {problem}\n" in text
    assert any("The responder is told why by e-mail" in card for card in world.cards())


def test_the_rejected_card_says_the_responder_is_told_when_it_is_of_another_supplier(world: CplWorld) -> None:
    """Amberline's responder names Bramble Power with Amberline's party id: it is told why, Bramble is
    not; the card must not say the supplier (Bramble Power, as it shows) was told. No address shown."""
    assert world.notify("2026-11-20T08:00:00Z", 309, supplier="Bramble Power") == 0
    assert world.case(309).state.value == "rejected"
    assert [name for name in world.mails() if name.startswith("mail_acknowledge_309-")]
    [card] = world.cards()
    assert "The responder is told why by e-mail" in card and "The supplier is told" not in card
    assert "priya@" not in card


@pytest.mark.parametrize("answers", [{"planned_start": "30/11/2026"}, {}])
def test_a_stranger_hears_nothing_valid_form_or_not(world: CplWorld, answers: dict[str, str]) -> None:
    assert world.notify("2026-11-20T08:00:00Z", 307, responder="mallory@free-mail.example", **answers) == 0
    assert world.case(307).state.value == "rejected"
    assert world.mails() == []
    [card] = world.cards()  # the operators are not told the stranger heard why
    assert "The responder is not answered" in card and "told why" not in card


def test_a_refused_notification_whose_responder_is_the_invalid_field_is_not_answered(world: CplWorld) -> None:
    assert world.notify("2026-11-20T08:00:00Z", 308, responder="priya@amberline-energy.example.") == 0
    assert world.case(308).state.value == "rejected"
    assert world.mails() == []
    # Amberline's own responder: the card does not say it is not the supplier's, only why it is not told.
    [card] = world.cards()
    assert "The responder is not answered: its address cannot be written to, or is not one of" in card
    assert "not an address of the supplier named" not in card and "priya@" not in card


def entry_changed_cards(world: CplWorld) -> list[str]:
    return [card for card in world.cards() if "CPL entry S1-000316 changed: case" in card]


def test_a_case_that_loaded_the_corrected_entry_is_not_told_the_entry_changed(world: CplWorld) -> None:
    """SECAS corrects S1-000316's firmware to what case 313 notified: 313 loads it in that sync, while
    314 loaded the entry as it was. Only 314's SMI record is not what SECAS lists now."""
    world.notify("2026-11-20T08:00:00Z", 313, new_firmware_version="01020012")
    world.notify("2026-11-20T08:00:00Z", 314)
    world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00")
    assert (world.case(313).state.value, world.case(314).state.value) == ("needs_attention", "loaded")
    world.publish("2026-11-21T09:05:00Z", [entry(firmware_version="01020012")], "21 November 2026 09:00")
    assert world.case(313).state.value == "loaded"
    [card] = entry_changed_cards(world)
    assert "changed: case 314" in card
    assert not [step for step in world.case(313).timeline if step.cause.startswith("SECAS changed")]
    assert [step for step in world.case(314).timeline if step.cause.startswith("SECAS changed")]


def test_a_case_that_loaded_an_image_hash_correction_is_not_told_the_entry_changed(world: CplWorld) -> None:
    """Only the image hash changes, so the combination is the same before and after: the case that
    loaded once the corrected listing was kept (315) is left out; one loaded before (316) is told."""
    notified = "4EA21ED919D2E75C52D1D84B0192E08314FAB5627E8412BC64AA7674C2311E13"
    assert entry()["image_hash"] == notified
    world.notify("2026-11-20T08:00:00Z", 315)
    world.notify("2026-11-20T08:00:00Z", 316, image_hash="")
    world.publish("2026-11-20T09:05:00Z", [entry(image_hash="5" * 64)], "20 November 2026 09:00")
    assert (world.case(315).state.value, world.case(316).state.value) == ("needs_attention", "loaded")
    world.publish("2026-11-21T09:05:00Z", [entry()], "21 November 2026 09:00")
    assert world.case(315).state.value == "loaded"
    [card] = entry_changed_cards(world)
    assert "changed: case 316" in card


def test_a_supplier_named_loosely_is_kept_under_the_registers_name(world: CplWorld) -> None:
    """'amberline  energy' is authorised (names compare loosely); the case and its runs' keys keep
    'Amberline Energy', so lists and `runs --key` show one supplier, not two."""
    world.notify("2026-11-20T08:00:00Z", 317, supplier="amberline  energy")
    case = world.case(317)
    assert case.supplier == "Amberline Energy" and case.state.value == "awaiting_cpl"
    assert case.notification is not None and case.notification.supplier == "amberline  energy"  # as sent
    with bootstrap(Settings(home=world.home)) as app:
        flows = [run.flow for run in app.parts.runs.find(key="Amberline Energy")]
    assert "notification-intake" in flows


def test_a_case_pairs_with_secas_correction_not_the_cancelled_copy_of_what_it_notified(
    world: CplWorld,
) -> None:
    """SECAS cancelled the entry listing exactly what was notified and corrected it under the same
    reference (another hardware version), listed after it: the case is put to an operator with the
    correction, which an accept loads. Paired with the cancelled copy, no decision could load it."""
    corrected = entry(entry_id="S1-000500", hardware_version="0004")
    world.publish(
        "2026-11-20T09:05:00Z", [entry(cpl_status="Cancelled"), corrected], "20 November 2026 09:00"
    )
    world.notify("2026-11-20T10:00:00Z", 501)
    case = world.case(501)
    assert (case.state.value, case.cpl_entry_id) == ("needs_attention", "S1-000500")
    assert case.problems[0] == "hardware_version: notified '0003', CPL has '0004'"
    assert world.cli(
        "2026-11-20T11:00:00Z", "cases", "decide", "501", "--accept", "--reason", "SECAS corrected it",
        "--operator", "Olu",
    ) == 0  # fmt: skip
    case = world.case(501)
    assert (case.state.value, case.cpl_entry_id) == ("loaded", "S1-000500")

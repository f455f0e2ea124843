"""The message templates: real rendering of every e-mail and card, escaping, the sandbox and overrides."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jinja2.exceptions import SecurityError

from flows.domain.case import Case, CaseState
from flows.domain.cpl import CplEntry, CplPublication
from flows.domain.matching import Assessment, Outcome, assess
from flows.domain.notification import EmergencyNotification
from flows.errors import BadInput
from flows.messages import MessageTemplates, TemplateProblem

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "forms"
EMAILS = ["acknowledged", "rejected", "loaded", "withdrawn", "closed"]
CARDS = [
    "case_opened",
    "case_rejected",
    "case_loaded",
    "needs_attention",
    "case_withdrawn",
    "case_closed",
    "case_closed_entry_withdrawn",
    "case_decided",
    "case_escalated",
    "case_waiting_again",
    "case_entry_removed",
    "case_entry_reissued",
    "case_load_failed",
    "case_entry_changed",
    "sync_failed",
    "run_failed",
    "cpl_cells_unread",
    "message_poisoned",
]
HOSTILE = (
    'He said "stop" \\ now\n"}], "actions": [{"type": "Action.OpenUrl"}]</script><script>alert(1)</script>'
)
SCRIPT = "<script>alert(1)</script>"
AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def sample_fields(index: int = 0) -> dict[str, Any]:
    """The canonical fields of one sample form response, mapped through the form definition."""
    definition = json.loads((SAMPLES / "form-definition.json").read_text(encoding="utf-8"))
    field_of = {question["id"]: question["field"] for question in definition["questions"]}
    response = json.loads((SAMPLES / "responses.json").read_text(encoding="utf-8"))[index]
    fields = {field_of[key]: value for key, value in response["answers"].items()}
    return {
        "response_id": response["responseId"],
        "responder": response["responder"],
        "submitted_at": response["submitDate"],
        **fields,
    }


def make_case(**changes: Any) -> Case:
    notification = EmergencyNotification(**{**sample_fields(), **changes})
    return Case.open(
        notification.response_id, at=AT, supplier=notification.supplier, notification=notification
    )


def make_entry(**changes: Any) -> CplEntry:
    """The Non-EPCL entry SECAS published for sample response 1."""
    fields: dict[str, Any] = {
        "entry_id": "S1-000301",
        "device_type": "GSME",
        "manufacturer_name": "Corrie Controls",
        "manufacturer_id": "10F4",
        "model_name": "Corrie GSME 2",
        "model_id": "F4010002",
        "hardware_version": "0003",
        "firmware_version": "01020011",
        "s1sp": "FOC",
        "epcl_status": "Non-EPCL",
        "cpl_status": "Active",
        "previous_entry_ids": ("S1-000110",),
        "image_hash": "4EA21ED919D2E75C52D1D84B0192E08314FAB5627E8412BC64AA7674C2311E13",
        "secas_reference": "ECPL-2026-0031",
    }
    return CplEntry(**{**fields, **changes})


def make_assessment(case: Case, entry: CplEntry) -> Assessment:
    predecessor = make_entry(
        entry_id="S1-000110", firmware_version="01020001", epcl_status="EPCL", previous_entry_ids=()
    )
    assert case.notification is not None
    return assess(case.notification, CplPublication(source_sha256="0" * 64, entries=(predecessor, entry)))


def full_context(case: Case, entry: CplEntry, **extra: Any) -> dict[str, Any]:
    """Every key any template takes, as the flows pass them (JSON dumps)."""
    return {
        "case": case.model_dump(mode="json"),
        "entry": entry.model_dump(mode="json"),
        "assessment": make_assessment(case, entry).model_dump(mode="json"),
        "problems": list(case.problems) or ["manufacturer_id: is not hexadecimal: 'XYZ'"],
        "hours_waiting": 50.5,
        "limit_hours": 48,
        "last_success": "2026-11-24T09:00:00Z",
        "error": "HTTP 503 from the SECAS site",
        "source": "https://secas.example/cpl.xlsx",
        "flow": "emergency-load",
        "run_id": "run-0001",
        "action": "load_into_smi",
        "previous_entry": entry.model_dump(mode="json"),
        "entry_id": entry.entry_id,
        "previous_entry_id": "S1-000300",
        "changes": [{"field": "firmware_version", "old": "01020011", "new": "01020012"}],
        "cells": ["sheet 'SMETS1', row 7, column 'Date Added': 'TBC' is not a date, read as no date"],
        "published_at": "2026-11-20T09:00:00",
        "message_id": "9d3c1f6e0b2a4c5d8e7f6a5b4c3d2e1f",
        "message_type": "event",
        **extra,
    }


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON document, keys excepted."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def actions(card: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = card.get("actions", [])
    return found


@pytest.fixture(scope="module")
def templates() -> MessageTemplates:
    return MessageTemplates()


def test_names_lists_every_email_and_card_and_no_partials(templates: MessageTemplates) -> None:
    assert templates.names("email") == sorted(EMAILS)
    assert templates.names("card") == sorted(CARDS)
    assert templates.names() == sorted(EMAILS + CARDS)


@pytest.mark.parametrize("name", EMAILS)
def test_each_email_renders_for_a_sample_case(templates: MessageTemplates, name: str) -> None:
    case = make_case()
    email = templates.email(
        name,
        full_context(case, make_entry()),
        to=["priya.natarajan@amberline-energy.example"],
        idempotency_key="k1",
    )

    assert email.to == ("priya.natarajan@amberline-energy.example",)
    assert email.idempotency_key == "k1"
    assert "\n" not in email.subject
    assert "case 1" in email.subject.casefold()
    assert email.text_body.startswith("Dear Priya Natarajan,")
    assert "Please quote case 1" in email.text_body
    assert email.html_body.startswith("<!DOCTYPE html>")
    assert "<p>Dear Priya Natarajan,</p>" in email.html_body
    assert "{{" not in email.text_body + email.html_body


def test_acknowledgement_gives_the_case_id_and_what_happens_next(templates: MessageTemplates) -> None:
    email = templates.email("acknowledged", {"case": make_case()}, to=["a@b.example"], idempotency_key="k")

    assert email.subject == "Emergency CPL notification received: ECPL-2026-0031 (DCC case 1)"
    assert "opened case 1" in email.text_body
    assert "received on 19 November 2026, 10:02 UTC" in email.text_body
    assert "What happens next" in email.text_body
    assert "30 November 2026" in email.text_body  # planned start, as a date people read


def test_loaded_email_names_the_combination_the_entry_and_the_reference(templates: MessageTemplates) -> None:
    email = templates.email(
        "loaded", {"case": make_case(), "entry": make_entry()}, to=["a@b.example"], idempotency_key="k"
    )

    for value in ("GSME", "10F4", "F4010002", "0003", "01020011", "S1-000301", "ECPL-2026-0031"):
        assert value in email.text_body
        assert value in email.html_body
    assert "You may now start the firmware upgrades" in email.text_body


def test_withdrawn_and_closed_emails_say_what_to_do(templates: MessageTemplates) -> None:
    context = {"case": make_case(), "entry": make_entry(cpl_status="Withdrawn")}
    withdrawn = templates.email("withdrawn", context, to=["a@b.example"], idempotency_key="k")
    closed = templates.email(
        "closed",
        {"case": make_case(), "entry": make_entry(epcl_status="EPCL")},
        to=["a@b.example"],
        idempotency_key="k",
    )

    assert "stop any firmware upgrades" in withdrawn.text_body
    assert "Withdrawn" in withdrawn.text_body
    assert "Eligible Product Combinations List (EPCL)" in closed.text_body
    assert "closed\ncase 1" in closed.text_body


def test_the_closed_email_says_whether_the_loaded_combination_passed_ppct_or_was_on_the_epcl(
    templates: MessageTemplates,
) -> None:
    loaded = make_case()
    loaded.move_to(CaseState.LOADED, at=AT, cause="loaded into the SMI")
    never = make_case()  # its combination appeared on the EPCL before any emergency entry
    entry = make_entry(entry_id="S1-000600", epcl_status="EPCL")

    after_ppct, usual = (
        templates.email("closed", {"case": case, "entry": entry}, to=["a@b.example"], idempotency_key="k")
        for case in (loaded, never)
    )

    assert "completed fast-track Pending Product\nCombination Tests" in after_ppct.text_body
    assert "fast-track" not in usual.text_body and "fast-track" not in usual.html_body
    assert "as entry S1-000600, so no\nemergency CPL addition" in usual.text_body
    assert "through the usual route" in usual.html_body


def test_rejected_email_lists_each_problem_even_without_a_notification(templates: MessageTemplates) -> None:
    case = Case.open("5", at=AT)
    problems = ["manufacturer_id: is not hexadecimal: 'XY Z'", "declaration not confirmed"]
    case.move_to(CaseState.REJECTED, at=AT, cause="invalid", problems=problems)

    email = templates.email(
        "rejected",
        {"case": case.model_dump(mode="json"), "problems": case.problems},
        to=["x@y.example"],
        idempotency_key="k",
    )

    assert email.text_body.startswith("Dear colleague,")
    for problem in problems:
        assert f"  - {problem}" in email.text_body
    assert email.html_body.count("<li>") == 2


def test_model_objects_in_the_context_are_dumped_for_the_templates(templates: MessageTemplates) -> None:
    email = templates.email(
        "loaded", {"case": make_case(), "entry": make_entry()}, to="a@b.example", idempotency_key="k"
    )

    assert email.to == ("a@b.example",)  # a lone address is not split into characters


def test_html_escapes_supplier_text_and_the_text_part_keeps_it(templates: MessageTemplates) -> None:
    case = make_case(model_name=SCRIPT)
    acknowledged = templates.email("acknowledged", {"case": case}, to=["a@b.example"], idempotency_key="k")
    rejected = templates.email(
        "rejected",
        {"case": case, "problems": [f"model_name: {SCRIPT}"]},
        to=["a@b.example"],
        idempotency_key="k",
    )

    for email in (acknowledged, rejected):
        assert SCRIPT in email.text_body
        assert SCRIPT not in email.html_body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html_body


def test_subject_is_one_line_even_when_values_hold_new_lines(templates: MessageTemplates) -> None:
    case = make_case().model_dump(mode="json")
    case["notification"]["secas_reference"] = "ECPL-1\n\nBcc: someone@else.example"

    email = templates.email("acknowledged", {"case": case}, to=["a@b.example"], idempotency_key="k")

    assert (
        email.subject == "Emergency CPL notification received: ECPL-1 Bcc: someone@else.example (DCC case 1)"
    )


@pytest.mark.parametrize("name", CARDS)
def test_each_card_stays_valid_json_whatever_the_free_text(templates: MessageTemplates, name: str) -> None:
    case = make_case(
        supplier=HOSTILE, model_name=HOSTILE, manufacturer_name=HOSTILE, vulnerability_reference=HOSTILE
    )
    entry = make_entry(model_name=HOSTILE, manufacturer_name=HOSTILE)
    context = full_context(
        case,
        entry,
        problems=[HOSTILE],
        error=HOSTILE,
        source=HOSTILE,
        flow=HOSTILE,
        run_id=HOSTILE,
        message_id=HOSTILE,
        action=HOSTILE,
        cells=[HOSTILE],
    )

    card = templates.card(name, context, idempotency_key=f"card-{name}").card

    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert "actions" not in card  # the free text added no element, and no link was asked for
    texts = list(strings(card))
    assert any(HOSTILE in text for text in texts), "the hostile text is shown as a plain string"
    assert all(element["type"] in {"TextBlock", "FactSet", "ColumnSet"} for element in card["body"])
    for fact_set in (element for element in card["body"] if element["type"] == "FactSet"):
        assert all(isinstance(fact["value"], str) for fact in fact_set["facts"])


@pytest.mark.parametrize("name", CARDS)
def test_no_card_holds_the_contact_phone_or_the_responder_email(
    templates: MessageTemplates, name: str
) -> None:
    case = make_case()
    assert case.notification is not None
    card = templates.card(name, full_context(case, make_entry()), idempotency_key="k").card

    rendered = json.dumps(card, ensure_ascii=False)
    assert case.notification.contact_phone not in rendered
    assert case.notification.responder not in rendered
    assert "amberline-energy.example" not in rendered


def test_case_url_adds_an_open_case_action(templates: MessageTemplates) -> None:
    context = full_context(make_case(), make_entry(), case_url="https://bridge.example/cases/1?a=1&b=2")

    card = templates.card("case_opened", context, idempotency_key="k").card

    assert actions(card) == [
        {"type": "Action.OpenUrl", "title": "Open case", "url": "https://bridge.example/cases/1?a=1&b=2"}
    ]


def test_needs_attention_shows_the_differing_field_first_with_both_values(
    templates: MessageTemplates,
) -> None:
    case = make_case()
    entry = make_entry(firmware_version="01020012")  # SECAS published another firmware version
    assessment = make_assessment(case, entry)

    card = templates.card(
        "needs_attention", {"case": case, "assessment": assessment}, idempotency_key="k"
    ).card

    rows = [element for element in card["body"] if element["type"] == "ColumnSet"]
    cells = [[column["items"][0]["text"] for column in row["columns"]] for row in rows]
    assert cells[0] == ["Field", "Notified", "CPL", "Agreement"]
    assert cells[1] == ["Firmware version", "01020011", "01020012", "\u2717 DIFFERS"]
    assert rows[1]["columns"][3]["items"][0]["color"] == "Attention"
    assert ["Device type", "GSME", "GSME", "\u2713 agrees"] in cells
    assert len(cells) == 1 + len(assessment.verdicts)
    assert card["body"][1]["text"].startswith("SECAS's entry differs from the notification in 1 field.")


def test_needs_attention_says_when_the_entry_cannot_be_loaded(templates: MessageTemplates) -> None:
    case = make_case()
    assessment = make_assessment(case, make_entry(cpl_status="Withdrawn"))

    card = templates.card(
        "needs_attention", {"case": case, "assessment": assessment}, idempotency_key="k"
    ).card

    assert card["body"][1]["text"].startswith(
        "The CPL lists entry S1-000301 as Withdrawn, so it cannot be loaded. No compared field differs."
    )


def test_a_reissue_card_says_whether_the_case_follows_or_needs_a_decision(
    templates: MessageTemplates,
) -> None:
    case = make_case()
    same = make_assessment(case, make_entry(entry_id="S1-000500")).model_copy(
        update={"outcome": Outcome.READY}
    )
    other = make_assessment(case, make_entry(entry_id="S1-000500", image_hash="5" * 64))
    context = {"case": case, "previous_entry_id": "S1-000301"}

    follows = templates.card("case_entry_reissued", {**context, "assessment": same}, idempotency_key="k").card
    differs = templates.card(
        "case_entry_reissued", {**context, "assessment": other}, idempotency_key="k"
    ).card

    assert follows["body"][0]["text"] == "CPL entry S1-000301 re-issued as S1-000500: case 1"
    assert "the case follows it and stays loaded" in follows["body"][1]["text"]
    assert not [element for element in follows["body"] if element["type"] == "ColumnSet"]
    assert "differs from the notification in 1 field" in differs["body"][1]["text"]
    rows = [element for element in differs["body"] if element["type"] == "ColumnSet"]
    assert rows[1]["columns"][0]["items"][0]["text"] == "Manufacturer image hash"


def test_needs_attention_says_when_the_smi_holds_the_combination_from_before(
    templates: MessageTemplates,
) -> None:
    case = make_case()
    case.move_to(CaseState.LOADED, at=AT, cause="loaded into the SMI")
    case.move_to(CaseState.NEEDS_ATTENTION, at=AT, cause="SECAS re-issued the entry, which differs")
    assessment = make_assessment(case, make_entry(image_hash="5" * 64))

    card = templates.card(
        "needs_attention", {"case": case, "assessment": assessment}, idempotency_key="k"
    ).card

    assert "The SMI still holds the combination loaded for this case before" in card["body"][1]["text"]


def test_a_load_failure_card_names_the_entry_the_combination_and_the_error(
    templates: MessageTemplates,
) -> None:
    error = "PermanentError: SMI PUT /device-models/GSME: HTTP 403: forbidden"
    context = {"case": make_case(), "entry": make_entry(), "error": error}

    card = templates.card("case_load_failed", context, idempotency_key="k").card

    assert card["body"][0]["text"] == "Loading failed: case 1 and CPL entry S1-000301"
    facts = {fact["title"]: fact["value"] for fact in card["body"][2]["facts"]}
    assert facts["Error"] == error
    assert facts["Combination"] == "GSME / 10F4 / F4010002 / 0003 / 01020011"


def test_an_entry_changed_card_shows_each_identifying_field_before_and_now(
    templates: MessageTemplates,
) -> None:
    changes = [
        {"field": "firmware_version", "old": "01020011", "new": "01020012"},
        {"field": "image_hash", "old": "4EA2", "new": ""},
    ]
    context = {"case": make_case(), "entry_id": "S1-000301", "changes": changes}

    card = templates.card("case_entry_changed", context, idempotency_key="k").card

    assert card["body"][0]["text"] == "CPL entry S1-000301 changed: case 1"
    assert "nothing was withdrawn or loaded" in card["body"][1]["text"]
    facts = [fact for element in card["body"] if element["type"] == "FactSet" for fact in element["facts"]]
    assert {"title": "Firmware version", "value": "01020011 \u2192 01020012"} in facts
    assert {"title": "Manufacturer image hash", "value": "4EA2 \u2192 (empty)"} in facts


def test_escalation_says_how_long_past_the_limit(templates: MessageTemplates) -> None:
    context = {"case": make_case(), "hours_waiting": 50.5, "limit_hours": 48}

    card = templates.card("case_escalated", context, idempotency_key="k").card

    assert "for 50.5 hours: 2.5 hours past the limit of 48 hours" in card["body"][1]["text"]


def test_sync_failed_and_run_failed_cards(templates: MessageTemplates) -> None:
    sync = templates.card(
        "sync_failed",
        {"last_success": None, "error": "timeout", "source": "https://secas.example/cpl.xlsx"},
        idempotency_key="k",
    ).card
    run = templates.card(
        "run_failed",
        {
            "flow": "intake",
            "run_id": "r-9",
            "action": "ack",
            "error": "boom",
            "run_url": "https://b.example/r-9",
        },
        idempotency_key="k",
    ).card

    assert sync["body"][0]["text"] == "SECAS CPL sync has never succeeded"
    assert {"title": "Failed action", "value": "ack"} in run["body"][2]["facts"]
    assert actions(run)[0]["title"] == "Open run"


def test_the_unread_cells_card_counts_them_and_lists_the_first_ten(templates: MessageTemplates) -> None:
    cells = [f"sheet 'SMETS1', row {row}, column 'Date Added': 'TBC' is not a date" for row in range(7, 19)]
    many = templates.card(
        "cpl_cells_unread",
        {"cells": cells, "source": "https://secas.example/cpl.xlsx", "published_at": "2026-11-20T09:00:00"},
        idempotency_key="k",
    ).card
    one = templates.card(
        "cpl_cells_unread", {"cells": cells[:1], "source": "s", "published_at": None}, idempotency_key="k"
    ).card

    assert many["body"][0]["text"] == "SECAS CPL: 12 cells could not be read"
    assert {"title": "Published", "value": "20 November 2026, 09:00"} in many["body"][2]["facts"]
    listed = many["body"][3]["text"].split("\n")
    assert listed[:10] == [f"- {cell}" for cell in cells[:10]] and listed[10:] == ["- and 2 more"]
    assert one["body"][0]["text"] == "SECAS CPL: 1 cell could not be read"
    assert {"title": "Published", "value": "not stated"} in one["body"][2]["facts"]


def test_a_missing_value_fails_naming_the_template_and_the_value(templates: MessageTemplates) -> None:
    with pytest.raises(TemplateProblem, match=r"loaded\.subject\.j2.*'entry' is undefined"):
        templates.email("loaded", {"case": make_case()}, to=["a@b.example"], idempotency_key="k")
    with pytest.raises(
        TemplateProblem, match=r"case_escalated\.card\.json\.j2.*'hours_waiting' is undefined"
    ):
        templates.card("case_escalated", {"case": make_case()}, idempotency_key="k")
    case = make_case().model_dump(mode="json")
    del case["notification"]["contact_name"]
    with pytest.raises(TemplateProblem, match="contact_name"):
        templates.email("acknowledged", {"case": case}, to=["a@b.example"], idempotency_key="k")


def test_template_problems_are_bad_input(templates: MessageTemplates) -> None:
    assert issubclass(TemplateProblem, BadInput)
    with pytest.raises(TemplateProblem, match="not a message name"):
        templates.card("../secrets", {}, idempotency_key="k")
    with pytest.raises(TemplateProblem, match=r"nothing\.card\.json\.j2 not found"):
        templates.card("nothing", {}, idempotency_key="k")
    with pytest.raises(BadInput, match="no recipient"):
        templates.email("acknowledged", {"case": make_case()}, to=[], idempotency_key="k")


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def test_an_override_folder_wins_over_the_packaged_templates(tmp_path: Path) -> None:
    write(tmp_path, "acknowledged.subject.j2", "Local wording for case {{ case.response_id }}")
    write(
        tmp_path, "ping.card.json.j2", '{"type": "AdaptiveCard", "version": "1.4", "body": [], "x": {{ x }}}'
    )
    templates = MessageTemplates(tmp_path)

    email = templates.email("acknowledged", {"case": make_case()}, to=["a@b.example"], idempotency_key="k")

    assert email.subject == "Local wording for case 1"
    assert "What happens next" in email.text_body  # the parts not overridden come from the package
    assert templates.card("ping", {"x": HOSTILE}, idempotency_key="k").card["x"] == HOSTILE
    assert "ping" in templates.names("card")
    assert "ping" not in MessageTemplates().names()


def test_a_missing_override_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(TemplateProblem, match="does not exist"):
        MessageTemplates(tmp_path / "absent")


def test_the_sandbox_refuses_python_internals(tmp_path: Path) -> None:
    write(tmp_path, "escape.subject.j2", "{{ ''.__class__.__mro__ }}")
    write(tmp_path, "escape.txt.j2", "")
    write(tmp_path, "escape.html.j2", "")
    templates = MessageTemplates(tmp_path)

    with pytest.raises(TemplateProblem, match=r"escape\.subject\.j2.*unsafe") as raised:
        templates.email("escape", {}, to=["a@b.example"], idempotency_key="k")
    assert isinstance(raised.value.__cause__, SecurityError)


def test_a_card_must_be_an_adaptive_card_with_values_outside_string_literals(tmp_path: Path) -> None:
    write(tmp_path, "quoted.card.json.j2", '{"type": "AdaptiveCard", "version": "1.4", "body": ["{{ x }}"]}')
    write(tmp_path, "other.card.json.j2", '{"type": "MessageCard", "version": "1.4", "body": []}')
    write(tmp_path, "bare.card.json.j2", '{"type": "AdaptiveCard"}')
    write(tmp_path, "broken.card.json.j2", "{% if %}")
    templates = MessageTemplates(tmp_path)

    with pytest.raises(TemplateProblem, match="valid JSON"):
        templates.card("quoted", {"x": "text"}, idempotency_key="k")
    with pytest.raises(TemplateProblem, match="AdaptiveCard"):
        templates.card("other", {}, idempotency_key="k")
    with pytest.raises(TemplateProblem, match="version or a body"):
        templates.card("bare", {}, idempotency_key="k")
    with pytest.raises(TemplateProblem, match=r"broken\.card\.json\.j2, line 1"):
        templates.card("broken", {}, idempotency_key="k")

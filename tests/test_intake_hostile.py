"""Hostile and broken form responses: every refusal names the field and what is wrong, never echoes a long
value, and yields no notification at all; what is accepted is rendered safely in e-mails and cards."""

from __future__ import annotations

import copy
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.forms import (
    IntakeRejection,
    ReferenceFileError,
    UnrecognisedPayload,
    load_form_definition,
    notification_from_any,
    notification_from_list_item,
    notification_from_response,
)
from adapters.outbox.mail import recipients
from flows.domain.case import Case
from flows.domain.cpl import CplEntry
from flows.domain.notification import EmergencyNotification, max_length
from flows.errors import BadInput
from flows.messages import MessageTemplates
from tests.support.form_samples import FORM, LIST_ITEMS, QUESTION_ID, RESPONSES, SAMPLES

AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def response(**answers: Any) -> dict[str, Any]:
    """Sample response 1 (valid), with some answers replaced."""
    payload = copy.deepcopy(RESPONSES[0])
    for field, value in answers.items():
        payload["answers"][QUESTION_ID[field]] = value
    return payload


def rejection(payload: dict[str, Any], form: Any = FORM) -> IntakeRejection:
    with pytest.raises(IntakeRejection) as caught:
        notification_from_any(payload, form)
    return caught.value


def reasons(error: IntakeRejection) -> dict[str, str]:
    return {problem.field: problem.reason for problem in error.problems}


# --- missing and unknown answers -----------------------------------------------------------------


def test_every_missing_required_answer_is_named_at_once() -> None:
    payload = response()
    for field in ("supplier", "model_id", "declaration"):
        del payload["answers"][QUESTION_ID[field]]
    del payload["responder"]
    assert reasons(rejection(payload)) == {
        "responder": "missing",
        "supplier": "missing",
        "model_id": "missing",
        "declaration": "missing",
    }


def test_answers_that_are_not_an_object_are_refused_by_name() -> None:
    payload = response()
    payload["answers"] = None
    with pytest.raises(UnrecognisedPayload, match="'answers' must be a JSON object, not nothing"):
        notification_from_any(payload, FORM)


def test_a_mistyped_question_id_does_not_lose_a_required_answer_silently() -> None:
    payload = response()
    model_id = payload["answers"].pop(QUESTION_ID["model_id"])
    typo = QUESTION_ID["model_id"][:-1] + "X"
    payload["answers"][typo] = model_id

    error = rejection(payload)

    assert reasons(error) == {
        "model_id": f"missing (answers to unknown question ids were not read: {typo!r}; a mistyped id?)"
    }


def test_unknown_ids_are_not_offered_for_missing_response_metadata() -> None:
    payload = response()
    del payload["responder"]
    payload["answers"]["rTYPO"] = "x"
    assert reasons(rejection(payload)) == {"responder": "missing"}


def test_many_unknown_ids_are_named_three_at_most_and_cut_short() -> None:
    payload = response()
    del payload["answers"][QUESTION_ID["model_id"]]
    for number in range(5):
        payload["answers"][f"r{number}" + "x" * 100] = "?"
    reason = reasons(rejection(payload))["model_id"]
    assert reason.count("'r") == 3
    assert "and 2 more" in reason
    assert "x" * 41 not in reason


def test_an_unknown_answer_on_a_complete_response_is_ignored_and_logged_without_its_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A question added to the form before the definition is updated must not stop intake."""
    payload = response()
    payload["answers"]["r0000000000000000000000000000000"] = "personal data, never logged"
    payload["@odata.etag"] = "W/1"  # extra members of the response itself are Power Automate's own

    with caplog.at_level(logging.WARNING, logger="adapters.forms.intake"):
        notification = notification_from_response(payload, FORM)

    assert notification == notification_from_response(response(), FORM)
    (record,) = caplog.records
    assert "'r0000000000000000000000000000000'" in record.getMessage()
    assert "personal data" not in record.getMessage()


def test_unknown_list_columns_are_sharepoint_s_own_and_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    item = copy.deepcopy(LIST_ITEMS[0])
    item["fields"]["_UIVersionString"] = "1.0"
    with caplog.at_level(logging.WARNING, logger="adapters.forms.intake"):
        assert notification_from_list_item(item, FORM).response_id == "1"
    assert caplog.records == []


# --- wrong types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("contact_name", ["Priya"], "should be text, not a list"),
        ("contact_name", {"first": "Priya"}, "should be text, not an object"),
        ("contact_name", True, "should be text, not true/false"),
        ("contact_name", 42, "should be text, not a number"),
        ("supplier", {"name": "Amberline Energy"}, "should be text, not an object"),
        ("model_id", 4010002, "should be text, not a number (4010002): numbers lose leading zeros"),
        ("hardware_version", 3.0, "should be text, not a number (3.0): numbers lose leading zeros"),
        ("manufacturer_id", False, "should be text, not true/false"),
        ("manufacturer_id", ["10F4"], "should be text, not a list"),
        ("image_hash", 1234, "should be text, not a number (1234): numbers lose leading zeros"),
        ("affected_devices", [1, 2], "is not a whole number: a list"),
        ("affected_devices", {"n": 1}, "is not a whole number: an object"),
        ("affected_devices", True, "is a yes/no answer, not a number"),
        ("planned_start", ["2026-11-30"], "is not a date (like 2026-11-30): a list"),
        ("planned_start", 1795996800, "should be text like 2026-11-30, not a number"),
        ("s1sp", {"FOC": True}, "should be one of 'FOC', 'IOC' or 'MOC', not an object"),
        ("declaration", ["Yes"], "should be a yes/no answer, not a list"),
        ("declaration", {"answer": "Yes"}, "should be a yes/no answer, not an object"),
    ],
)
def test_a_value_of_the_wrong_type_is_named_with_what_was_expected(
    field: str, value: Any, reason: str
) -> None:
    assert reasons(rejection(response(**{field: value}))) == {field: reason}


@pytest.mark.parametrize(("value", "kind"), [(0, "a number"), (1763546531, "a number"), (True, "true/false")])
def test_a_submit_date_that_is_not_text_is_not_read_as_unix_time(value: Any, kind: str) -> None:
    payload = response()
    payload["submitDate"] = value
    assert reasons(rejection(payload)) == {
        "submitted_at": f"should be text like 2026-11-19T10:02:11Z, not {kind}"
    }


@pytest.mark.parametrize("value", [True, ["1"], {"id": 1}, 1.5])
def test_a_response_id_of_the_wrong_type_is_refused_and_not_used_as_the_id(value: Any) -> None:
    payload = response()
    payload["responseId"] = value
    error = rejection(payload)
    assert list(reasons(error)) == ["response_id"]
    assert error.response_id is None
    assert str(error).startswith("response (no id): 1 invalid field")


# --- very long strings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("contact_name", 200),
        ("model_name", 200),
        ("supplier", 200),
        ("secas_reference", 200),
        ("model_id", 200),
        ("vulnerability_reference", 2000),
    ],
)
def test_a_text_at_its_limit_is_accepted_and_one_more_character_is_refused(field: str, limit: int) -> None:
    assert max_length(field) == limit
    filler = "A" if field.endswith("_id") else "a"
    at_limit = notification_from_response(response(**{field: filler * limit + "  "}), FORM)
    assert len(str(getattr(at_limit, field))) == limit

    error = rejection(response(**{field: filler * (limit + 1)}))

    assert reasons(error) == {field: f"is too long: {limit + 1} characters, the limit is {limit}"}


def test_the_responder_address_may_be_as_long_as_smtp_allows() -> None:
    payload = response()
    payload["responder"] = "a" * 241 + "@example.test"
    assert len(notification_from_response(payload, FORM).responder) == 254
    payload["responder"] = "a" * 242 + "@example.test"
    assert reasons(rejection(payload)) == {"responder": "is too long: 255 characters, the limit is 254"}


@pytest.mark.parametrize(
    ("address", "what", "position"),
    [
        ("a,b@c.example", "','", 2),  # two recipients once written in a To header
        ("a@c.example;b@c.example", "';'", 12),
        ("Zo\u00eb <zoe@c.example>", "white space", 4),
        ("<zoe@c.example>", "'<'", 1),
        ("zoe@c.example>", "'>'", 14),
        ('"zoe"@c.example', "'\"'", 1),
        ("zoe\t@c.example", "white space", 4),
        ("zoe\u00a0@c.example", "white space", 4),  # a no-break space
    ],
)
def test_a_responder_that_is_not_one_plain_address_is_refused_naming_the_character(
    address: str, what: str, position: int
) -> None:
    payload = response()
    payload["responder"] = address

    assert reasons(rejection(payload)) == {
        "responder": f"is not one e-mail address: {what} at character {position}; give one address,"
        " like name@example.com"
    }


@pytest.mark.parametrize("address", ["zo\u00eb@ex\u00e4mple.com", "o'brien+cpl@example.test"])
def test_an_international_or_unusual_but_single_address_is_accepted(address: str) -> None:
    payload = response()
    payload["responder"] = address
    assert notification_from_response(payload, FORM).responder == address


def test_a_huge_value_is_refused_without_being_echoed_anywhere() -> None:
    huge = "<b>" + "7" * 1_000_000
    error = rejection(response(model_id=huge, contact_name=huge, affected_devices=huge, planned_start=huge))

    assert reasons(error) == {
        "contact_name": "is too long: 1000003 characters, the limit is 200",
        "model_id": "is too long: 1000003 characters, the limit is 200",
        "affected_devices": "is too long: 1000003 characters, the limit is 200",
        "planned_start": "is too long: 1000003 characters, the limit is 200",
    }
    assert "777" not in str(error)
    assert len(str(error)) < 1000


def test_the_form_definition_may_set_a_tighter_limit_and_it_is_named(tmp_path: Path) -> None:
    data = json.loads((SAMPLES / "form-definition.json").read_text(encoding="utf-8"))
    next(q for q in data["questions"] if q["field"] == "contact_name")["maxLength"] = 40
    path = tmp_path / "form.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    form = load_form_definition(path)

    assert form.max_lengths() == {"contact_name": 40}
    assert notification_from_response(response(contact_name="x" * 40), form).contact_name == "x" * 40
    error = rejection(response(contact_name="x" * 41), form)
    assert str(error).endswith("- Contact name (contact_name): is too long: 41 characters, the limit is 40")


def test_a_limit_over_the_bridge_s_ceiling_is_refused_in_the_form_definition(tmp_path: Path) -> None:
    data = json.loads((SAMPLES / "form-definition.json").read_text(encoding="utf-8"))
    data["questions"][2]["maxLength"] = 5000
    path = tmp_path / "form.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(
        ReferenceFileError, match=r"\$\.questions\[2\]: maxLength 5000 for 'contact_name' is over"
    ):
        load_form_definition(path)


# --- control and invisible characters ------------------------------------------------------------

HIDDEN = {
    "\x00": "U+0000 (a control character)",
    "\x07": "U+0007 (a control character)",
    "\x1b": "U+001B (a control character)",
    "\x1f": "U+001F (a control character)",
    "\x7f": "U+007F (a control character)",
    "\x85": "U+0085 (a control character)",
    "\x9b": "U+009B (a control character)",
    "\u202a": "U+202A (LEFT-TO-RIGHT EMBEDDING)",
    "\u202e": "U+202E (RIGHT-TO-LEFT OVERRIDE)",
    "\u2066": "U+2066 (LEFT-TO-RIGHT ISOLATE)",
    "\u2069": "U+2069 (POP DIRECTIONAL ISOLATE)",
    "\u200b": "U+200B (ZERO WIDTH SPACE)",
    "\u200c": "U+200C (ZERO WIDTH NON-JOINER)",
    "\u200d": "U+200D (ZERO WIDTH JOINER)",
    "\ufeff": "U+FEFF (ZERO WIDTH NO-BREAK SPACE)",
}


@pytest.mark.parametrize("character", list(HIDDEN))
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model_id", "F401{}0002"),
        ("manufacturer_id", "10F4{}"),
        ("image_hash", "{}4EA21ED919D2E75C52D1D84B0192E08314FAB5627E8412BC64AA7674C2311E13"),
        ("secas_reference", "ECPL-2026{}-0031"),
        ("supplier_party_id", "90-B3-D5-1F-30-01-00-01{}"),
        ("device_type", "GS{}ME"),
        ("s1sp", "F{}OC"),
    ],
)
def test_an_identifier_with_a_control_or_invisible_character_is_refused(
    field: str, value: str, character: str
) -> None:
    given = value.format(character)
    position = given.index(character) + 1

    error = rejection(response(**{field: given}))

    assert reasons(error) == {
        field: f"contains an invisible or control character, {HIDDEN[character]}, at character {position}: "
        "type the value again without it"
    }
    assert character not in str(error)


@pytest.mark.parametrize(
    ("field", "given", "named"),
    [
        ("manufacturer_id", "10\ufb00", "U+FB00 (LATIN SMALL LIGATURE FF)"),  # upper-cased: "10FF"
        ("model_id", "F4010\u0430\u0430", "U+0430 (CYRILLIC SMALL LETTER A)"),  # upper-cased: "АА", not hex
        ("hardware_version", "\uff10003", "U+FF10 (FULLWIDTH DIGIT ZERO)"),
        ("secas_reference", "ECPL-2026-0031\u017f", "U+017F (LATIN SMALL LETTER LONG S)"),  # "S"
        ("supplier_party_id", "90-B3-D5-1F-30-01-00-0\u0131", "U+0131 (LATIN SMALL LETTER DOTLESS I)"),
    ],
)
def test_an_identifier_with_a_look_alike_is_refused_before_upper_casing_makes_it_ascii(
    field: str, given: str, named: str
) -> None:
    """The CPL reader refuses these too: a look-alike either passes as another value or shows two
    values that look the same."""
    error = rejection(response(**{field: given}))
    position = next(index for index, character in enumerate(given, start=1) if not character.isascii())
    assert reasons(error) == {
        field: f"contains {named} at character {position}, which only looks like a letter or digit an "
        "identifier can hold: type the value again"
    }


def test_a_no_break_space_in_an_identifier_is_still_only_white_space() -> None:
    notification = notification_from_any(
        response(manufacturer_id="10\u00a0F4", secas_reference="ECPL-2026-\u202f0031"), FORM
    )
    assert (notification.manufacturer_id, notification.secas_reference) == ("10F4", "ECPL-2026-0031")


@pytest.mark.parametrize("key", ["responder", "responseId"])
def test_response_metadata_with_a_hidden_character_is_refused(key: str) -> None:
    payload = response()
    payload[key] = "\u202e" + str(payload[key])
    error = rejection(payload)
    (problem,) = error.problems
    assert problem.question == key
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE), at character 1" in problem.reason
    assert "\u202e" not in str(error)


def test_ordinary_white_space_in_an_identifier_is_still_just_dropped() -> None:
    spaced = notification_from_response(response(model_id="F401\t0002\r\n"), FORM)
    assert spaced.model_id == "F4010002"


def test_free_text_drops_controls_and_bidi_and_zero_width_spaces_but_keeps_joiners() -> None:
    notification = notification_from_response(
        response(
            contact_name="\ufeffPriya\u200b \u202eNatarajan\u202c\x00",
            model_name="Corrie\x0bGSME\x1c2\x7f",  # white-space controls become spaces
            manufacturer_name="\u2066Corrie\u2069 Controls\x9b",
            vulnerability_reference="SSC-VULN-6070\ud800\nline two\tindented",  # a lone surrogate, from JSON
            supplier="Amberline \u200cEnergy\u200d",
        ),
        FORM,
    )

    assert notification.contact_name == "Priya Natarajan"
    assert notification.model_name == "Corrie GSME 2"
    assert notification.manufacturer_name == "Corrie Controls"
    assert notification.vulnerability_reference == "SSC-VULN-6070\nline two\tindented"
    assert notification.supplier == "Amberline \u200cEnergy\u200d"  # joiners: Persian, Indic scripts, emoji


@pytest.mark.parametrize(
    "name", ["\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\U0001f469\u200d\U0001f4bb Ada"]
)
def test_joiners_in_names_are_kept(name: str) -> None:
    assert notification_from_response(response(contact_name=name), FORM).contact_name == name


def test_a_required_text_of_nothing_but_hidden_characters_is_empty() -> None:
    error = rejection(response(supplier="\u202e\u200b\x00 \ufeff"))
    assert reasons(error) == {"supplier": "is empty"}
    assert error.supplier == ""


def test_a_rejection_names_the_supplier_and_responder_cleaned_and_cut_short() -> None:
    payload = response(supplier="Amberline\u202e Energy " + "x" * 5000, model_id="XYZ")
    error = rejection(payload)
    assert error.supplier.startswith("Amberline Energy xxx")
    assert len(error.supplier) == 200
    assert error.supplier.endswith("…")


def test_a_stored_notification_reloads_unchanged() -> None:
    notification = notification_from_response(
        response(contact_name="Priya \u202eNatarajan", model_name="x" * 200), FORM
    )
    assert EmergencyNotification.model_validate_json(notification.model_dump_json()) == notification


# --- HTML and script: data, escaped in e-mails and cards -----------------------------------------

HOSTILE_NAMES = {
    "contact_name": '<script>alert(1)</script> "}] </p>',
    "model_name": '</p><script>alert(1)</script>"}], "actions": [{"type": "Action.OpenUrl"}]',
    "manufacturer_name": "Corrie & <b>Controls</b>",
}


@pytest.fixture(scope="module")
def hostile_case() -> Case:
    notification = notification_from_response(response(**HOSTILE_NAMES), FORM)
    for field, value in HOSTILE_NAMES.items():
        assert getattr(notification, field) == value  # allowed in the data, as typed
    return Case.open(
        notification.response_id, at=AT, supplier=notification.supplier, notification=notification
    )


@pytest.fixture(scope="module")
def templates() -> MessageTemplates:
    return MessageTemplates()


def test_the_e_mail_escapes_the_html_part_and_keeps_the_text_part(
    templates: MessageTemplates, hostile_case: Case
) -> None:
    email = templates.email("acknowledged", {"case": hostile_case}, to=["a@b.example"], idempotency_key="k")
    benign = Case.open("1", at=AT, notification=notification_from_response(response(), FORM))
    plain = templates.email("acknowledged", {"case": benign}, to=["a@b.example"], idempotency_key="k")

    html = email.html_body
    assert "<script>" not in html
    assert "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<p>Dear &lt;script&gt;alert(1)&lt;/script&gt; &#34;}] &lt;/p&gt;,</p>" in html
    assert "&lt;/p&gt;&lt;script&gt;" in html
    assert "Corrie &amp; &lt;b&gt;Controls&lt;/b&gt;" in html
    for tag in ("<p>", "</p>", "<tr>", "</table>"):  # the hostile text added no element
        assert html.count(tag) == plain.html_body.count(tag)
    assert email.text_body.startswith(f"Dear {HOSTILE_NAMES['contact_name']},")
    assert HOSTILE_NAMES["model_name"] in email.text_body


def test_the_rejection_e_mail_escapes_problems_that_quote_the_supplier(templates: MessageTemplates) -> None:
    error = rejection(response(model_id="<script>alert(1)</script>"))
    problems = [f"{p.field}: {p.reason}" for p in error.problems]
    case = Case.open("1", at=AT)
    email = templates.email("rejected", {"case": case, "problems": problems}, to=["a@b"], idempotency_key="k")
    assert "<script>" not in email.html_body
    assert "is not hexadecimal: &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39;" in email.html_body


@pytest.mark.parametrize("name", ["case_opened", "case_loaded", "case_rejected", "case_closed"])
def test_the_card_stays_valid_json_with_the_text_as_a_plain_string(
    templates: MessageTemplates, hostile_case: Case, name: str
) -> None:
    entry = CplEntry(
        entry_id="S1-000301", device_type="GSME", manufacturer_name=HOSTILE_NAMES["manufacturer_name"],
        manufacturer_id="10F4", model_name=HOSTILE_NAMES["model_name"], model_id="F4010002",
        hardware_version="0003", firmware_version="01020011", s1sp="FOC", epcl_status="EPCL",
        cpl_status="Active", secas_reference="ECPL-2026-0031",
    )  # fmt: skip
    context = {
        "case": hostile_case,
        "entry": entry,
        "problems": [f"model_name: {HOSTILE_NAMES['model_name']}"],
    }
    card = templates.card(name, context, idempotency_key="k").card  # parsed: it is valid JSON

    assert "actions" not in card
    assert {element["type"] for element in card["body"]} <= {"TextBlock", "FactSet"}
    texts = [element.get("text") for element in card["body"]] + [
        fact["value"] for element in card["body"] if element["type"] == "FactSet" for fact in element["facts"]
    ]
    assert all(isinstance(text, str) for text in texts if text is not None)
    if name == "case_opened":
        assert f"{HOSTILE_NAMES['model_name']} (F4010002)" in texts


def test_a_markdown_link_in_a_name_does_not_become_a_link_in_a_card(templates: MessageTemplates) -> None:
    link = "[Approve the load](https://evil.example/approve)"
    notification = notification_from_response(response(model_name=link), FORM)
    case = Case.open("1", at=AT, notification=notification)

    card = templates.card("case_opened", {"case": case}, idempotency_key="k").card

    rendered = json.dumps(card, ensure_ascii=False)
    assert "](" not in rendered
    assert "[Approve the load]\u200b(https://evil.example/approve)" in rendered


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("tom.okafor@bramblepower.example.", "the domain begins or ends with a dot, or has two together"),
        ("tom@bramble..example", "the domain begins or ends with a dot, or has two together"),
        (
            "tom..okafor@bramblepower.example",
            "the part before the @ begins or ends with a dot, or has two together",
        ),
        (".tom@bramblepower.example", "the part before the @ begins or ends with a dot, or has two together"),
        ("tom.@bramblepower.example", "the part before the @ begins or ends with a dot, or has two together"),
        (
            "t\u00f6m.@bramblepower.example",
            "the part before the @ begins or ends with a dot, or has two together",
        ),
    ],
)
def test_a_responder_the_outbox_could_not_write_to_is_refused_at_intake(address: str, problem: str) -> None:
    """The same parse as the outbox's: accepted, the case would load and its supplier never be told."""
    payload = response()
    payload["responder"] = address

    error = rejection(payload)

    assert reasons(error) == {"responder": f"is not one e-mail address: {problem}"}
    assert all(address not in problem.reason for problem in error.problems)
    with pytest.raises(BadInput, match=re.escape(f"recipient 1 of 1 is not one e-mail address: {problem}")):
        recipients([address])

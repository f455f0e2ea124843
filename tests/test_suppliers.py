"""Who may notify for which supplier: the responder's e-mail domain must be registered for the supplier
named, compared whole, case-insensitively and as IDNA 2008 writes it, and the SEC party id must be the
supplier's."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.forms import (
    IntakeRejection,
    ReferenceFileError,
    authorise,
    load_form_definition,
    load_supplier_register,
    notification_from_response,
)
from flows.domain.notification import EmergencyNotification
from flows.domain.suppliers import Supplier, SupplierRegister

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
FORM = load_form_definition(SAMPLES / "forms" / "form-definition.json")
REGISTER = load_supplier_register(SAMPLES / "suppliers.json")
RESPONSES: list[dict[str, Any]] = json.loads((SAMPLES / "forms/responses.json").read_text(encoding="utf-8"))
QUESTION_ID = {q.field: q.id for q in FORM.questions}


def notification(number: int = 2, *, responder: str | None = None, **answers: str) -> EmergencyNotification:
    """Sample response ``number`` (by default 2, Tom Okafor for Bramble Power), with changes."""
    payload = copy.deepcopy(next(r for r in RESPONSES if r["responseId"] == number))
    if responder is not None:
        payload["responder"] = responder
    for field, value in answers.items():
        payload["answers"][QUESTION_ID[field]] = value
    return notification_from_response(payload, FORM)


def refusal(refused: EmergencyNotification) -> IntakeRejection:
    with pytest.raises(IntakeRejection) as caught:
        authorise(refused, REGISTER, form=FORM)
    assert caught.value.kind == "unauthorised"
    return caught.value


def refused_fields(refused: EmergencyNotification) -> list[str]:
    return [problem.field for problem in refusal(refused).problems]


@pytest.mark.parametrize("number", [1, 2, 3, 4, 6, 8])
def test_the_sample_responders_may_notify(number: int) -> None:
    authorise(notification(number), REGISTER)


def test_response_7_from_a_free_mail_address_is_refused() -> None:
    error = refusal(notification(7))
    assert (error.response_id, error.supplier, error.responder) == (
        "7",
        "Bramble Power",
        "mallory@free-mail.example",
    )
    assert [(p.field, p.reason) for p in error.problems] == [
        ("responder", "e-mail domain 'free-mail.example' is not registered for Bramble Power")
    ]
    assert str(error) == (
        "response 7: mallory@free-mail.example may not notify for 'Bramble Power'\n"
        "- responder: e-mail domain 'free-mail.example' is not registered for Bramble Power"
    )


@pytest.mark.parametrize(
    "responder",
    ["TOM@BramblePower.Example", "tom.okafor@ops.bramblepower.example", " tom@bramblepower.example "],
)
def test_registered_domains_are_accepted_in_any_case(responder: str) -> None:
    authorise(notification(responder=responder), REGISTER)


@pytest.mark.parametrize(
    "responder",
    [
        "tom@bramblepower.example.evil.example",
        "tom@evil-bramblepower.example",
        "tom@evilbramblepower.example",
        "tom@sales.bramblepower.example",  # a subdomain counts only when registered itself
        "tom@bramblepower.exampl",
        "tom@amberline-energy.example",  # another supplier's domain
    ],
)
def test_look_alike_domains_are_refused(responder: str) -> None:
    assert refused_fields(notification(responder=responder)) == ["responder"]


def test_a_wrong_party_id_is_refused() -> None:
    error = refusal(notification(supplier_party_id="90-B3-D5-1F-30-01-00-01"))
    assert [(p.field, p.question) for p in error.problems] == [("supplier_party_id", "Supplier SEC Party ID")]
    assert "not the SEC party id registered for Bramble Power" in str(error)


def test_an_unknown_supplier_is_refused() -> None:
    error = refusal(notification(supplier="Bramble Energy Ltd"))
    assert [(p.field, p.question) for p in error.problems] == [("supplier", "Supplier (SEC Party name)")]
    assert "'Bramble Energy Ltd' is not a registered supplier" in str(error)


def test_without_the_form_problems_are_labelled_by_field() -> None:
    with pytest.raises(IntakeRejection) as caught:
        authorise(notification(supplier="Nobody"), REGISTER)
    assert str(caught.value).endswith("\n- supplier: 'Nobody' is not a registered supplier")


@pytest.mark.parametrize("name", ["bramble power", "BRAMBLE-POWER", " Bramble  Power "])
def test_supplier_names_match_loosely(name: str) -> None:
    authorise(notification(supplier=name), REGISTER)


def test_every_problem_is_named_at_once() -> None:
    refused = notification(responder="x@free-mail.example", supplier_party_id="90-B3-D5-1F-30-01-00-03")
    assert refused_fields(refused) == ["supplier_party_id", "responder"]


# --- the register file ---------------------------------------------------------------------------


def register_file(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "suppliers.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_the_register_may_be_wrapped_in_an_object(tmp_path: Path) -> None:
    data = json.loads((SAMPLES / "suppliers.json").read_text(encoding="utf-8"))
    assert load_supplier_register(register_file(tmp_path, {"suppliers": data})) == REGISTER


def test_a_wrongly_shaped_register_is_placed_by_json_path(tmp_path: Path) -> None:
    data = json.loads((SAMPLES / "suppliers.json").read_text(encoding="utf-8"))
    del data[1]["party_id"]
    data[2]["email_domains"] = []
    with pytest.raises(ReferenceFileError) as caught:
        load_supplier_register(register_file(tmp_path, data))
    assert "$[1].party_id: Field required" in str(caught.value)
    assert "$[2].email_domains: " in str(caught.value)
    with pytest.raises(ReferenceFileError, match=r"\$\.suppliers\[1\]\.party_id"):
        load_supplier_register(register_file(tmp_path, {"suppliers": data}))


def test_an_empty_register_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReferenceFileError, match="no suppliers"):
        load_supplier_register(register_file(tmp_path, []))


@pytest.mark.parametrize(
    ("domain", "supplier", "party_id", "answered"),
    [
        ("bramblepower.example", "Bramble Power", "", True),
        ("OPS.BramblePower.example.", "bramble power", "", True),  # as authorisation compares them
        ("bramblepower.example", "Bramble Powr", "90-b3-d5-1f-30-01-00-02", True),  # by the party id
        ("bramblepower.example", "Cobalt Supply Co", "90-B3-D5-1F-30-01-00-02", True),
        ("bramblepower.example", "Bramble Powr", "", False),
        ("bramblepower.example", "Cobalt Supply Co", "90-B3-D5-1F-30-01-00-03", False),
        ("free-mail.example", "Bramble Power", "90-B3-D5-1F-30-01-00-02", False),  # a stranger
        ("bramblepower.example.evil.example", "Bramble Power", "", False),
    ],
)
def test_a_refused_responder_is_answered_only_from_a_domain_of_the_supplier_it_names(
    domain: str, supplier: str, party_id: str, answered: bool
) -> None:
    assert REGISTER.answers_to(domain, supplier, party_id) is answered


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("bramble power", "Bramble Power"),
        (" BRAMBLE  Power ", "Bramble Power"),
        ("Bramble Powr", "Bramble Powr"),
    ],
)
def test_a_supplier_is_kept_under_the_registers_name_when_it_has_one(typed: str, kept: str) -> None:
    assert REGISTER.registered_name(typed) == kept


def bramble_at(domain: str) -> SupplierRegister:
    """A register whose only supplier, Bramble Power, has one e-mail domain."""
    supplier = Supplier(name="Bramble Power", party_id="90-B3-D5-1F-30-01-00-02", email_domains=(domain,))
    return SupplierRegister(suppliers=(supplier,))


@pytest.mark.parametrize(
    ("registered", "typed", "same"),
    [
        # casefold makes "ß" "ss"; IDNA 2008, which the outbox writes, keeps them two domains
        ("strasse-power.example", "straße-power.example", False),
        ("straße-power.example", "strasse-power.example", False),
        ("straße-power.example", "Straße-Power.example", True),
        ("xn--strae-power-y6a.example", "straße-power.example", True),  # a register written in punycode
        ("Straße-Power.example.", "XN--STRAE-POWER-Y6A.example", True),
    ],
)
def test_domains_compare_as_the_outbox_writes_them(registered: str, typed: str, same: bool) -> None:
    register = bramble_at(registered)
    refused = register.authorisation_problems(notification(responder=f"tom@{typed}"))
    assert [problem.partition(":")[0] for problem in refused] == ([] if same else ["responder"])
    assert register.answers_to(typed, "Bramble Power") is same
    assert register.answers_to(typed, "Bramble Powr", "90-B3-D5-1F-30-01-00-02") is same


def test_a_registered_domain_idna_refuses_is_named(tmp_path: Path) -> None:
    data = json.loads((SAMPLES / "suppliers.json").read_text(encoding="utf-8"))
    data[1]["email_domains"] = ["bramblepower.example", "\u2603.example"]
    with pytest.raises(ReferenceFileError) as caught:
        load_supplier_register(register_file(tmp_path, data))
    assert "$[1].email_domains: " in str(caught.value)
    assert "'\u2603.example' is not a valid international domain name" in str(caught.value)

"""Each expected outcome (samples/forms/expected-outcomes.json) decided by the domain alone:
pairing, field verdicts and what the diff of the two publications says."""

from __future__ import annotations

import json
from functools import cache

import pytest

from adapters.forms import load_form_definition, load_supplier_register, notification_from_response
from adapters.secas import read_cpl
from flows.domain.cpl import CplEntry, CplPublication
from flows.domain.diff import diff_publications
from flows.domain.matching import Agreement, Outcome, assess
from flows.domain.notification import EmergencyNotification
from flows.settings import SAMPLES


@cache
def publication(day: str) -> CplPublication:
    path = SAMPLES / "cpl" / f"cpl-2026-11-{day}.xlsx"
    return read_cpl(path.read_bytes(), name=path.name)


@cache
def responses() -> dict[str, dict[str, object]]:
    items = json.loads((SAMPLES / "forms" / "responses.json").read_text())
    return {str(item["responseId"]): item for item in items}


def notification(response_id: str) -> EmergencyNotification:
    form = load_form_definition(SAMPLES / "forms" / "form-definition.json")
    return notification_from_response(responses()[response_id], form)


def changed(response_id: str, **fields: object) -> EmergencyNotification:
    """A sample notification with some fields changed, validated as intake would."""
    return EmergencyNotification.model_validate({**notification(response_id).model_dump(), **fields})


def test_the_expected_outcomes_file_is_the_one_these_tests_encode() -> None:
    outcomes = json.loads((SAMPLES / "forms" / "expected-outcomes.json").read_text())
    assert set(outcomes) == {"1", "2", "3", "4", "5", "6", "7", "8", "duplicate", "promotion", "withdrawal"}


def test_1_pairs_with_an_entry_already_on_the_first_publication() -> None:
    result = assess(notification("1"), publication("20"))
    assert result.outcome is Outcome.READY
    assert result.entry is not None and result.entry.entry_id == "S1-000316"
    assert all(v.agreement in {Agreement.AGREES, Agreement.NOT_GIVEN} for v in result.verdicts)


@pytest.mark.parametrize(("response_id", "entry_id"), [("2", "S1-000318"), ("3", "S1-000319")])
def test_2_and_3_wait_then_agree_with_the_second_publication(response_id: str, entry_id: str) -> None:
    assert assess(notification(response_id), publication("20")).outcome is Outcome.WAITING
    result = assess(notification(response_id), publication("24"))
    assert result.outcome is Outcome.READY
    assert result.entry is not None and result.entry.entry_id == entry_id


def test_3_agrees_only_after_normalising_case_and_white_space() -> None:
    raw = responses()["3"]["answers"]
    assert isinstance(raw, dict)
    assert " 3a11" in raw.values()
    assert "11030001 " in raw.values()
    assert notification("3").manufacturer_id == "3A11"
    assert notification("3").model_id == "11030001"


def test_4_needs_attention_with_the_firmware_difference_shown_both_ways() -> None:
    result = assess(notification("4"), publication("24"))
    assert result.outcome is Outcome.MISMATCH
    assert result.entry is not None and result.entry.entry_id == "S1-000320"
    (difference,) = result.differences
    assert (difference.field, difference.notified, difference.published) == (
        "firmware_version",
        "01030012",
        "01030011",
    )
    assert result.problems() == ["firmware_version: notified '01030012', CPL has '01030011'"]


def test_6_never_pairs() -> None:
    for day in ("20", "24"):
        assert assess(notification("6"), publication(day)).outcome is Outcome.WAITING


def test_7_is_refused_for_its_e_mail_domain() -> None:
    register = load_supplier_register(SAMPLES / "suppliers.json")
    problems = register.authorisation_problems(notification("7"))
    assert problems == ["responder: e-mail domain 'free-mail.example' is not registered for Bramble Power"]
    assert register.authorisation_problems(notification("2")) == []


def test_8_is_ready_on_the_first_and_its_entry_is_promoted_on_the_second() -> None:
    assert assess(notification("8"), publication("20")).outcome is Outcome.READY
    diff = diff_publications(publication("20"), publication("24"))
    (promotion,) = diff.promoted
    assert promotion.entry_id == "S1-000317"
    assert [(c.field, c.old, c.new) for c in promotion.fields] == [("epcl_status", "Non-EPCL", "EPCL")]
    # On the EPCL it is no longer an emergency entry: nothing pairs it as one any more, and the notified
    # combination is on the EPCL (a case still open would close).
    on_epcl = assess(notification("8"), publication("24"))
    assert on_epcl.outcome is Outcome.ON_EPCL and on_epcl.entry is not None
    assert on_epcl.entry.entry_id == "S1-000317"


def test_the_diff_of_the_two_publications() -> None:
    diff = diff_publications(publication("20"), publication("24"))
    assert diff.summary() == {
        "added": ["S1-000318", "S1-000319", "S1-000320"],
        "removed": [],
        "changed": ["S1-000001", "S1-000317"],
        "withdrawn": ["S1-000001"],
        "promoted": ["S1-000317"],
    }
    (withdrawal,) = diff.withdrawn
    assert [(c.field, c.old, c.new) for c in withdrawal.fields] == [("cpl_status", "Active", "Withdrawn")]


def test_a_withdrawn_entry_is_never_loadable() -> None:
    entry = publication("24").by_id()["S1-000316"]
    withdrawn = CplEntry.model_validate({**entry.model_dump(), "cpl_status": "Withdrawn"})
    published = publication("24").model_copy(
        update={
            "entries": tuple(
                withdrawn if e.entry_id == entry.entry_id else e for e in publication("24").entries
            )
        }
    )
    result = assess(notification("1"), published)
    assert result.outcome is Outcome.NOT_LOADABLE
    assert result.problems()[0] == "CPL entry S1-000316 is Withdrawn"


def test_pairing_by_secas_reference_names_each_field_that_differs() -> None:
    other = changed("2", hardware_version="0004", s1sp="MOC", image_hash="AB" * 32)
    result = assess(other, publication("24"))
    assert result.outcome is Outcome.MISMATCH
    assert {d.field for d in result.differences} == {"hardware_version", "s1sp", "image_hash"}


def test_names_only_warn() -> None:
    renamed = changed("2", model_name="Corrie  PPMID-2 ", manufacturer_name="Other Co")
    result = assess(renamed, publication("24"))
    assert result.outcome is Outcome.READY
    assert [w.field for w in result.warnings] == ["manufacturer_name"]


def test_the_notified_current_firmware_must_be_a_listed_predecessor() -> None:
    wrong = changed("2", current_firmware_version="01020099")
    result = assess(wrong, publication("24"))
    assert result.outcome is Outcome.MISMATCH
    (difference,) = result.differences
    assert difference.field == "current_firmware_version"
    assert difference.published == "01020003"


def relisted(entry_id: str, **fields: object) -> CplPublication:
    """The second publication with some fields of one entry changed."""
    published = publication("24")
    entry = published.by_id()[entry_id]
    changed_entry = CplEntry.model_validate({**entry.model_dump(), **fields})
    entries = tuple(changed_entry if e.entry_id == entry_id else e for e in published.entries)
    return published.model_copy(update={"entries": entries})


def test_a_predecessor_of_another_device_model_does_not_count() -> None:
    # S1-000318 is the PPMID 10F4/F4040002/0003; S1-000110 a GSME of model F4010002 on firmware 01020001.
    published = relisted("S1-000318", previous_entry_ids=("S1-000110",))
    result = assess(changed("2", current_firmware_version="01020001"), published)
    assert result.outcome is Outcome.MISMATCH
    (difference,) = result.differences
    assert (difference.field, difference.notified) == ("current_firmware_version", "01020001")
    assert difference.published == (
        "(no listed predecessor of this device model on this CPL); S1-000110 (firmware 01020001) is "
        "another device model: device_type GSME not PPMID, model_id F4010002 not F4040002"
    )


def test_a_predecessor_of_the_same_model_counts_beside_one_of_another() -> None:
    published = relisted("S1-000318", previous_entry_ids=("S1-000110", "S1-000143"))
    assert assess(notification("2"), published).outcome is Outcome.READY


def test_an_entry_whose_model_differs_from_its_predecessor_shows_both_differences() -> None:
    # SECAS typed another hardware version into the new entry only: its predecessor is then another model.
    result = assess(notification("2"), relisted("S1-000318", hardware_version="0004"))
    assert result.outcome is Outcome.MISMATCH
    assert result.problems() == [
        "hardware_version: notified '0003', CPL has '0004'",
        "current_firmware_version: notified '01020003', CPL has '(no listed predecessor of this device "
        "model on this CPL); S1-000143 (firmware 01020003) is another device model: hardware_version 0003 "
        "not 0004'",
    ]


def with_entry(published: CplPublication, like: str, **fields: object) -> CplPublication:
    """A publication with one more entry, a copy of ``like`` with some fields changed, listed last."""
    entry = CplEntry.model_validate({**published.by_id()[like].model_dump(), **fields})
    return published.model_copy(update={"entries": (*published.entries, entry)})


def test_one_reference_covering_two_models_pairs_each_case_with_its_own_model() -> None:
    # One SECAS request (S1-000316's reference) covers the GSME and an ESME on the same new firmware;
    # the ESME entry is listed after the GSME's. File order must not pair the GSME case with it.
    esme = {"entry_id": "S1-000321", "device_type": "ESME", "model_id": "F4000002", "image_hash": "D5" * 32}
    published = with_entry(publication("20"), "S1-000316", **esme)
    gsme = assess(notification("1"), published)
    assert gsme.entry is not None and gsme.entry.entry_id == "S1-000316"
    assert gsme.outcome is Outcome.READY
    case_esme = changed("1", device_type="ESME", model_id="F4000002", image_hash="D5" * 32)
    paired = assess(case_esme, published).entry
    assert paired is not None and paired.entry_id == "S1-000321"


def test_under_one_reference_the_notified_model_wins_over_the_notified_firmware() -> None:
    # The reference's entry for the notified model lists other firmware; another model's lists the
    # notified one. The case is this model's: its firmware difference is what an operator must see.
    published = relisted_20("S1-000316", firmware_version="01020012")
    other_model = {"entry_id": "S1-000321", "device_type": "ESME", "model_id": "F4000002"}
    published = with_entry(published, "S1-000316", firmware_version="01020011", **other_model)
    result = assess(notification("1"), published)
    assert result.entry is not None and result.entry.entry_id == "S1-000316"
    assert [d.field for d in result.differences] == ["firmware_version"]


def relisted_20(entry_id: str, **fields: object) -> CplPublication:
    """The first publication with some fields of one entry changed."""
    published = publication("20")
    entry = CplEntry.model_validate({**published.by_id()[entry_id].model_dump(), **fields})
    entries = tuple(entry if e.entry_id == entry_id else e for e in published.entries)
    return published.model_copy(update={"entries": entries})


def test_under_one_reference_an_active_correction_wins_over_a_cancelled_copy_of_the_notification() -> None:
    # SECAS cancelled S1-000316 (exactly what case 1 notified) and listed its correction, another
    # hardware version, under the same reference. The cancelled entry can never be loaded: the case
    # pairs with the correction, its difference for an operator to accept or reject.
    correction = {"entry_id": "S1-000399", "hardware_version": "0004", "cpl_status": "Active"}
    published = with_entry(relisted_20("S1-000316", cpl_status="Cancelled"), "S1-000316", **correction)
    result = assess(notification("1"), published)
    assert result.entry is not None and result.entry.entry_id == "S1-000399"
    assert result.outcome is Outcome.MISMATCH
    assert [d.field for d in result.differences] == ["hardware_version", "current_firmware_version"]

"""Properties of the domain rules that the example tests only sample: identifier normalisation,
pairing and verdicts, and the diff of two publications.

Examples per property come from the Hypothesis profile (``tests/hypothesis_profiles.py``;
``HYPOTHESIS_PROFILE=deep`` for many more). A property marked ``xfail(strict=True)`` states a rule the
domain breaks today. It runs only examples that break it (its explicit ``@example``s, or a few generated
ones when every example does), so it fails on every run until the domain is fixed; then it XPASSes,
which fails the run: drop the marker and the ``phases`` setting so that Hypothesis searches again.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from flows.domain.cpl import NEVER_LOADABLE, CplEntry, CplPublication, CplStatus, DeviceModel, EpclStatus
from flows.domain.diff import PublicationDiff, diff_publications
from flows.domain.identifiers import normalise_identifier
from flows.domain.matching import Outcome, assess
from flows.domain.notification import DeviceType, EmergencyNotification, ServiceProvider, hidden_character
from tests.hypothesis_profiles import examples

# --- characters and text ---------------------------------------------------------------------------

WHITE_SPACE = "".join(chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace())
"""Every character Python (and so ``re``'s ``\\s``) takes for white space: ASCII, U+0085, NBSP,
U+1680, U+2000-U+200A, U+2028/9, U+202F, U+205F, U+3000 and the ASCII separators U+001C-U+001F."""
TYPED_WHITE_SPACE = "".join(
    char for char in WHITE_SPACE if char in "\t\n\r" or not unicodedata.category(char).startswith("C")
)
"""The white space a notification's identifiers may hold: all but the control characters (U+000B,
U+000C, U+001C-U+001F, U+0085), which the notification refuses in identifiers on purpose."""
NO_BREAK_SPACES = "\u00a0\u202f\u2007"  # no-break, narrow no-break, figure space
IDENTIFIER_CHARACTERS = "".join(chr(code) for code in range(0x21, 0x7F))
"""What identifiers are written with: printable ASCII other than the space."""
HEX_DIGITS = "0123456789ABCDEF"

identifier_text = st.text(alphabet=IDENTIFIER_CHARACTERS + WHITE_SPACE, max_size=40)
any_text = st.text(max_size=40)
hex_strings = st.text(alphabet=HEX_DIGITS, min_size=1, max_size=10)
insertions = st.lists(st.tuples(st.integers(0, 50), st.sampled_from(NO_BREAK_SPACES)), max_size=6)


def non_space(text: str) -> str:
    return "".join(character for character in text if not character.isspace())


def zero_positions(text: str) -> list[int]:
    return [index for index, character in enumerate(text) if character == "0"]


def inserted(text: str, spaces: Sequence[tuple[int, str]]) -> str:
    characters = list(text)
    for position, space in spaces:
        characters.insert(position % (len(characters) + 1), space)
    return "".join(characters)


# --- hidden characters -----------------------------------------------------------------------------


@given(st.one_of(any_text, identifier_text, st.text(st.characters(categories=["Cc", "Cf", "Zs"]))))
def test_the_quick_check_for_hidden_characters_agrees_with_the_character_by_character_one(raw: str) -> None:
    """``hidden_character`` skips its loop for a printable text: it must find what the loop finds."""
    first = next(
        (char for char in raw if char not in "\t\n\r " and unicodedata.category(char).startswith("C")), None
    )
    found = hidden_character(raw)
    if first is None:
        assert found is None
    else:
        assert found is not None and f"U+{ord(first):04X}" in found


# --- normalisation ---------------------------------------------------------------------------------


@given(identifier_text)
def test_normalising_twice_changes_nothing(raw: str) -> None:
    once = normalise_identifier(raw)
    assert normalise_identifier(once) == once


@settings(phases=[Phase.explicit])
@example("\u0390")
@example("a \u0301")
@given(any_text)
def test_normalising_twice_changes_nothing_in_any_text(raw: str) -> None:
    once = normalise_identifier(raw)
    assert normalise_identifier(once) == once


@given(st.one_of(any_text, identifier_text))
def test_no_white_space_of_any_kind_is_left(raw: str) -> None:
    assert not any(character.isspace() for character in normalise_identifier(raw))


@given(st.one_of(any_text, identifier_text))
def test_the_result_is_upper_case(raw: str) -> None:
    normalised = normalise_identifier(raw)
    assert normalised == normalised.upper()


@given(identifier_text)
def test_every_other_character_stays_in_place_upper_cased(raw: str) -> None:
    normalised = normalise_identifier(raw)
    assert normalised == non_space(raw).upper()
    assert zero_positions(normalised) == zero_positions(non_space(raw))


@settings(phases=[Phase.explicit])
@example("\u2070")
@example("1\uff10")
@given(any_text)
def test_the_number_of_zeros_never_changes_in_any_text(raw: str) -> None:
    assert normalise_identifier(raw).count("0") == raw.count("0")


@given(any_text)
def test_no_zero_is_ever_dropped(raw: str) -> None:
    assert normalise_identifier(raw).count("0") >= raw.count("0")


@given(st.text(alphabet=WHITE_SPACE, max_size=3), any_text)
def test_a_leading_zero_is_kept(space: str, rest: str) -> None:
    assert normalise_identifier(space + "0" + rest).startswith("0")


@given(
    st.integers(1, 3),
    st.text(alphabet=HEX_DIGITS + HEX_DIGITS.lower(), max_size=8),
    st.text(alphabet=WHITE_SPACE, max_size=2),
    st.text(alphabet=WHITE_SPACE, max_size=2),
)
def test_leading_zeros_are_significant(zeros: int, digits: str, before: str, after: str) -> None:
    padded = "0" * zeros + digits
    assert normalise_identifier(before + padded + after) == padded.upper()
    assert normalise_identifier(padded) != normalise_identifier(padded.lstrip("0"))


@given(identifier_text, insertions)
def test_no_break_spaces_anywhere_normalise_away(raw: str, spaces: list[tuple[int, str]]) -> None:
    assert normalise_identifier(inserted(raw, spaces)) == normalise_identifier(raw)


@settings(phases=[Phase.explicit])
@example("a\u0301", [(1, "\u00a0")])
@given(any_text, insertions)
def test_no_break_spaces_anywhere_normalise_away_in_any_text(raw: str, spaces: list[tuple[int, str]]) -> None:
    assert normalise_identifier(inserted(raw, spaces)) == normalise_identifier(raw)


# --- pairing and verdicts --------------------------------------------------------------------------

reference_numbers = st.integers(0, 9_999)
secas_references = reference_numbers.map(lambda number: f"ECPL-2026-{number:04d}")
hashes = st.binary(min_size=32, max_size=32).map(lambda digest: digest.hex().upper())
optional_hashes = st.sampled_from(("", None)) | hashes
names = st.sampled_from(("Corrie Controls", "Albion Meters Ltd", "Dunmore Devices"))
device_types = st.sampled_from([member.value for member in DeviceType])
service_providers = st.sampled_from([member.value for member in ServiceProvider])
models = st.tuples(device_types, hex_strings, hex_strings, hex_strings)

COMPARED = ("firmware_version", "hardware_version", "s1sp", "image_hash", "secas_reference")
"""Entry fields compared exactly with the notification, as the brief for a mismatch lists them."""
NOTIFIED_AS = {"firmware_version": "new_firmware_version"}
VARIED_NOTIFICATION_FIELDS = (
    "device_type",
    "manufacturer_id",
    "model_id",
    "hardware_version",
    "current_firmware_version",
    "new_firmware_version",
    "s1sp",
    "secas_reference",
    "image_hash",
)
VARIED_ENTRY_FIELDS = (
    "device_type",
    "manufacturer_id",
    "model_id",
    "hardware_version",
    "firmware_version",
    "image_hash",
)


def entry_id(number: int) -> str:
    return f"S1-{number:06d}"


def publication(*entries: CplEntry) -> CplPublication:
    return CplPublication(source_sha256="0" * 64, entries=entries)


def respelt(entry: CplEntry, **fields: object) -> CplEntry:
    """The entry with some fields changed, validated (so normalised) as the reader's entries are."""
    return CplEntry.model_validate({**entry.model_dump(), **fields})


# Strategies are built once, at import: the draws below pick among them and never build one per example
# (a strategy built per draw is validated per draw, which made these properties several times slower).


def other_hex(draw: st.DrawFn, than: str) -> str:
    drawn = draw(hex_strings)
    return drawn if drawn != than else drawn + "0"


def other_reference(draw: st.DrawFn, than: str) -> str:
    """Another SECAS reference, or none."""
    drawn = draw(secas_references)
    return "" if drawn == than else drawn


@dataclass(frozen=True)
class Scenario:
    notification: EmergencyNotification
    entry: CplEntry
    """The Non-EPCL entry SECAS published for the notification: every compared field agrees."""
    predecessor: CplEntry
    """The entry the notified current firmware is on, listed in ``entry.previous_entry_ids``."""
    strangers: tuple[CplEntry, ...]
    """EPCL entries (of any model, this one too) and emergencies of other models and references."""
    older: tuple[CplEntry, ...]
    """Earlier emergencies of the same model: another SECAS reference and another firmware."""

    @property
    def noise(self) -> tuple[CplEntry, ...]:
        return self.strangers + self.older


NOISE_KINDS = st.sampled_from(("epcl", "other model", "older"))


def noise_entry(draw: st.DrawFn, number: int, notification: EmergencyNotification) -> CplEntry:
    """An entry that must not change how the notification pairs: on the EPCL (any model, this one
    too), an emergency of another model and reference, or an older emergency of the same model."""
    kind = draw(NOISE_KINDS)
    own_model = tuple(notification.device_model)
    model = own_model if kind == "older" or (kind == "epcl" and draw(st.booleans())) else draw(models)
    if kind == "other model" and model == own_model:
        model = (*model[:3], model[3] + "F")  # another hardware version: another model
    new_firmware = notification.new_firmware_version
    if kind == "older":
        firmware = other_hex(draw, new_firmware)
    else:
        firmware = new_firmware if draw(st.booleans()) else draw(hex_strings)
    reference = notification.secas_reference
    own_reference = kind == "epcl" and draw(st.booleans())
    device_type, manufacturer_id, model_id, hardware_version = model
    return CplEntry(
        entry_id=entry_id(number),
        device_type=device_type,
        manufacturer_name=draw(names),
        manufacturer_id=manufacturer_id,
        model_name=draw(names),
        model_id=model_id,
        hardware_version=hardware_version,
        firmware_version=firmware,
        s1sp=draw(service_providers),
        epcl_status=EpclStatus.EPCL if kind == "epcl" else EpclStatus.NON_EPCL,
        cpl_status=draw(statuses),
        image_hash=draw(optional_hashes) or "",
        secas_reference=reference if own_reference else other_reference(draw, reference),
    )


statuses = st.sampled_from(CplStatus)
epcl_statuses = st.sampled_from(EpclStatus)
entry_numbers = st.integers(1, 999_999)
dates_added = st.none() | st.dates(date(2026, 1, 1), date(2026, 12, 31))
ACTIVE = st.just(CplStatus.ACTIVE)
SOME_NOISE = st.integers(0, 6)


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    image_hash_given: bool | None = None,
    cpl_statuses: st.SearchStrategy[CplStatus] = ACTIVE,
    noise: st.SearchStrategy[int] = SOME_NOISE,
) -> Scenario:
    device_type, manufacturer_id, model_id, hardware_version = draw(models)
    current = draw(hex_strings)
    new = other_hex(draw, current)
    s1sp = draw(service_providers)
    reference = draw(secas_references)
    image_hash: str | None = draw(hashes) if image_hash_given else draw(optional_hashes) or None
    if image_hash_given is False:
        image_hash = None
    manufacturer_name, model_name = draw(names), draw(names)
    count = draw(noise)
    numbers = draw(st.lists(entry_numbers, min_size=3 + count, max_size=3 + count, unique=True))
    entry_number, predecessor_number, missing_number = numbers[:3]
    notification = EmergencyNotification.model_validate(
        {
            "response_id": str(draw(st.integers(1, 10_000))),
            "responder": "priya.natarajan@amberline-energy.example",
            "submitted_at": datetime(2026, 11, 19, 10, 2, 11, tzinfo=UTC),
            "supplier": "Amberline Energy",
            "supplier_party_id": "90-B3-D5-1F-30-01-00-01",
            "secas_reference": reference,
            "device_type": device_type,
            "manufacturer_name": manufacturer_name,
            "manufacturer_id": manufacturer_id,
            "model_name": model_name,
            "model_id": model_id,
            "hardware_version": hardware_version,
            "current_firmware_version": current,
            "new_firmware_version": new,
            "s1sp": s1sp,
            "affected_devices": draw(st.integers(0, 100_000)),
            "image_hash": image_hash,
            "declaration": "Yes",
        }
    )
    model = {
        "device_type": device_type,
        "manufacturer_name": manufacturer_name,
        "manufacturer_id": manufacturer_id,
        "model_name": model_name,
        "model_id": model_id,
        "hardware_version": hardware_version,
    }
    predecessor = CplEntry(
        entry_id=entry_id(predecessor_number),
        **model,
        firmware_version=current,
        s1sp=s1sp,
        epcl_status=draw(epcl_statuses),
        cpl_status=draw(statuses),
        secas_reference=other_reference(draw, reference),
    )
    listed = [entry_id(predecessor_number), entry_id(missing_number)][: 1 + draw(st.integers(0, 1))]
    entry = CplEntry(
        entry_id=entry_id(entry_number),
        **model,
        firmware_version=new,
        s1sp=s1sp,
        epcl_status=EpclStatus.NON_EPCL,
        cpl_status=draw(cpl_statuses),
        date_added=draw(dates_added),
        previous_entry_ids=tuple(listed if draw(st.booleans()) else reversed(listed)),
        image_hash=image_hash if image_hash is not None else draw(optional_hashes) or "",
        secas_reference=reference,
    )
    noise_list = [noise_entry(draw, number, notification) for number in numbers[3:]]
    older = tuple(e for e in noise_list if e.is_emergency and e.device_model == notification.device_model)
    strangers = tuple(e for e in noise_list if e not in older)
    return Scenario(notification, entry, predecessor, strangers, older)


def shuffled(data: st.DataObject, entries: Sequence[CplEntry]) -> CplPublication:
    return publication(*data.draw(st.permutations(entries), label="file order"))


def notified(notification: EmergencyNotification, field: str) -> str:
    value = getattr(notification, NOTIFIED_AS.get(field, field))
    return str(value.value if isinstance(value, ServiceProvider) else value)


OTHER_VALUES: Mapping[str, st.SearchStrategy[str]] = {
    "firmware_version": hex_strings,
    "hardware_version": hex_strings,
    "s1sp": service_providers | st.text(min_size=1, max_size=8),
    "image_hash": hashes,
    "secas_reference": st.just("") | secas_references | st.text(min_size=1, max_size=12),
}


def other_value(data: st.DataObject, field: str, entry: CplEntry) -> str:
    """A value of a compared field that differs from the entry's even after normalisation."""
    current = normalise_identifier(getattr(entry, field))
    drawn = data.draw(OTHER_VALUES[field], label=field)
    if normalise_identifier(drawn) != current:
        return drawn
    if field == "image_hash":
        return ("1" if current.startswith("0") else "0") + current[1:]
    return "XOC" if field == "s1sp" else current + "0"


@st.composite
def spelt_differently(draw: st.DrawFn, value: str) -> str:
    """The value with letters lower-cased here and there and white space put in (any a person can type
    or paste: the control characters among white space are refused in a notification's identifiers)."""
    lowered = draw(st.lists(st.booleans(), min_size=len(value), max_size=len(value)))
    characters = [char.lower() if lower else char for char, lower in zip(value, lowered, strict=True)]
    spaces = st.text(alphabet=TYPED_WHITE_SPACE, min_size=1, max_size=2)
    for position, space in draw(st.lists(st.tuples(st.integers(0, 80), spaces), max_size=4)):
        characters.insert(position % (len(characters) + 1), space)
    return "".join(characters)


@given(scenarios(), st.data())
def test_a_notification_with_its_exact_entry_is_ready(scenario: Scenario, data: st.DataObject) -> None:
    published = shuffled(data, [scenario.predecessor, scenario.entry, *scenario.noise])
    result = assess(scenario.notification, published)
    assert result.outcome is Outcome.READY
    assert result.entry == scenario.entry
    assert result.differences == ()


@given(scenarios(noise=st.integers(0, 12)), st.data())
def test_the_emergency_candidates_are_those_a_scan_of_the_file_finds_in_its_order(
    scenario: Scenario, data: st.DataObject
) -> None:
    """The indexes give what reading every entry would (the look-up must not read every entry: the
    emergencies grow with the cases)."""
    published = shuffled(data, [scenario.predecessor, scenario.entry, *scenario.noise])
    reference, model = scenario.notification.secas_reference, scenario.notification.device_model
    scanned = [
        entry
        for entry in published.entries
        if entry.is_emergency
        and ((reference and entry.secas_reference == reference) or entry.device_model == model)
    ]
    assert published.emergency_candidates(reference, model) == scanned
    assert published.emergency_candidates("", model) == [e for e in scanned if e.device_model == model]


@pytest.mark.parametrize("field", COMPARED)
@settings(max_examples=examples(0.5))
@given(data=st.data())
def test_changing_one_compared_field_is_a_mismatch_showing_both_values(
    field: str, data: st.DataObject
) -> None:
    scenario = data.draw(scenarios(image_hash_given=True if field == "image_hash" else None))
    value = other_value(data, field, scenario.entry)
    changed = respelt(scenario.entry, **{field: value})
    # A field of the device model changes along the model's line: a predecessor of another model would
    # not count, and show as a second difference (tests/test_domain_outcomes.py shows that case).
    predecessor = respelt(scenario.predecessor, **{field: value}) if field in DeviceModel._fields else None
    result = assess(
        scenario.notification,
        shuffled(data, [predecessor or scenario.predecessor, changed, *scenario.noise]),
    )
    assert result.outcome is Outcome.MISMATCH
    assert result.entry == changed
    (difference,) = result.differences
    assert difference.field == field
    assert (difference.notified, difference.published) == (
        notified(scenario.notification, field),
        getattr(changed, field),
    )
    assert repr(difference.notified) in difference.describe()
    assert repr(difference.published) in difference.describe()
    assert difference.describe() in result.problems()


@given(scenarios(), st.data())
def test_white_space_and_case_variants_of_the_notification_pair_the_same_way(
    scenario: Scenario, data: st.DataObject
) -> None:
    raw: dict[str, Any] = scenario.notification.model_dump(mode="json")
    for field in VARIED_NOTIFICATION_FIELDS:
        if isinstance(raw[field], str):
            raw[field] = data.draw(spelt_differently(raw[field]), label=field)
    variant = EmergencyNotification.model_validate(raw)
    assert variant == scenario.notification
    published = shuffled(data, [scenario.predecessor, scenario.entry, *scenario.noise])
    assert assess(variant, published) == assess(scenario.notification, published)


@given(scenarios(cpl_statuses=st.sampled_from(CplStatus)), st.data())
def test_white_space_and_case_variants_of_the_entry_identifiers_pair_the_same_way(
    scenario: Scenario, data: st.DataObject
) -> None:
    spelt = {
        field: data.draw(spelt_differently(value), label=field)
        for field in VARIED_ENTRY_FIELDS
        if (value := getattr(scenario.entry, field))
    }
    variant = respelt(scenario.entry, **spelt)
    assert variant == scenario.entry
    others = [scenario.predecessor, *scenario.noise]
    assert assess(scenario.notification, publication(variant, *others)) == assess(
        scenario.notification, publication(scenario.entry, *others)
    )


@pytest.mark.parametrize("field", ["s1sp", "secas_reference"])
@settings(max_examples=3, phases=[Phase.generate])  # every example breaks it: no need to shrink
@given(data=st.data())
def test_case_variants_of_the_entrys_s1sp_and_secas_reference_pair_the_same_way(
    field: str, data: st.DataObject
) -> None:
    scenario = data.draw(scenarios())
    variant = respelt(scenario.entry, **{field: getattr(scenario.entry, field).lower()})
    result = assess(scenario.notification, publication(scenario.predecessor, variant, *scenario.noise))
    assert result.outcome is Outcome.READY


@given(scenarios(cpl_statuses=st.sampled_from(sorted(NEVER_LOADABLE))), st.data())
def test_an_entry_withdrawn_cancelled_or_expired_is_never_ready(
    scenario: Scenario, data: st.DataObject
) -> None:
    field = data.draw(st.none() | st.sampled_from(COMPARED), label="changed field")
    entry = scenario.entry
    if field is not None:
        entry = respelt(entry, **{field: other_value(data, field, entry)})
    crowd = [scenario.predecessor, entry, *scenario.noise]
    result = assess(scenario.notification, shuffled(data, crowd))
    if any(lists_it_on_the_epcl(other, scenario.notification) for other in crowd):
        # The notified combination is on the EPCL (promoted under a new id): the usual route applies.
        assert result.outcome is Outcome.ON_EPCL and result.entry is not None
        assert lists_it_on_the_epcl(result.entry, scenario.notification)
        return
    assert result.outcome is Outcome.NOT_LOADABLE
    assert result.problems()[0] == f"CPL entry {entry.entry_id} is {entry.cpl_status.value}"


@given(scenarios(cpl_statuses=st.sampled_from(CplStatus), noise=st.integers(1, 8)), st.data())
def test_unrelated_entries_never_change_the_outcome(scenario: Scenario, data: st.DataObject) -> None:
    field = data.draw(st.none() | st.sampled_from(COMPARED), label="changed field")
    entry = scenario.entry
    if field is not None:
        entry = respelt(entry, **{field: other_value(data, field, entry)})
    alone = assess(scenario.notification, publication(scenario.predecessor, entry))
    crowd = [scenario.predecessor, entry, *scenario.noise]
    crowded = assess(scenario.notification, shuffled(data, crowd))
    if not entry.is_loadable and any(lists_it_on_the_epcl(other, scenario.notification) for other in crowd):
        # Not unrelated: with no emergency entry to load, the notified combination on the EPCL ends it.
        assert crowded.outcome is Outcome.ON_EPCL
        return
    assert crowded == alone


def lists_it_on_the_epcl(entry: CplEntry, notification: EmergencyNotification) -> bool:
    """An active EPCL entry of the notified combination itself: the usual route, the wait is over."""
    return not entry.is_emergency and entry.is_loadable and entry.dmc == notification.dmc


@given(scenarios(noise=st.integers(0, 8)), st.data())
def test_without_its_entry_a_notification_waits(scenario: Scenario, data: st.DataObject) -> None:
    """Earlier emergencies of the same model (another reference, other firmware) and the predecessor,
    even a Non-EPCL one, share the model only: none of them is this notification's entry."""
    kept = [*scenario.noise, scenario.predecessor]
    kept = [entry for entry in kept if not lists_it_on_the_epcl(entry, scenario.notification)]
    result = assess(scenario.notification, shuffled(data, kept))
    assert result.outcome is Outcome.WAITING
    assert (result.entry, result.verdicts) == (None, ())


@given(scenarios(noise=st.integers(0, 8)), st.data())
def test_without_its_entry_a_notification_whose_combination_is_on_the_epcl_is_done(
    scenario: Scenario, data: st.DataObject
) -> None:
    """Wherever the file lists the EPCL entry, among any noise: the wait is over."""
    on_epcl = respelt(scenario.entry, epcl_status="EPCL", secas_reference="", previous_entry_ids=())
    kept = [*scenario.strangers, *([] if scenario.predecessor.is_emergency else [scenario.predecessor])]
    result = assess(scenario.notification, shuffled(data, [*kept, on_epcl]))
    assert result.outcome is Outcome.ON_EPCL and result.entry is not None
    assert lists_it_on_the_epcl(result.entry, scenario.notification)
    assert result.problems() == []


# --- publication diff ------------------------------------------------------------------------------

ENTRY_VALUES: Mapping[str, st.SearchStrategy[Any]] = {
    # Few values per field, so that two draws often agree and a change touches one field or two.
    "device_type": st.sampled_from(("ESME", "GSME", "PPMID")),
    "manufacturer_name": names,
    "manufacturer_id": st.sampled_from(("10F4", "3A11")),
    "model_name": st.sampled_from(("Corrie GSME 2", "Albion ESME 1")),
    "model_id": st.sampled_from(("F4010002", "0102", "102")),
    "hardware_version": st.sampled_from(("0003", "0100")),
    "firmware_version": st.sampled_from(("01020001", "01020011", "0102", "102")),
    "smets_version": st.sampled_from(("", "SMETS1")),
    "s1sp": service_providers,
    "epcl_status": st.sampled_from(EpclStatus),
    "cpl_status": st.sampled_from(CplStatus),
    "date_added": st.none() | st.dates(date(2019, 1, 1), date(2027, 12, 31)),
    "previous_entry_ids": st.lists(st.integers(1, 40).map(entry_id), max_size=2).map(tuple),
    "image_hash": st.sampled_from(("", "AB" * 32, "CD" * 32)),
    "secas_reference": st.sampled_from(("", "ECPL-2026-0031", "ECPL-2026-0032")),
}


entry_fields = st.fixed_dictionaries(ENTRY_VALUES)
changed_fields = st.lists(st.sampled_from(sorted(ENTRY_VALUES)), min_size=1, max_size=4, unique=True)
id_numbers = st.lists(st.integers(1, 40), unique=True, max_size=12)
fates = st.sampled_from(("kept", "changed", "replaced", "removed", "added"))


def cpl_entry(draw: st.DrawFn, identifier: str) -> CplEntry:
    return CplEntry.model_validate({"entry_id": identifier, **draw(entry_fields)})


@st.composite
def publications(draw: st.DrawFn) -> CplPublication:
    return publication(*(cpl_entry(draw, entry_id(number)) for number in draw(id_numbers)))


@st.composite
def publication_pairs(draw: st.DrawFn) -> tuple[CplPublication, CplPublication]:
    """Two publications of one list: entries kept, changed in a few fields, replaced, removed, added."""
    old: list[CplEntry] = []
    new: list[CplEntry] = []
    for number in draw(id_numbers):
        identifier = entry_id(number)
        fate = draw(fates)
        before = cpl_entry(draw, identifier)
        if fate != "added":
            old.append(before)
        if fate == "kept":
            new.append(CplEntry.model_validate(before.model_dump()))  # equal, not the same object
        elif fate == "changed":
            new.append(
                respelt(before, **{field: draw(ENTRY_VALUES[field]) for field in draw(changed_fields)})
            )
        elif fate in ("replaced", "added"):
            new.append(cpl_entry(draw, identifier))
    return publication(*draw(st.permutations(old))), publication(*draw(st.permutations(new)))


def ids(entries: Sequence[CplEntry] | CplPublication) -> set[str]:
    return {entry.entry_id for entry in (entries.entries if isinstance(entries, CplPublication) else entries)}


def common_ids(old: CplPublication, new: CplPublication) -> set[str]:
    return ids(old) & ids(new)


def test_the_diff_strategies_give_every_entry_field_a_value() -> None:
    assert set(ENTRY_VALUES) == set(CplEntry.model_fields) - {"entry_id"}


@given(publications(), st.data())
def test_a_publication_has_no_difference_with_itself(old: CplPublication, data: st.DataObject) -> None:
    assert diff_publications(old, old).is_empty
    copy = shuffled(data, [CplEntry.model_validate(entry.model_dump()) for entry in old.entries])
    assert diff_publications(old, copy) == PublicationDiff()


@given(publication_pairs())
def test_added_and_removed_are_the_ids_one_side_only_has(pair: tuple[CplPublication, CplPublication]) -> None:
    old, new = pair
    diff = diff_publications(old, new)
    assert len(ids(diff.added)) == len(diff.added) and ids(diff.added) == ids(new) - ids(old)
    assert len(ids(diff.removed)) == len(diff.removed) and ids(diff.removed) == ids(old) - ids(new)
    assert all(entry == new.by_id()[entry.entry_id] for entry in diff.added)
    assert all(entry == old.by_id()[entry.entry_id] for entry in diff.removed)


@given(publication_pairs())
def test_changed_are_the_common_entries_that_differ_with_every_field_that_differs(
    pair: tuple[CplPublication, CplPublication],
) -> None:
    old, new = pair
    diff = diff_publications(old, new)
    changed_ids = [change.entry_id for change in diff.changed]
    assert len(set(changed_ids)) == len(changed_ids)
    assert set(changed_ids) == {i for i in common_ids(old, new) if old.by_id()[i] != new.by_id()[i]}
    for change in diff.changed:
        before, after = old.by_id()[change.entry_id], new.by_id()[change.entry_id]
        assert (change.before, change.after) == (before, after)
        expected = {
            field: (getattr(before, field), getattr(after, field))
            for field in CplEntry.model_fields
            if getattr(before, field) != getattr(after, field)
        }
        assert expected
        assert {c.field: (c.old, c.new) for c in change.fields} == expected
        assert len(change.fields) == len(expected)


@given(publication_pairs())
def test_promoted_and_withdrawn_are_the_changes_they_name(
    pair: tuple[CplPublication, CplPublication],
) -> None:
    old, new = pair
    diff = diff_publications(old, new)
    changed = {change.entry_id for change in diff.changed}
    promoted = {change.entry_id for change in diff.promoted}
    withdrawn = {change.entry_id for change in diff.withdrawn}
    assert promoted <= changed and withdrawn <= changed
    for change in diff.promoted:
        assert (change.before.epcl_status, change.after.epcl_status) == (EpclStatus.NON_EPCL, EpclStatus.EPCL)
    for change in diff.withdrawn:
        assert change.before.is_loadable and not change.after.is_loadable
        assert change.after.cpl_status in NEVER_LOADABLE
    before, after = old.by_id(), new.by_id()
    common = common_ids(old, new)
    assert promoted == {
        i
        for i in common
        if before[i].epcl_status is EpclStatus.NON_EPCL and after[i].epcl_status is EpclStatus.EPCL
    }
    assert withdrawn == {i for i in common if before[i].is_loadable and not after[i].is_loadable}


@given(publication_pairs())
def test_applying_the_diff_to_the_old_publication_gives_the_new_one(
    pair: tuple[CplPublication, CplPublication],
) -> None:
    old, new = pair
    diff = diff_publications(old, new)
    result = dict(old.by_id())
    for entry in diff.removed:
        del result[entry.entry_id]
    for entry in diff.added:
        assert entry.entry_id not in result
        result[entry.entry_id] = entry
    for change in diff.changed:
        result[change.entry_id] = result[change.entry_id].model_copy(
            update={field_change.field: field_change.new for field_change in change.fields}
        )
    assert result == dict(new.by_id())


@given(publications())
def test_with_no_previous_publication_everything_is_added(new: CplPublication) -> None:
    diff = diff_publications(None, new)
    assert diff.added == new.entries
    assert (diff.removed, diff.changed) == ((), ())

"""Form intake: both delivery shapes map through the form definition to the same canonical notification,
and everything wrong with a response is named at once."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from adapters.forms import (
    FormDefinition,
    IntakeRejection,
    ReferenceFileError,
    UnrecognisedPayload,
    load_form_definition,
    notification_from_any,
    notification_from_list_item,
    notification_from_response,
)
from flows.domain.notification import EmergencyNotification
from flows.errors import BadInput
from tests.support.form_samples import FORM, LIST_ITEMS, QUESTION_ID, RESPONSES, SAMPLES


def response(number: int) -> dict[str, Any]:
    """A deep copy of the first sample response with this id, safe to change."""
    return copy.deepcopy(next(r for r in RESPONSES if r["responseId"] == number))


def list_item(number: int) -> dict[str, Any]:
    return copy.deepcopy(next(i for i in LIST_ITEMS if i["fields"]["ResponseId"] == number))


def answer(payload: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    payload["answers"][QUESTION_ID[field]] = value
    return payload


def rejection(payload: dict[str, Any]) -> IntakeRejection:
    with pytest.raises(IntakeRejection) as caught:
        notification_from_any(payload, FORM)
    return caught.value


def reasons(error: IntakeRejection) -> dict[str, str]:
    return {problem.field: problem.reason for problem in error.problems}


# --- both shapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [1, 2, 3, 4, 6, 7, 8])
def test_both_shapes_give_the_same_notification_field_by_field(number: int) -> None:
    from_forms = notification_from_response(response(number), FORM)
    from_list = notification_from_list_item(list_item(number), FORM)

    assert from_forms.response_id == str(number)
    for field in EmergencyNotification.model_fields:
        assert getattr(from_list, field) == getattr(from_forms, field), field
    assert from_list == from_forms


def test_both_shapes_reject_response_5_alike() -> None:
    from_forms = rejection(response(5))
    from_list = rejection(list_item(5))

    assert from_list.problems == from_forms.problems
    assert str(from_list) == str(from_forms)


def test_the_duplicate_delivery_maps_to_the_same_notification() -> None:
    first, again = (notification_from_response(r, FORM) for r in RESPONSES if r["responseId"] == 2)
    assert first == again


def test_every_list_item_in_the_delta_is_recognised() -> None:
    for item in LIST_ITEMS:
        if item["fields"]["ResponseId"] != 5:
            assert notification_from_any(item, FORM).response_id == str(item["fields"]["ResponseId"])


def test_sample_values_arrive_typed() -> None:
    notification = notification_from_response(response(1), FORM)
    assert notification.affected_devices == 13295  # given as the text "13295"
    assert notification.declaration is True
    assert notification.planned_start is not None
    assert notification.planned_start.isoformat() == "2026-11-30"
    assert notification.submitted_at.isoformat() == "2026-11-19T10:02:11+00:00"


# --- normalisation -------------------------------------------------------------------------------


def test_response_3_hex_identifiers_are_trimmed_and_upper_cased() -> None:
    notification = notification_from_response(response(3), FORM)
    assert notification.manufacturer_id == "3A11"  # given as " 3a11"
    assert notification.model_id == "11030001"  # given as "11030001 "


def test_lower_case_hex_with_non_breaking_spaces_normalises() -> None:
    changed = response(1)
    answer(changed, "manufacturer_id", "\u00a010f4\u00a0")
    answer(changed, "model_id", "f401\u202f0002")
    answer(changed, "new_firmware_version", "0102\u00a00011")
    answer(changed, "image_hash", "4ea21ed9 19d2e75c\u00a052d1d84b0192e08314fab5627e8412bc64aa7674c2311e13")

    assert notification_from_response(changed, FORM) == notification_from_response(response(1), FORM)


def test_leading_zeros_are_kept() -> None:
    with_zero = notification_from_response(answer(response(1), "hardware_version", "0102"), FORM)
    without = notification_from_response(answer(response(1), "hardware_version", "102"), FORM)

    assert with_zero.hardware_version == "0102"
    assert without.hardware_version == "102"
    assert with_zero.dmc != without.dmc


# --- rejections ----------------------------------------------------------------------------------


def test_response_5_names_every_invalid_field_at_once() -> None:
    error = rejection(response(5))

    assert isinstance(error, BadInput)
    assert (error.response_id, error.supplier, error.responder) == (
        "5",
        "Cobalt Supply Co",
        "sam.reid@cobalt-supply.example",
    )
    found = reasons(error)
    assert list(found) == ["device_type", "manufacturer_id", "new_firmware_version", "declaration"]
    assert "unknown DeviceType: 'Toaster'" in found["device_type"]
    assert found["manufacturer_id"] == "is not hexadecimal: 'XYZ!'"
    assert found["new_firmware_version"] == "is empty"
    assert "not confirmed" in found["declaration"]
    message = str(error)
    assert message.startswith("response 5: 4 invalid fields\n")
    assert "- Device type (device_type): unknown DeviceType: 'Toaster' (expected one of " in message
    assert "- Manufacturer Identifier (hex) (manufacturer_id): is not hexadecimal: 'XYZ!'" in message
    assert "Value error" not in message


def test_a_missing_answer_is_named() -> None:
    changed = response(2)
    del changed["answers"][QUESTION_ID["model_id"]]
    error = rejection(changed)
    assert reasons(error) == {"model_id": "missing"}
    assert str(error) == "response 2: 1 invalid field\n- Model Identifier (hex) (model_id): missing"


@pytest.mark.parametrize(
    ("given", "day"),
    [
        ("2026-06-29T23:00:00Z", date(2026, 6, 30)),  # midnight, British Summer Time
        ("2026-11-30T00:00:00Z", date(2026, 11, 30)),  # midnight, GMT
        ("2026-03-29T00:00:00Z", date(2026, 3, 29)),  # the day the clocks go forward
        ("2026-10-24T23:00:00Z", date(2026, 10, 25)),  # the day they go back
        ("2026-11-30", date(2026, 11, 30)),
    ],
)
def test_a_sharepoint_date_column_gives_the_day_of_the_site(given: str, day: date) -> None:
    """Graph gives a date column as the UTC instant of the site's midnight: summer dates were refused."""
    item = list_item(1)
    item["fields"]["PlannedStart"] = given
    assert notification_from_list_item(item, FORM).planned_start == day


@pytest.mark.parametrize("given", ["2026-06-29T10:00:00Z", "2026-06-29T23:00:00+02:00"])
def test_an_instant_that_is_not_a_midnight_in_the_uk_is_not_a_day(given: str) -> None:
    item = list_item(1)
    item["fields"]["PlannedStart"] = given
    assert "planned_start" in {problem.field for problem in rejection(item).problems}


def test_a_list_item_without_its_response_id_is_named_by_column() -> None:
    item = list_item(2)
    del item["fields"]["ResponseId"]
    error = rejection(item)
    assert error.response_id is None
    assert [(p.field, p.question, p.reason) for p in error.problems] == [
        ("response_id", "ResponseId", "missing")
    ]
    assert str(error).startswith("response (no id): 1 invalid field\n- ResponseId (response_id): missing")


def test_a_bad_image_hash_length_is_refused() -> None:
    error = rejection(answer(response(1), "image_hash", "4EA21ED919D2E75C"))
    assert reasons(error) == {"image_hash": "is not a SHA-256 hash (64 hex digits): 16 digits"}


def test_unanswered_optional_questions_take_their_defaults() -> None:
    changed = response(1)
    for field in ("planned_start", "image_hash", "contact_phone"):
        answer(changed, field, "")
    del changed["answers"][QUESTION_ID["model_name"]]
    notification = notification_from_response(changed, FORM)
    assert (notification.planned_start, notification.image_hash) == (None, None)
    assert (notification.contact_phone, notification.model_name) == ("", "")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("supplier", ["Bramble Power"], "should be text, not a list"),
        ("affected_devices", "13,295", "is not a whole number: '13,295'"),
        ("affected_devices", "-1", "must be at least 0: '-1'"),
        ("affected_devices", "50000001", "must be at most 50,000,000: '50000001'"),
        ("affected_devices", "  ", "is empty"),
        ("planned_start", "30/11/2026", "is not a date (like 2026-11-30): '30/11/2026'"),
        ("s1sp", 7, "should be one of 'FOC', 'IOC' or 'MOC', not 7"),
        ("declaration", "Maybe", "declaration answer not understood: 'Maybe'"),
    ],
)
def test_wrong_answers_are_explained_in_plain_words(field: str, value: Any, reason: str) -> None:
    assert reasons(rejection(answer(response(1), field, value))) == {field: reason}


def test_a_count_of_thousands_of_digits_is_refused_in_a_short_reason() -> None:
    [reason] = reasons(rejection(answer(response(1), "affected_devices", 10**4000))).values()
    assert reason.startswith("must be at most 50,000,000: 1000") and len(reason) < 400


def test_a_bad_submit_date_is_named() -> None:
    changed = response(1)
    changed["submitDate"] = "yesterday"
    error = rejection(changed)
    assert [(p.question, p.reason) for p in error.problems] == [
        ("submitDate", "is not a date and time (like 2026-11-19T10:02:11Z): 'yesterday'")
    ]


def test_non_string_answers_of_the_right_kind_are_accepted() -> None:
    item = list_item(1)
    item["fields"]["AffectedDevices"] = 13295.0  # a SharePoint number column
    item["fields"]["Declaration"] = True  # a SharePoint yes/no column
    assert notification_from_list_item(item, FORM) == notification_from_response(response(1), FORM)


def test_unknown_answer_keys_are_ignored() -> None:
    changed = response(1)
    changed["answers"]["r0000000000000000000000000000000"] = "something new"
    changed["extra"] = {"anything": 1}
    assert notification_from_response(changed, FORM) == notification_from_response(response(1), FORM)


# --- what is not a response at all ---------------------------------------------------------------


def test_a_response_to_another_form_is_refused() -> None:
    changed = response(1)
    changed["formId"] = "some-other-form"
    with pytest.raises(UnrecognisedPayload, match="'some-other-form', not 'v4j5cvGGr0GRqy180BHbR1x8"):
        notification_from_any(changed, FORM)


def test_a_response_without_form_id_is_accepted() -> None:
    changed = response(1)
    del changed["formId"]
    assert notification_from_response(changed, FORM).response_id == "1"


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"responseId": 1, "value": []}, "neither a Forms response .* found 'responseId', 'value'"),
        ({"answers": {}, "fields": {}}, "neither"),
        ([RESPONSES[0]], "must be a JSON object, not a list"),
        (None, "must be a JSON object, not nothing"),
        ("{}", "must be a JSON object, not a str"),
        ({"answers": ["Bramble Power"]}, "'answers' must be a JSON object, not a list"),
        ({"id": "109", "@removed": {"state": "deleted"}}, "neither"),
    ],
)
def test_a_payload_of_neither_shape_is_refused(payload: Any, match: str) -> None:
    with pytest.raises(UnrecognisedPayload, match=match) as caught:
        notification_from_any(payload, FORM)
    assert isinstance(caught.value, BadInput)


def test_a_removed_list_item_says_so() -> None:
    with pytest.raises(UnrecognisedPayload, match="'109' was removed"):
        notification_from_list_item({"id": "109", "@removed": {"state": "deleted"}}, FORM)


# --- the form definition -------------------------------------------------------------------------


def definition(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "form.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2), encoding="utf-8")
    return path


def sample_definition() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / "form-definition.json").read_text(encoding="utf-8"))
    return data


def test_columns_default_to_pascal_case_of_the_field() -> None:
    columns = {q.field: q.column for q in FORM.questions}
    assert columns["s1sp"] == "S1sp"
    assert columns["manufacturer_id"] == "ManufacturerId"
    assert FORM.form_id == "v4j5cvGGr0GRqy180BHbR1x8Qm0sT8hFm2eNCPL-EMERGENCY"


def test_an_explicit_column_is_used_for_list_items(tmp_path: Path) -> None:
    data = sample_definition()
    next(q for q in data["questions"] if q["field"] == "device_type")["column"] = "Device_x0020_Type"
    form = load_form_definition(definition(tmp_path, data))
    item = list_item(1)
    item["fields"]["Device_x0020_Type"] = item["fields"].pop("DeviceType")
    assert notification_from_list_item(item, form) == notification_from_list_item(list_item(1), FORM)
    assert isinstance(form, FormDefinition)


def test_a_missing_definition_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ReferenceFileError, match=r"nowhere\.json: cannot be used\n- cannot be read"):
        load_form_definition(tmp_path / "nowhere.json")


def test_invalid_json_is_placed_by_line(tmp_path: Path) -> None:
    path = definition(tmp_path, '{\n  "formId": "x",\n  "questions": [,]\n}')
    with pytest.raises(ReferenceFileError, match="line 3, column 17") as caught:
        load_form_definition(path)
    assert caught.value.path == path


def test_a_wrongly_shaped_definition_is_placed_by_json_path(tmp_path: Path) -> None:
    data = sample_definition()
    data["questions"][3]["field"] = "colour"
    del data["questions"][5]["title"]
    with pytest.raises(ReferenceFileError) as caught:
        load_form_definition(definition(tmp_path, data))
    message = str(caught.value)
    assert "$.questions[3].field: 'colour' is not a field of the notification" in message
    assert "$.questions[5].title: Field required" in message
    assert isinstance(caught.value, BadInput)


def test_duplicates_and_uncovered_fields_are_refused(tmp_path: Path) -> None:
    data = sample_definition()
    data["questions"][6]["id"] = data["questions"][0]["id"]
    data["questions"] = [q for q in data["questions"] if q["field"] != "model_id"]
    with pytest.raises(ReferenceFileError) as caught:
        load_form_definition(definition(tmp_path, data))
    assert f"id {data['questions'][0]['id']!r} is used by more than one question" in str(caught.value)
    assert "no question for required field(s): model_id" in str(caught.value)

"""Hostile and broken HTTP input to the two POST triggers, called directly as the host would
(the approach and helpers of ``test_function_app``). Every refusal has a status and a reason naming
what is wrong, and queues nothing.

Not repeated here: a call without the function key never reaches our code (the host refuses it);
``test_function_app.test_every_trigger_is_registered_with_its_binding`` asserts that both POST routes
are bound with ``authLevel`` FUNCTION. A forged ``clientState`` is refused there too
(``test_forged_or_malformed_notifications_are_refused_and_nothing_is_queued``); that the comparison
takes constant time cannot be tested meaningfully, so it is not.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

from adapters.functions import runtime
from adapters.functions.wire import MAX_BODY_BYTES, MAX_DEPTH, MAX_QUEUED_BYTES
from flows.queue_message import Message
from flows.settings import SAMPLES
from tests.test_function_app import CLIENT_STATE, Captured, notification, post, user_function

GRAPH = "/api/graph/notifications"
FORMS = "/api/forms/responses"
ROUTES = {GRAPH: "graph_notifications", FORMS: "form_responses"}
RESPONSE_1: dict[str, Any] = json.loads((SAMPLES / "forms" / "responses.json").read_text())[0]


@pytest.fixture(autouse=True)
def app_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("BRIDGE_GRAPH_CLIENT_STATE", CLIENT_STATE)
    runtime.reset()
    yield
    runtime.reset()


def valid_body(url: str) -> bytes:
    payload = {"value": [notification(CLIENT_STATE)]} if url == GRAPH else RESPONSE_1
    return json.dumps(payload).encode()


def call(url: str, request: func.HttpRequest) -> tuple[func.HttpResponse, Captured]:
    out = Captured()
    response: func.HttpResponse = user_function(ROUTES[url])(request, work=out)
    return response, out


def refused(url: str, request: func.HttpRequest, status: int, reason: str) -> None:
    """The request is refused with this status, a reason that says ``reason``, and nothing queued."""
    response, out = call(url, request)
    text = response.get_body().decode()
    assert (response.status_code, reason in text) == (status, True), text
    assert response.mimetype == "text/plain"
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert len(text) < 300  # names what is wrong; never echoes the body
    assert out.value is None


def accepted(url: str, request: func.HttpRequest) -> Message:
    response, out = call(url, request)
    assert response.status_code == 202, response.get_body()
    return out.message()


def padded(body: bytes, size: int) -> bytes:
    """``body`` (a JSON object) grown to exactly ``size`` bytes with white space before its last brace."""
    assert body.endswith(b"}")
    return body[:-1] + b" " * (size - len(body)) + b"}"


# --- size ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [GRAPH, FORMS])
def test_a_body_exactly_at_the_limit_is_accepted(url: str) -> None:
    body = padded(valid_body(url), MAX_BODY_BYTES)
    assert len(body) == MAX_BODY_BYTES
    message = accepted(url, post(url, body))
    if url == FORMS:
        assert message.body["payload"] == RESPONSE_1


@pytest.mark.parametrize("url", [GRAPH, FORMS])
def test_one_byte_over_the_limit_is_refused_with_413(url: str) -> None:
    body = padded(valid_body(url), MAX_BODY_BYTES + 1)
    refused(
        url, post(url, body), 413, f"body of {MAX_BODY_BYTES + 1} bytes is over the limit of {MAX_BODY_BYTES}"
    )


@pytest.mark.parametrize("url", [GRAPH, FORMS])
def test_a_huge_declared_content_length_is_refused_whatever_arrived(url: str) -> None:
    request = func.HttpRequest(
        "POST",
        url,
        headers={"Content-Type": "application/json", "Content-Length": "9" * 30},
        body=valid_body(url),
    )
    refused(url, request, 413, f"Content-Length of {'9' * 30} bytes is over the limit")


@pytest.mark.parametrize("length", ["-1", "12abc", "1e3", "", "\u0661\u0662"])  # Arabic-Indic digits too
def test_a_content_length_that_is_not_a_number_is_refused(length: str) -> None:
    request = func.HttpRequest(
        "POST",
        FORMS,
        headers={"Content-Type": "application/json", "Content-Length": length},
        body=valid_body(FORMS),
    )
    refused(FORMS, request, 400, "Content-Length is not a number of bytes")


def test_a_true_content_length_is_accepted() -> None:
    body = valid_body(FORMS)
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    assert (
        accepted(FORMS, func.HttpRequest("POST", FORMS, headers=headers, body=body)).type == "form_response"
    )


def test_a_response_too_large_for_the_queue_is_refused_before_anything_is_queued() -> None:
    """Under the body limit, but a Storage queue message holds 64 KiB (48 KiB before base64): the host
    would fail the call after our function returned 202, and the response would be lost."""
    payload = json.loads(json.dumps(RESPONSE_1))
    payload["answers"]["rf788aab54dfc2dd451e5d46c1471010b"] = "x" * 60_000
    refused(
        FORMS, post(FORMS, json.dumps(payload).encode()), 413, f"over the queue's limit of {MAX_QUEUED_BYTES}"
    )


def test_a_long_answer_that_fits_the_queue_is_queued_for_intake_to_refuse() -> None:
    """Intake refuses it with a reason the supplier reads ("is too long: ... the limit is 200"), and the
    case records it: refusing it here would only tell Power Automate."""
    payload = json.loads(json.dumps(RESPONSE_1))
    payload["answers"]["rf788aab54dfc2dd451e5d46c1471010b"] = "x" * 30_000
    message = accepted(FORMS, post(FORMS, json.dumps(payload).encode()))
    assert len(message.model_dump_json()) < MAX_QUEUED_BYTES


# --- content type and encoding -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("text/plain", None, "expected Content-Type application/json, got text/plain"),
        (
            "application/x-www-form-urlencoded",
            b"responseId=1&answers=x",
            "got application/x-www-form-urlencoded",
        ),
        ("multipart/form-data; boundary=x", None, "got multipart/form-data"),
        ("application/vnd.api+json", None, "got application/vnd.api+json"),
        (
            "application/json; charset=utf-16",
            "utf-16",
            "charset 'utf-16' is not accepted: JSON must be UTF-8",
        ),
        ("application/json; charset=latin-1", None, "charset 'latin-1' is not accepted"),
        ("application/json; charset=no-such-charset", None, "charset 'no-such-charset' is not accepted"),
    ],
)
@pytest.mark.parametrize("url", [GRAPH, FORMS])
def test_a_content_type_other_than_utf8_json_is_refused_with_415(
    url: str, content_type: str, body: bytes | str | None, reason: str
) -> None:
    data = valid_body(url).decode().encode(body) if isinstance(body, str) else body or valid_body(url)
    refused(url, post(url, data, content_type=content_type), 415, reason)


@pytest.mark.parametrize("url", [GRAPH, FORMS])
def test_a_missing_content_type_is_refused_with_415(url: str) -> None:
    request = func.HttpRequest("POST", url, headers={}, body=valid_body(url))
    refused(url, request, 415, "expected Content-Type application/json, got none")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        'application/json;charset="UTF8"',
    ],
)
def test_utf8_json_is_accepted_however_its_type_is_spelled(content_type: str) -> None:
    assert accepted(FORMS, post(FORMS, valid_body(FORMS), content_type=content_type)).type == "form_response"


def test_a_utf16_body_labelled_plain_json_is_refused_as_not_utf8() -> None:
    """Python's json.loads(bytes) would guess UTF-16 and read it; the bridge reads UTF-8 only."""
    refused(FORMS, post(FORMS, valid_body(FORMS).decode().encode("utf-16")), 400, "body is not UTF-8 text")


def test_a_utf8_byte_order_mark_is_ignored() -> None:
    message = accepted(FORMS, post(FORMS, codecs.BOM_UTF8 + valid_body(FORMS)))
    assert message.body["payload"] == RESPONSE_1


@pytest.mark.parametrize(
    ("body", "offset"),
    [
        (b'{"responseId": "1", "x": "\xff"}', 26),
        (b'{"responseId": "1", "x": "\xc0\xaf"}', 26),  # an overlong "/"
        (b'{"responseId": "1", "x": "\xed\xa0\x80"}', 26),  # a surrogate, encoded
        (b'{"responseId": "1", "x": "\xe2\x82"}', 26),  # cut short
    ],
)
def test_invalid_utf8_is_refused_naming_the_offset(body: bytes, offset: int) -> None:
    refused(FORMS, post(FORMS, body), 400, f"body is not UTF-8 text: invalid byte at offset {offset}")


def test_a_lone_surrogate_escape_is_refused() -> None:
    """It parses, but cannot be written as UTF-8: the queue message would fail after a 202."""
    payload = valid_body(FORMS).replace(b'"Priya Natarajan"', b'"Priya \\ud800"')
    refused(FORMS, post(FORMS, payload), 400, "a string holds a lone surrogate")


@pytest.mark.parametrize("url", [GRAPH, FORMS])
@pytest.mark.parametrize("body", [b"", b"   \r\n "])
def test_an_empty_body_is_refused(url: str, body: bytes) -> None:
    refused(url, post(url, body), 400, "body is empty")


# --- JSON that parses, but not as sent -----------------------------------------------------------


def test_a_duplicate_key_is_refused_naming_it() -> None:
    """Parsers disagree on which duplicate wins: the checked clientState might not be the one used."""
    first = json.dumps(notification(CLIENT_STATE))
    forged = first[:-1] + ', "clientState": "forged"}'
    refused(
        GRAPH, post(GRAPH, b'{"value": [' + forged.encode() + b"]}"), 400, "key 'clientState' appears twice"
    )


def test_a_duplicate_top_level_key_is_refused_on_the_forms_route() -> None:
    body = b'{"responseId": "1", "answers": {}, "responseId": "2"}'
    refused(FORMS, post(FORMS, body), 400, "key 'responseId' appears twice in one object")


@pytest.mark.parametrize("url", [GRAPH, FORMS])
def test_a_hundred_thousand_nested_arrays_are_a_clean_400(url: str) -> None:
    body = b'{"value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert len(body) < MAX_BODY_BYTES
    refused(url, post(url, body), 400, f"nested more than {MAX_DEPTH} deep")


def test_nesting_up_to_the_limit_is_queued_and_the_worker_can_read_it() -> None:
    def nested(levels: int) -> str:
        return "[" * levels + "]" * levels

    at_limit = json.dumps(RESPONSE_1)[:-1] + f', "extra": {nested(MAX_DEPTH - 1)}}}'
    message = accepted(FORMS, post(FORMS, at_limit.encode()))
    assert Message.model_validate_json(message.model_dump_json()) == message  # the queue's reader

    over = json.dumps(RESPONSE_1)[:-1] + f', "extra": {nested(MAX_DEPTH)}}}'
    refused(FORMS, post(FORMS, over.encode()), 400, f"nested more than {MAX_DEPTH} deep")


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        ("NaN", "NaN is not a JSON number"),
        ("Infinity", "Infinity is not a JSON number"),
        ("-Infinity", "-Infinity is not a JSON number"),
        ("1e400", "number 1e400 is out of range"),
        ("-1.5e999", "number -1.5e999 is out of range"),
        ("1" * 5000, "an integer of 5000 digits is longer than 100"),
    ],
)
@pytest.mark.parametrize("url", [GRAPH, FORMS])
def test_non_finite_and_oversized_numbers_are_refused(url: str, literal: str, reason: str) -> None:
    body = valid_body(url)[:-1] + b', "n": ' + literal.encode() + b"}"
    refused(url, post(url, body), 400, reason)


def test_ordinary_numbers_are_accepted() -> None:
    body = valid_body(FORMS)[:-1] + b', "n": [-1.5e10, 0, 123456789012345678901234567890]}'
    assert accepted(FORMS, post(FORMS, body)).body["payload"]["n"][2] == 123456789012345678901234567890


# --- batches -------------------------------------------------------------------------------------


def test_a_batch_of_a_thousand_notifications_queues_one_delta_pass() -> None:
    short = {"clientState": CLIENT_STATE, "changeType": "updated", "resource": "sites/s/lists/l"}
    body = json.dumps({"value": [short] * 1000}).encode()
    assert len(body) < MAX_BODY_BYTES
    message = accepted(GRAPH, post(GRAPH, body))
    assert message.type == "list_changed"
    assert message.body == {"resources": ["sites/s/lists/l"]}


def test_a_thousand_distinct_resources_are_counted_not_all_queued() -> None:
    batch = [{"clientState": CLIENT_STATE, "resource": f"sites/s/lists/{n:04}"} for n in range(1000)]
    message = accepted(GRAPH, post(GRAPH, json.dumps({"value": batch}).encode()))
    assert message.body["resources"] == [f"sites/s/lists/{n:04}" for n in range(20)]
    assert message.body["resources_not_named"] == 980


def test_one_forged_notification_in_a_large_batch_refuses_the_batch() -> None:
    batch = [notification(CLIENT_STATE)] * 500 + [notification("forged")] + [notification(CLIENT_STATE)] * 10
    refused(GRAPH, post(GRAPH, json.dumps({"value": batch}).encode()), 403, "notification 500: clientState")


def test_the_validation_echo_may_not_be_sniffed_as_html() -> None:
    request = func.HttpRequest(
        "POST", GRAPH, params={"validationToken": "<script>alert(1)</script>"}, body=b""
    )
    response, out = call(GRAPH, request)
    assert response.mimetype == "text/plain"
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert out.value is None

"""Every Azure function invoked directly, as the host would (no Functions host runs here: Core Tools
cannot be installed offline). Output bindings are captured by a real ``func.Out``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

import function_app
from adapters.functions import runtime
from flows.queue_message import Message
from flows.settings import PROJECT_ROOT, SAMPLES

CLIENT_STATE = "s3cret-client-state-value"


class Captured(func.Out[str]):
    """The output binding: what the function would have put on the work queue."""

    def __init__(self) -> None:
        self.value: str | None = None

    def set(self, val: str) -> None:
        self.value = val

    def get(self) -> str:
        assert self.value is not None
        return self.value

    def message(self) -> Message:
        return Message.model_validate_json(self.get())


FUNCTIONS = {f.get_function_name(): f for f in function_app.app.get_functions()}


def user_function(name: str) -> Callable[..., Any]:
    function: Callable[..., Any] = FUNCTIONS[name].get_user_function()
    return function


def post(
    url: str, body: bytes, *, content_type: str = "application/json", params: dict[str, str] | None = None
) -> func.HttpRequest:
    return func.HttpRequest(
        "POST", url, headers={"Content-Type": content_type}, params=params or {}, body=body
    )


@pytest.fixture(autouse=True)
def app_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("BRIDGE_GRAPH_CLIENT_STATE", CLIENT_STATE)
    monkeypatch.setenv("BRIDGE_HOME", str(tmp_path / "home"))
    runtime.reset()
    yield tmp_path / "home"
    runtime.reset()


def notification(client_state: str) -> dict[str, Any]:
    return {
        "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
        "clientState": client_state,
        "changeType": "updated",
        "resource": "sites/contoso.sharepoint.com,1,2/lists/3",
        "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
    }


def test_every_trigger_is_registered_with_its_binding() -> None:
    assert set(FUNCTIONS) == {
        "graph_notifications", "form_responses", "secas_sync", "case_lifecycle", "graph_upkeep",
        "run_work", "poison_alert", "health", "console",
    }  # fmt: skip
    for name in ("graph_notifications", "form_responses"):
        (trigger,) = [b for b in FUNCTIONS[name].get_bindings() if b.type == "httpTrigger"]
        # No function key, no call: the host refuses it before our code runs.
        assert trigger.get_dict_repr()["authLevel"] is func.AuthLevel.FUNCTION
    (console,) = [b for b in FUNCTIONS["console"].get_bindings() if b.type == "httpTrigger"]
    # The console signs operators in itself (a function key in every link would leak into history).
    assert console.get_dict_repr()["authLevel"] is func.AuthLevel.ANONYMOUS


def test_the_console_is_served_by_the_function_app(
    app_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRIDGE_CONSOLE_KEY", "function-app-console-key")
    console = user_function("console")

    def get(path: str, params: dict[str, str], headers: dict[str, str]) -> func.HttpResponse:
        request = func.HttpRequest(
            "GET",
            f"/api/console/{path}",
            headers=headers,
            params=params,
            route_params={"path": path},
            body=b"",
        )
        response: func.HttpResponse = console(request)
        return response

    assert get("cases", {}, {}).status_code == 401
    signed_in = get("cases", {"code": "function-app-console-key"}, {})
    assert signed_in.status_code == 303
    assert signed_in.headers["Location"] == "/api/console/cases"
    cookie = signed_in.headers["Set-Cookie"].split(";")[0]
    assert "Path=/api/console/" in signed_in.headers["Set-Cookie"]
    page = get("cases", {}, {"Cookie": cookie})
    assert page.status_code == 200 and b"<h1>Cases</h1>" in page.get_body()
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


@pytest.mark.parametrize("token", ["Validation: Token received 2026-11-25", "abc+/=%20<&>\u00e9"])
def test_the_validation_token_is_echoed_byte_for_byte_as_plain_text(token: str) -> None:
    request = func.HttpRequest(
        "POST", "/api/graph/notifications", params={"validationToken": token}, body=b""
    )
    out = Captured()
    response = user_function("graph_notifications")(request, work=out)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_body() == token.encode()
    assert out.value is None


def test_genuine_notifications_queue_one_delta_pass() -> None:
    body = json.dumps({"value": [notification(CLIENT_STATE), notification(CLIENT_STATE)]}).encode()
    out = Captured()
    response = user_function("graph_notifications")(post("/api/graph/notifications", body), work=out)
    assert response.status_code == 202
    message = out.message()
    assert message.type == "list_changed"
    assert message.body == {"resources": ["sites/contoso.sharepoint.com,1,2/lists/3"]}


def test_the_client_state_setting_is_read_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings read ``bridge_graph_client_state`` as the client state; so must the webhook."""
    monkeypatch.delenv("BRIDGE_GRAPH_CLIENT_STATE", raising=False)
    monkeypatch.setenv("bridge_graph_client_state", CLIENT_STATE)
    body = json.dumps({"value": [notification(CLIENT_STATE)]}).encode()
    out = Captured()
    response = user_function("graph_notifications")(post("/api/graph/notifications", body), work=out)
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ({"value": [notification(CLIENT_STATE), notification("forged")]}, "application/json", 403),
        ({"value": [{"changeType": "updated"}]}, "application/json", 403),  # no clientState at all
        ({"value": []}, "application/json", 400),
        ({"value": [notification(CLIENT_STATE)]}, "text/plain", 415),
    ],
)
def test_forged_or_malformed_notifications_are_refused_and_nothing_is_queued(
    body: dict[str, Any], content_type: str, status: int
) -> None:
    out = Captured()
    request = post("/api/graph/notifications", json.dumps(body).encode(), content_type=content_type)
    response = user_function("graph_notifications")(request, work=out)
    assert response.status_code == status
    assert out.value is None


def test_oversized_and_invalid_bodies_are_refused() -> None:
    out = Captured()
    huge = post("/api/graph/notifications", b"{" + b" " * 300_000 + b"}")
    assert user_function("graph_notifications")(huge, work=out).status_code == 413
    broken = post("/api/forms/responses", b'{"responseId": 1,')
    response = user_function("form_responses")(broken, work=out)
    assert response.status_code == 400
    assert b"not valid JSON" in response.get_body()
    assert out.value is None


def test_a_pushed_form_response_is_queued_under_its_id() -> None:
    response_2 = json.loads((SAMPLES / "forms" / "responses.json").read_text())[1]
    out = Captured()
    response = user_function("form_responses")(
        post("/api/forms/responses", json.dumps(response_2).encode()), work=out
    )
    assert response.status_code == 202
    assert json.loads(response.get_body()) == {"accepted": True, "response_id": "2"}
    message = out.message()
    assert message.type == "form_response"
    assert message.body["payload"] == response_2


@pytest.mark.parametrize("body", [b"[1, 2]", b'{"answers": {}}', b'{"responseId": "../../x"}'])
def test_a_pushed_response_without_a_usable_id_is_refused(body: bytes) -> None:
    out = Captured()
    assert user_function("form_responses")(post("/api/forms/responses", body), work=out).status_code == 400
    assert out.value is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("secas_sync", ("recurrence", "secas-sync")),
        ("case_lifecycle", ("recurrence", "case-lifecycle")),
        ("graph_upkeep", ("list_changed", None)),
    ],
)
def test_timers_queue_their_work(name: str, expected: tuple[str, str | None]) -> None:
    out = Captured()
    user_function(name)(TimerRequest(past_due=False), work=out)
    message = out.message()
    assert (message.type, message.flow) == expected


def test_the_worker_runs_what_a_message_triggers(app_settings: Path) -> None:
    response_1 = json.loads((SAMPLES / "forms" / "responses.json").read_text())[0]
    message = Message(type="form_response", body={"response_id": "1", "payload": response_1})
    user_function("run_work")(func.QueueMessage(id="m1", body=message.model_dump_json().encode()))
    case = runtime.current_app().cases.get("1")
    assert case is not None
    assert case.state.value == "awaiting_cpl"  # intake ran, then the emergency-load flow it triggered


def test_a_poison_message_reaches_the_operators(app_settings: Path) -> None:
    message = Message(type="recurrence", flow="secas-sync")
    user_function("poison_alert")(func.QueueMessage(id="p1", body=message.model_dump_json().encode()))
    (card_file,) = (app_settings / "outbox" / "teams").glob("*.json")
    card = json.loads(card_file.read_text())
    assert message.message_id in json.dumps(card)
    assert "secas-sync" in json.dumps(card)


def test_a_poison_alert_retried_posts_once_and_a_second_poisoning_posts_again(app_settings: Path) -> None:
    """The host retries a failed trigger with the same poison message: one card. The same work message
    poisoned again later (put back by an operator, given up on again) is a new poison message."""
    body = Message(type="recurrence", flow="secas-sync").model_dump_json().encode()
    user_function("poison_alert")(func.QueueMessage(id="p1", body=body))
    user_function("poison_alert")(func.QueueMessage(id="p1", body=body))  # the trigger, retried
    assert len(list((app_settings / "outbox" / "teams").glob("*.json"))) == 1
    user_function("poison_alert")(func.QueueMessage(id="p2", body=body))  # poisoned a second time
    assert len(list((app_settings / "outbox" / "teams").glob("*.json"))) == 2


def test_importing_function_app_imports_no_msgraph_and_no_engine() -> None:
    code = (
        "import sys, function_app; "
        "heavy = sorted(m for m in sys.modules"
        " if m.startswith(('msgraph', 'kiota', 'flows.engine', 'jinja2', 'azure.data', 'azure.storage')));"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True
    )
    assert result.stdout.strip() == ""


def test_the_light_wire_format_is_the_message_the_worker_reads() -> None:
    from flows.queue_wire import message_json

    message = Message.model_validate_json(
        message_json("event", {"entry_id": "S1-000318"}, event="cpl.entry_added")
    )
    assert (message.type, message.event, message.flow, message.body) == (
        "event",
        "cpl.entry_added",
        None,
        {"entry_id": "S1-000318"},
    )
    assert len(message.message_id) == 32


def test_a_list_change_pulls_the_delta_into_intake(app_settings: Path) -> None:
    """The Graph delta reader itself is tested against a Graph-shaped server (test_graph_adapters);
    here its place is taken by the sample delta page, to show what the worker does with the items."""
    items = json.loads((SAMPLES / "forms" / "list-items-delta.json").read_text())["value"]
    renewed: list[bool] = []
    app = runtime.current_app()
    app.parts.list_changes = lambda: iter(items)
    app.parts.renew_subscription = lambda: renewed.append(True)
    message = Message(type="list_changed", body={"renew_subscription": True})
    user_function("run_work")(func.QueueMessage(id="m2", body=message.model_dump_json().encode()))
    assert renewed == [True]
    states = {case.response_id: case.state.value for case in app.cases.list()}
    assert states == {"1": "awaiting_cpl", "2": "awaiting_cpl", "3": "awaiting_cpl", "4": "awaiting_cpl",
                      "5": "rejected", "6": "awaiting_cpl", "7": "rejected", "8": "awaiting_cpl"}  # fmt: skip

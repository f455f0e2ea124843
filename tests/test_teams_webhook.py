"""``WorkflowsWebhookChannel`` against a real loopback server standing in for a Teams Workflows webhook:
the exact message posted, retries honouring Retry-After, refusals, the size limit, and the URL kept
secret (a Workflows URL carries its own signature, so it must not reach messages or logs)."""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, cast

import httpx
import pytest
from pydantic import SecretStr

from adapters.http_retry import HttpRetry
from adapters.teams_webhook import WorkflowsWebhookChannel
from flows.errors import BadInput, PermanentError, TransientError
from flows.ports import OperatorCard
from tests.support.loopback import Loopback

WORKFLOW_ID = "5f1c0ffee0ddba11"
WORKFLOW_PATH = f"/powerautomate/automations/direct/workflows/{WORKFLOW_ID}/triggers/manual/paths/invoke"
SIGNATURE = "Zm9yLXRlc3RzLW9ubHktbm90LWEtcmVhbC1zaWc"
QUERY = f"api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIGNATURE}"
CARD = {
    "type": "AdaptiveCard",
    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
    "version": "1.5",
    "body": [{"type": "TextBlock", "text": "R-0001 loaded \u2014 S1-000123", "wrap": True}],
}


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    drop: bool = False


@dataclass
class RecordingWebhook:
    """Records each request; answers from ``answers`` in turn, then 202 with a run id."""

    answers: deque[Answer] = field(default_factory=deque)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    def __enter__(self) -> RecordingWebhook:
        self._loopback = Loopback(_Handler, webhook=self).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._loopback.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._loopback.port}{WORKFLOW_PATH}?{QUERY}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        webhook: RecordingWebhook = cast(Any, self.server).webhook
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        webhook.requests.append(("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        answer = (
            webhook.answers.popleft() if webhook.answers else Answer(202, {"x-ms-workflow-run-id": "run-1"})
        )
        if answer.drop:
            self.close_connection = True
            return
        self.send_response_only(answer.status)  # no Date header unless the answer has one
        for name, value in (answer.headers | {"Content-Length": str(len(answer.body.encode()))}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[RecordingWebhook]:
    with RecordingWebhook() as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def channel(webhook: RecordingWebhook, sleeps: list[float]) -> Iterator[WorkflowsWebhookChannel]:
    with httpx.Client(timeout=5.0) as client:
        yield WorkflowsWebhookChannel(SecretStr(webhook.url), client, sleep=sleeps.append)


def a_card(key: str = "teams/loaded/R-0001", card: dict[str, Any] | None = None) -> OperatorCard:
    return OperatorCard(card=card or CARD, idempotency_key=key)


def assert_secret_kept(text: str) -> None:
    """Neither the signature nor the workflow id, nor any six characters of them, nor the path."""
    for secret in (SIGNATURE, WORKFLOW_ID):
        pieces = [secret[start : start + 6] for start in range(len(secret) - 5)]
        assert not [piece for piece in pieces if piece.casefold() in text.casefold()], text
    assert "/triggers/" not in text


def test_posts_the_card_in_the_workflows_message_envelope(
    channel: WorkflowsWebhookChannel, webhook: RecordingWebhook
) -> None:
    assert channel.post(a_card()) == "run-1"

    [(method, path, headers, body)] = webhook.requests
    assert (method, path) == ("POST", f"{WORKFLOW_PATH}?{QUERY}")
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": CARD}
        ],
    }
    assert "R-0001 loaded \u2014 S1-000123".encode() in body  # UTF-8 as it is, not \u escapes


def test_without_a_run_id_the_post_is_named_by_its_key(
    channel: WorkflowsWebhookChannel, webhook: RecordingWebhook
) -> None:
    webhook.answers.append(Answer(200))

    assert channel.post(a_card("teams/mismatch/R-0002")) == "teams/mismatch/R-0002"


def test_throttling_is_waited_out_as_retry_after_says(
    channel: WorkflowsWebhookChannel, webhook: RecordingWebhook, sleeps: list[float]
) -> None:
    webhook.answers.extend(
        [
            Answer(429, {"Retry-After": "5"}),
            Answer(
                429, {"Retry-After": "Wed, 25 Nov 2026 10:00:02 GMT", "Date": "Wed, 25 Nov 2026 10:00:00 GMT"}
            ),
        ]
    )

    assert channel.post(a_card()) == "run-1"

    assert sleeps == [5.0, 2.0]
    assert len(webhook.requests) == 3
    assert len({body for *_, body in webhook.requests}) == 1  # the same message each time


def test_a_retry_after_in_asctime_form_is_waited_out(
    channel: WorkflowsWebhookChannel, webhook: RecordingWebhook, sleeps: list[float]
) -> None:
    """RFC 9110 says a recipient must accept asctime dates; they have no zone, and HTTP dates are UTC."""
    webhook.answers.extend(
        [
            Answer(429, {"Retry-After": "Wed Nov 25 10:00:02 2026", "Date": "Wed Nov 25 10:00:00 2026"}),
            Answer(503, {"Retry-After": "Wed, 25 Nov 2026 10:00:03 GMT", "Date": "Wed Nov 25 10:00:00 2026"}),
        ]
    )

    assert channel.post(a_card()) == "run-1"

    assert sleeps == [2.0, 3.0]


def test_a_server_error_then_accepted_posts_one_card(
    channel: WorkflowsWebhookChannel, webhook: RecordingWebhook, sleeps: list[float]
) -> None:
    webhook.answers.append(Answer(500, body="InternalServerError"))

    assert channel.post(a_card()) == "run-1"

    assert sleeps == [0.5]
    assert len(webhook.requests) == 2  # one refused, one accepted: the channel shows one card


def test_a_dropped_connection_is_retried(
    channel: WorkflowsWebhookChannel, webhook: RecordingWebhook, sleeps: list[float]
) -> None:
    webhook.answers.append(Answer(0, drop=True))

    assert channel.post(a_card()) == "run-1"
    assert sleeps == [0.5]


def test_a_bad_request_is_permanent_and_keeps_the_url_secret(
    channel: WorkflowsWebhookChannel, webhook: RecordingWebhook, sleeps: list[float]
) -> None:
    echo = (
        f'{{"error":{{"code":"TriggerInputSchemaMismatch","message":"see {webhook.url}, sig {SIGNATURE}"}}}}'
    )
    webhook.answers.append(Answer(400, {"Content-Type": "application/json"}, echo))

    with pytest.raises(PermanentError) as raised:
        channel.post(a_card())

    message = str(raised.value)
    assert "HTTP 400" in message and "TriggerInputSchemaMismatch" in message and "127.0.0.1" in message
    assert_secret_kept(message)
    assert_secret_kept(repr(channel))
    assert sleeps == [] and len(webhook.requests) == 1


def test_giving_up_says_so_without_the_url(webhook: RecordingWebhook, sleeps: list[float]) -> None:
    webhook.answers.extend([Answer(503, body=f"busy: {WORKFLOW_PATH}?{QUERY}")] * 2)
    with httpx.Client(timeout=5.0) as client:
        channel = WorkflowsWebhookChannel(
            SecretStr(webhook.url), client, retry=HttpRetry(attempts=2), sleep=sleeps.append
        )
        with pytest.raises(TransientError) as raised:
            channel.post(a_card())

    assert "HTTP 503" in str(raised.value)
    assert_secret_kept(str(raised.value))
    assert len(webhook.requests) == 2


@pytest.mark.parametrize("status", [400, 503])
@pytest.mark.parametrize("at", [180, 190, 195, 199])
def test_a_signature_echoed_where_the_excerpt_is_cut_is_not_shown_in_part(
    webhook: RecordingWebhook, status: int, at: int
) -> None:
    """The body is cleaned whole, then cut: cutting first left the start of a signature near the cut."""
    echo = "." * (at - len("sig=")) + f"sig={SIGNATURE}&sv=1.0 and more of the answer"
    webhook.answers.append(Answer(status, body=echo))
    with httpx.Client(timeout=5.0) as client:
        channel = WorkflowsWebhookChannel(SecretStr(webhook.url), client, retry=HttpRetry(attempts=1))
        with pytest.raises((PermanentError, TransientError)) as raised:
            channel.post(a_card())

    assert f"HTTP {status}" in str(raised.value)
    assert_secret_kept(str(raised.value))


@pytest.mark.parametrize(
    "echo",
    [
        f"Could not find a enabled trigger for workflow '{WORKFLOW_ID}'.",
        f"workflow {WORKFLOW_ID.upper()} is disabled",  # quoted in another case
        '{"path":"' + WORKFLOW_PATH.replace("/", "\\/") + '"}',  # JSON with its slashes escaped
        f"no such flow {WORKFLOW_PATH}",
    ],
)
def test_the_workflow_id_echoed_alone_is_not_shown(webhook: RecordingWebhook, echo: str) -> None:
    webhook.answers.append(Answer(404, {"Content-Type": "application/json"}, echo))
    with httpx.Client(timeout=5.0) as client:
        channel = WorkflowsWebhookChannel(SecretStr(webhook.url), client)
        with pytest.raises(PermanentError) as raised:
            channel.post(a_card())

    assert "HTTP 404" in str(raised.value) and "[redacted]" in str(raised.value)
    assert_secret_kept(str(raised.value))
    assert "\\/triggers\\/" not in str(raised.value)


def test_a_card_over_the_size_limit_is_refused_unsent(
    channel: WorkflowsWebhookChannel, webhook: RecordingWebhook
) -> None:
    big = {**CARD, "body": [{"type": "TextBlock", "text": "x" * 28_000}]}

    with pytest.raises(BadInput, match=r"over Teams' limit of 28000 bytes"):
        channel.post(a_card(card=big))
    assert webhook.requests == []


def test_the_limit_counts_the_bytes_sent(webhook: RecordingWebhook) -> None:
    card = {**CARD, "body": [{"type": "TextBlock", "text": "\u00a3" * 100}]}  # two bytes each in UTF-8
    size = len(
        json.dumps(
            {
                "type": "message",
                "attachments": [
                    {
                        "contentType": "application/vnd.microsoft.card.adaptive",
                        "contentUrl": None,
                        "content": card,
                    }
                ],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
    )
    with httpx.Client(timeout=5.0) as client:
        WorkflowsWebhookChannel(SecretStr(webhook.url), client, max_bytes=size).post(a_card(card=card))
        with pytest.raises(BadInput):
            WorkflowsWebhookChannel(SecretStr(webhook.url), client, max_bytes=size - 1).post(
                a_card(card=card)
            )
    assert [len(body) for *_, body in webhook.requests] == [size]


def test_httpx_request_log_shows_the_host_only(
    channel: WorkflowsWebhookChannel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="httpx"):
        channel.post(a_card())

    assert 'HTTP Request: POST http://127.0.0.1/[redacted] "HTTP/1.0 202 Accepted"' in caplog.text
    assert_secret_kept(caplog.text)


def test_a_url_that_is_not_absolute_http_is_refused() -> None:
    with httpx.Client() as client, pytest.raises(BadInput, match="absolute http"):
        WorkflowsWebhookChannel(SecretStr("/workflows/abc?sig=x"), client)


def test_a_card_that_is_not_json_is_bad_input(channel: WorkflowsWebhookChannel) -> None:
    with pytest.raises(BadInput, match="not valid JSON"):
        channel.post(a_card(card={"type": "AdaptiveCard", "version": float("nan")}))

"""``WorkflowsWebhookChannel``: the Azure ``OperatorChannel``, posting Adaptive Cards to a Teams channel
through a Teams Workflows webhook ("when a Teams webhook request is received" -> "post card in a chat or
channel"). Graph cannot post channel messages app-only, so this is the way in.

The webhook URL carries its own credential (the ``sig`` query parameter, and the path names the flow), so
it is a secret: it is kept in a ``SecretStr``, and messages, logs and ``repr`` show only its host.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import httpx
from pydantic import SecretStr

from adapters.http_retry import HttpRetry, attempt, call_with_retry, excerpt
from flows.errors import BadInput, PermanentError
from flows.ports import OperatorCard

ADAPTIVE_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_MESSAGE_BYTES = 28_000
"""Teams refuses a message over about 28 KB; the whole JSON body sent is measured, envelope included."""
RUN_ID_HEADER = "x-ms-workflow-run-id"
"""Power Automate names the flow run a webhook request started in this response header."""
ACCEPTED = frozenset({200, 202})


def workflows_envelope(card: dict[str, Any]) -> dict[str, Any]:
    """The message a Teams Workflows webhook takes: one Adaptive Card attachment."""
    attachment = {"contentType": ADAPTIVE_CARD_CONTENT_TYPE, "contentUrl": None, "content": card}
    return {"type": "message", "attachments": [attachment]}


class WorkflowsWebhookChannel:
    """Posts each ``OperatorCard`` to a Teams Workflows webhook; returns the flow run's id.

    **No idempotency at the far side.** A Workflows webhook takes no idempotency key and keeps no memory
    of requests: the same card posted twice shows twice. A post is made at most once per key only because
    the flow engine keeps each side effect's result in its idempotency store and does not call ``post``
    again for a key it has a result for. Retrying here after a lost response (a timeout or a dropped
    connection once the request was sent) can therefore show a card twice: that is the price of not
    losing one, and why ``retry`` defaults to few attempts.

    Success is 200 or 202. 408, 429, 5xx and transport failures are retried (honouring Retry-After),
    then raised as ``TransientError``; any other answer is a ``PermanentError`` naming the status and the
    start of the body (only ``http_retry.BODY_LIMIT`` bytes of any answer are read). A card whose message
    is over ``max_bytes`` is refused with ``BadInput`` unsent.
    """

    def __init__(
        self,
        url: SecretStr,
        client: httpx.Client,
        *,
        retry: HttpRetry | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        max_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        target = httpx.URL(url.get_secret_value())
        if target.scheme not in ("http", "https") or not target.host:
            raise BadInput("the Teams Workflows webhook URL must be an absolute http(s) URL")
        self._url = url
        self._client = client
        self._retry = retry or HttpRetry()
        self._sleep = sleep
        self._max_bytes = max_bytes
        self._host = target.host
        self._shown = f"{target.scheme}://{target.host}/[redacted]"
        self._whole_url = _any_case(url.get_secret_value(), str(target))
        self._secret_parts = _any_case(*_secret_parts(target))
        _redact_in_httpx_log(str(target), self._shown)

    def __repr__(self) -> str:
        return f"WorkflowsWebhookChannel({self._shown})"

    def post(self, card: OperatorCard) -> str:
        try:
            body = json.dumps(
                workflows_envelope(card.card), ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")
        except ValueError as error:
            raise BadInput(f"card {card.idempotency_key}: not valid JSON: {error}") from error
        if len(body) > self._max_bytes:
            raise BadInput(
                f"card {card.idempotency_key} makes a {len(body)}-byte message, over Teams' limit of"
                f" {self._max_bytes} bytes: shorten it"
            )
        what = f"Teams webhook at {self._host}, card {card.idempotency_key}"

        def send() -> httpx.Response:
            request = self._client.build_request(
                "POST",
                self._url.get_secret_value(),
                content=body,
                headers={"Content-Type": "application/json"},
            )
            # Streamed: no answer's body is needed whole, so at most http_retry's limit of it is read.
            return self._client.send(request, stream=True)

        response = call_with_retry(
            lambda: attempt(send, what, scrub=self._scrub), self._retry, sleep=self._sleep
        )
        if response.status_code not in ACCEPTED:
            message = f"{what}: HTTP {response.status_code}{excerpt(response, scrub=self._scrub)}"
            raise PermanentError(self._scrub(message))
        return response.headers.get(RUN_ID_HEADER) or card.idempotency_key

    def _scrub(self, text: str) -> str:
        """``text`` with the URL, its path, query, workflow id and signature replaced, in any case, as
        written or with JSON's escaped slashes (should the far side echo them). Call it on a whole text,
        never on one cut short: a secret across the cut would keep its start."""
        text = self._whole_url.sub(lambda _: self._shown, text)
        return self._secret_parts.sub("[redacted]", text)


def _secret_parts(target: httpx.URL) -> list[str]:
    """What of a Workflows webhook URL is secret besides the host: its path and query, together and
    apart, the signature and the workflow id (the path segment after ``workflows``), as sent and decoded."""
    path_and_query = target.raw_path.decode("ascii")  # httpx's raw path includes the query
    raw_path, _, raw_query = path_and_query.partition("?")
    raw_signatures = [
        value for name, _, value in (p.partition("=") for p in raw_query.split("&")) if name == "sig"
    ]
    segments = target.path.split("/")
    workflow_ids = [after for before, after in pairwise(segments) if before == "workflows"]
    parts = [
        path_and_query,
        raw_path,
        target.path,
        raw_query,
        *raw_signatures,
        *target.params.get_list("sig"),
    ]
    return [part for part in (*parts, *workflow_ids) if part.strip("/")]


def _any_case(*texts: str) -> re.Pattern[str]:
    """A pattern finding any of ``texts`` in any case, as written or with ``/`` escaped as JSON may,
    longest first (a whole path before the workflow id in it)."""
    forms = {form for text in texts if text for form in (text, text.replace("/", "\\/"))}
    alternatives = sorted(forms, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, alternatives)) or "(?!)", re.IGNORECASE)  # (?!): nothing


class _RedactUrls(logging.Filter):
    """Rewrites httpx's "HTTP Request: POST <url> ..." log line so that a secret URL shows as its host."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(str(arg) in self.shown for arg in record.args):
            record.args = tuple(self.shown.get(str(arg), arg) for arg in record.args)
        return True


_REDACTOR = _RedactUrls()


def _redact_in_httpx_log(url: str, shown: str) -> None:
    """Hide ``url`` in httpx's log: it logs each request's full URL at INFO, which Azure Functions ships
    to Application Insights."""
    _REDACTOR.shown[url] = shown
    logging.getLogger("httpx").addFilter(_REDACTOR)

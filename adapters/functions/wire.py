"""Small checks the HTTP triggers share: body size, content type and JSON."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

MAX_BODY_BYTES = 256 * 1024  # a form response or a batch of Graph notifications is a few KiB


class Refused(Exception):
    """A request refused before anything was queued; carries the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> func.HttpResponse:
        return func.HttpResponse(self.reason, status_code=self.status, mimetype="text/plain")


def json_body(req: func.HttpRequest) -> Any:
    """The request's JSON body, or ``Refused`` naming what is wrong with it."""
    content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise Refused(415, f"expected Content-Type application/json, got {content_type or 'none'}")
    body = req.get_body()
    if len(body) > MAX_BODY_BYTES:
        raise Refused(413, f"body of {len(body)} bytes is over the limit of {MAX_BODY_BYTES}")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Refused(400, f"body is not valid JSON: {error}") from error

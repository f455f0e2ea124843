"""Small checks the HTTP triggers share: body size, content type, JSON, and what fits on the queue.

Only what every caller we serve sends is accepted, and everything else is refused with a status and a
reason before anything is queued:

- ``Content-Type: application/json``, UTF-8 only (RFC 8259 §8.1; Graph and Power Automate send UTF-8):
  another charset is a 415, a body that is not UTF-8 a 400. A UTF-8 byte order mark is ignored.
- at most ``MAX_BODY_BYTES``: a larger body, or a larger declared ``Content-Length``, is a 413.
- JSON the worker reads back exactly: no duplicate keys (parsers disagree on which one wins), no
  ``NaN`` / ``Infinity`` and no number that overflows to one (not JSON, and the queue's reader refuses
  them), no integer over ``MAX_INTEGER_DIGITS`` digits, no lone surrogate (it cannot be written as
  UTF-8), nesting at most ``MAX_DEPTH`` deep (the queue's reader stops at 200; Python's parser at
  about 1,000, with a ``RecursionError``).
- a queue message of at most ``MAX_QUEUED_BYTES`` (413): a larger one cannot be written, and the host
  would fail the call after the function returned.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from typing import Any

import azure.functions as func

MAX_BODY_BYTES = 256 * 1024  # a form response or a batch of Graph notifications is a few KiB
MAX_QUEUED_BYTES = 48 * 1024  # a Storage queue message holds 64 KiB, and the host writes it in base64
MAX_DEPTH = 32  # a form response is 3 deep, a Graph notification 4
MAX_INTEGER_DIGITS = 100
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Refused(Exception):
    """A request refused before anything was queued; carries the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> func.HttpResponse:
        return func.HttpResponse(
            self.reason,
            status_code=self.status,
            mimetype="text/plain",
            headers={"X-Content-Type-Options": "nosniff"},
        )


def json_body(req: func.HttpRequest) -> Any:
    """The request's JSON body, or ``Refused`` naming what is wrong with it (see the module's docstring)."""
    _check_content_type(req.headers.get("content-type"))
    _check_declared_length(req.headers.get("content-length"))
    body = req.get_body()
    if len(body) > MAX_BODY_BYTES:
        raise Refused(413, f"body of {len(body)} bytes is over the limit of {MAX_BODY_BYTES}")
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise Refused(400, f"body is not UTF-8 text: invalid byte at offset {error.start}") from error
    if not text.strip():
        raise Refused(400, "body is empty: expected a JSON document")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_no_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except RecursionError as error:
        raise Refused(400, f"body is not usable JSON: nested more than {MAX_DEPTH} deep") from error
    except _NotUsable as error:
        raise Refused(400, f"body is not usable JSON: {error}") from error
    except json.JSONDecodeError as error:
        raise Refused(400, f"body is not valid JSON: {error}") from error
    _check_shape(value)
    return value


def queued(message: str) -> str:
    """``message`` if it fits on the work queue, else ``Refused`` (413) saying how large it is."""
    size = len(message.encode("utf-8"))
    if size > MAX_QUEUED_BYTES:
        raise Refused(413, f"too large to queue: {size} bytes, over the queue's limit of {MAX_QUEUED_BYTES}")
    return message


class _NotUsable(ValueError):
    """Valid JSON syntax, but not JSON the bridge can queue and read back as it was sent."""


def _check_content_type(header: str | None) -> None:
    media_type, *parameters = (header or "").split(";")
    media_type = media_type.strip().lower()
    if media_type != "application/json":
        raise Refused(415, f"expected Content-Type application/json, got {media_type[:100] or 'none'}")
    for parameter in parameters:
        name, _, given = parameter.partition("=")
        if name.strip().lower() != "charset":
            continue
        charset = given.strip().strip('"').lower()
        try:
            utf8 = codecs.lookup(charset).name == "utf-8"
        except LookupError:
            utf8 = False
        if not utf8:
            raise Refused(415, f"charset {charset[:40]!r} is not accepted: JSON must be UTF-8 (RFC 8259)")


def _check_declared_length(header: str | None) -> None:
    if header is None:
        return
    if not header.strip().isdigit() or not header.strip().isascii():
        raise Refused(400, f"Content-Length is not a number of bytes: {header[:40]!r}")
    declared = int(header)
    if declared > MAX_BODY_BYTES:
        raise Refused(413, f"Content-Length of {declared} bytes is over the limit of {MAX_BODY_BYTES}")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _NotUsable(f"key {key[:60]!r} appears twice in one object")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise _NotUsable(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NotUsable(f"number {text[:40]} is out of range")
    return number


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise _NotUsable(f"an integer of {digits} digits is longer than {MAX_INTEGER_DIGITS}")
    return int(text)


def _check_shape(value: Any) -> None:
    """Nesting depth and lone surrogates, walked without recursion."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                raise Refused(400, "body is not usable JSON: a string holds a lone surrogate, not text")
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise Refused(400, f"body is not usable JSON: nested more than {MAX_DEPTH} deep")
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children)

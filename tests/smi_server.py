"""A loopback SMI for tests: the contract of ``adapters/smi/openapi.yaml`` over an in-memory dict.

A real HTTP server (stdlib ``ThreadingHTTPServer``, 127.0.0.1, a free port) so that ``HttpInventory``
is tested through httpx, sockets and all. It checks the bearer token, keeps each Idempotency-Key's
request and response (same key and request: the kept response, marked replayed; same key, another
request: 422), records every request it gets, and can be told to fail the next ones: a status with
Retry-After (seconds or an HTTP date), a connection dropped before or after the work is done, or an
answer rewritten after the work (off the contract, to see the client refuse it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from adapters.smi import IDEMPOTENCY_HEADER, REPLAYED_HEADER
from tests.support.loopback import Loopback

BASE_PATH = "/smi/v1"
IDENTIFIER = re.compile(r"^(?!\.{1,2}$)[^/\s]+$")
FIELDS = {"cplEntryId", "s1sp", "responseId", "status"}
KEYS = ("deviceType", "manufacturerId", "modelId", "hardwareVersion", "firmwareVersion")
FAULT_PROBLEMS = {409: "idempotency-key-in-progress", 429: "rate-limited"}
Reply = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class Seen:
    """A request as the server got it, and the status it answered (0: connection dropped)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int
    answer: dict[str, Any] = field(default_factory=dict)
    answer_type: str = ""


@dataclass
class Fault:
    status: int | None  # None: drop the connection
    retry_after: int | None = None
    as_date: bool = False
    after_processing: bool = False
    rewrite: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # do the work, answer this instead


@dataclass
class SmiServer:
    """Use as a context manager; ``url`` is the base URL to give ``HttpInventory``."""

    tokens: set[str] = field(default_factory=lambda: {"token-1"})
    records: dict[tuple[str, ...], dict[str, str]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    keys: dict[str, tuple[tuple[str, str, str], Reply]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, retry_after: int | None = None, *, as_date: bool = False) -> None:
        """Answer the next request with ``status`` (and Retry-After), doing nothing else."""
        self.faults.append(Fault(status, retry_after, as_date))

    def misanswer_next(self, rewrite: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Do the next request's work as usual but answer ``rewrite(answer)``: a far side off its contract."""
        self.faults.append(Fault(None, after_processing=True, rewrite=rewrite))

    def drop_next(self, *, after_processing: bool = False) -> None:
        """Close the next request's connection without an answer, before or after doing its work."""
        self.faults.append(Fault(None, after_processing=after_processing))

    def __enter__(self) -> SmiServer:
        self._loopback = Loopback(_Handler, smi=self).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._loopback.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._loopback.port}{BASE_PATH}"

    # --- the contract -----------------------------------------------------------------------------

    def respond(self, request: Seen, fault: Fault | None) -> tuple[Reply, bool]:
        """The reply to a request (after a scripted fault, if any), and whether it is a kept one."""
        if fault is not None and fault.status is not None:
            kind = FAULT_PROBLEMS.get(fault.status, "unavailable")
            return _problem(fault.status, kind, "Scripted fault"), False
        if fault is not None and not fault.after_processing:
            return (0, {}), False
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            return _problem(401, "unauthorized", "A valid bearer token is required"), False
        if not request.path.startswith(BASE_PATH + "/"):
            return _problem(404, "not-found", "No such resource"), False
        parts = [unquote(part) for part in request.path[len(BASE_PATH) + 1 :].split("/")]
        method, query, body = request.method, request.query, request.body
        if method == "GET":
            return self.handle(method, parts, query, body), False
        key = request.headers.get(IDEMPOTENCY_HEADER.lower())
        if not key:
            return _problem(400, "idempotency-key-missing", "Writes need an Idempotency-Key"), False
        if len(key) > 255:  # the contract's maxLength
            return _problem(400, "invalid-request", "Idempotency-Key is over 255 characters"), False
        fingerprint = (method, request.path, hashlib.sha256(_canonical(body)).hexdigest())
        return self.idempotent(key, fingerprint, lambda: self.handle(method, parts, query, body))

    def handle(self, method: str, parts: list[str], query: dict[str, list[str]], body: bytes) -> Reply:
        if parts == ["device-models"] and method == "GET":
            return self._list(query)
        if len(parts) in (6, 7) and parts[0] == "device-models" and all(map(IDENTIFIER.match, parts[1:6])):
            dmc = tuple(parts[1:6])
            if len(parts) == 6 and method == "GET":
                return (200, self.records[dmc]) if dmc in self.records else _missing(dmc)
            if len(parts) == 6 and method == "PUT":
                return self._upsert(dmc, body)
            if parts[6:] == ["withdrawal"] and method == "POST":
                return self._withdraw(dmc, body)
        return _problem(404, "not-found", "No such resource")

    def _upsert(self, dmc: tuple[str, ...], body: bytes) -> Reply:
        fields = _json(body)
        if (
            not isinstance(fields, dict)
            or not {"cplEntryId", "s1sp", "responseId"} <= fields.keys() <= FIELDS
            or not all(isinstance(value, str) for value in fields.values())
            or fields.get("status", "active") not in ("active", "withdrawn")
        ):
            return _problem(400, "invalid-request", "Not a DeviceModelFields object")
        record = dict(zip(KEYS, dmc, strict=True)) | {"status": "active"} | fields
        existing = self.records.get(dmc)
        self.records[dmc] = record
        if existing is None:
            return 201, {"outcome": "created", "deviceModel": record}
        return 200, {"outcome": "unchanged" if existing == record else "updated", "deviceModel": record}

    def _withdraw(self, dmc: tuple[str, ...], body: bytes) -> Reply:
        if body and not isinstance(_json(body), dict):
            return _problem(400, "invalid-request", "Not a JSON object")
        record = self.records.get(dmc)
        if record is None:
            return _missing(dmc)
        if record["status"] == "withdrawn":
            return 200, {"outcome": "already-withdrawn", "deviceModel": record}
        record["status"] = "withdrawn"
        return 200, {"outcome": "withdrawn", "deviceModel": record}

    def _list(self, query: dict[str, list[str]]) -> Reply:
        limit_text = query.get("limit", ["100"])[0]
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 500:
            return _problem(400, "invalid-request", "limit must be 1 to 500")
        ordered = sorted(self.records)
        if "cursor" in query:
            after = tuple(json.loads(base64.urlsafe_b64decode(query["cursor"][0])))
            ordered = [key for key in ordered if key > after]
        page = ordered[: int(limit_text)]
        more = len(ordered) > len(page)
        cursor = base64.urlsafe_b64encode(json.dumps(page[-1]).encode()).decode() if more else None
        return 200, {"items": [self.records[key] for key in page], "nextCursor": cursor}

    def idempotent(
        self, key: str, fingerprint: tuple[str, str, str], work: Callable[[], Reply]
    ) -> tuple[Reply, bool]:
        """The kept reply for a known key (and True), 422 for a reused one, else ``work()``'s, kept."""
        if key in self.keys:
            kept_fingerprint, reply = self.keys[key]
            if kept_fingerprint == fingerprint:
                return reply, True
            return _problem(422, "idempotency-key-reused", "Idempotency-Key used for another request"), False
        reply = work()
        if reply[0] < 500 and reply[0] != 429:
            self.keys[key] = (fingerprint, reply)
        return reply, False


class _Handler(BaseHTTPRequestHandler):
    """The HTTP side: read the request, ask the ``SmiServer``, record it, answer (or drop the connection)."""

    def do_GET(self) -> None:
        smi: SmiServer = cast(Any, self.server).smi
        self._now = int(time.time())
        split = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = Seen(self.command, split.path, parse_qs(split.query), headers, body, status=0)
        with smi.lock:
            fault = smi.faults.popleft() if smi.faults else None
            (status, answer), replayed = smi.respond(request, fault)
            if fault is not None and fault.rewrite is not None:
                answer, fault = fault.rewrite(answer), None
            dropped = fault is not None and fault.status is None
            kind = "application/problem+json" if status >= 400 else "application/json"
            smi.seen.append(
                replace(request, status=0 if dropped else status, answer=answer, answer_type=kind)
            )
        if dropped:
            self.close_connection = True
            return
        extra = {"Content-Type": kind} | ({REPLAYED_HEADER: "true"} if replayed else {})
        if fault is not None and fault.retry_after is not None:
            later = self._now + fault.retry_after
            extra["Retry-After"] = formatdate(later, usegmt=True) if fault.as_date else str(fault.retry_after)
        if status == 401:
            extra["WWW-Authenticate"] = 'Bearer realm="smi"'
        content = json.dumps(answer).encode()
        self.send_response(status)
        for name, value in (extra | {"Content-Length": str(len(content))}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(content)

    do_PUT = do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header, from the same second a Retry-After date is counted from."""
        return formatdate(self._now, usegmt=True)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


def _canonical(body: bytes) -> bytes:
    parsed = _json(body)
    return body if parsed is None else json.dumps(parsed, sort_keys=True).encode()


def _missing(dmc: tuple[str, ...]) -> Reply:
    return _problem(404, "device-model-not-found", "No such device model", "/".join(dmc))


def _problem(status: int, kind: str, title: str, detail: str = "") -> Reply:
    problem: dict[str, Any] = {"type": f"urn:smi:problem:{kind}", "title": title, "status": status}
    return status, problem | ({"detail": detail} if detail else {})

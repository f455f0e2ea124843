"""A loopback Microsoft Graph for tests: the few endpoints the bridge calls, shaped as Graph answers them.

A real HTTP server (stdlib ``ThreadingHTTPServer``, HTTP/1.1, 127.0.0.1, a free port), so the real
msgraph-sdk is tested through its middleware, httpx and sockets. It serves

- SharePoint list-item delta (``/sites/{site}/lists/{list}/items/delta``, with or without ``()``): the
  items of ``samples/forms/list-items-delta.json`` in pages of ``page_size`` linked by
  ``@odata.nextLink``, the last page carrying ``@odata.deltaLink``; a delta link then returns what
  ``add_changes`` queued, and ``expire_delta_links`` makes every link issued so far answer 410
  ``resyncRequired``. Columns come back only when the first request asked for ``$expand=fields``;
- subscriptions: ``POST /subscriptions`` (refusing an expiry past Graph's 42,300-minute limit for lists),
  ``GET /subscriptions`` (without the client state, as Graph lists them), ``PATCH /subscriptions/{id}``
  (the expiry only), ``DELETE /subscriptions/{id}``, ``POST /subscriptions/{id}/reauthorize``;
- ``POST /users/{id}/sendMail``: 202, with the body kept in ``sent_mail``. The action's parameters are
  ``Message`` and ``SaveToSentItems``, as Graph's metadata spells them and the SDK sends them (Graph's
  pages show them in camel case; microsoftgraph/microsoft-graph-docs#10518 reports the service wants these).

Every request is recorded in ``seen`` (method, path, query, headers, body, answer status, arrival time),
the bearer token is checked, and ``fail_next`` makes the next requests answer an error (with
Retry-After) instead.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.loopback import Loopback

SAMPLE_DELTA = Path(__file__).resolve().parents[1] / "samples" / "forms" / "list-items-delta.json"
BASE_PATH = "/v1.0"
LIST_SUBSCRIPTION_LIMIT = timedelta(minutes=42_300)
ERROR_CODES = {
    400: "invalidRequest",
    401: "InvalidAuthenticationToken",
    404: "itemNotFound",
    410: "resyncRequired",
    429: "TooManyRequests",
    503: "serviceNotAvailable",
    504: "UnknownError",
}
Reply = tuple[int, Any]


@dataclass(frozen=True)
class Seen:
    """A request as the server got it, and the status it answered."""

    method: str
    path: str  # percent-decoded, ``/v1.0`` included
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int
    at: float  # time.monotonic() on arrival

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Fault:
    status: int
    retry_after: int | None = None
    code: str | None = None
    method: str | None = None  # only the next request with this method; None: the next request


@dataclass
class GraphServer:
    """Use as a context manager; ``url`` is the base URL to give the Graph request adapter."""

    site_id: str = (
        "dcc.sharepoint.com,5c1b1ad8-7f8b-4a44-9d0e-3c2f1f0e8a11,0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"
    )
    list_id: str = "6f0c2d4e-8a1b-4c3d-9e5f-7a8b9c0d1e2f"
    token: str = "test-token"
    page_size: int = 4
    items: list[dict[str, Any]] = field(
        default_factory=lambda: json.loads(SAMPLE_DELTA.read_text(encoding="utf-8"))["value"]
    )
    seen: list[Seen] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent_mail: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _changes: list[dict[str, Any]] = field(default_factory=list)
    _tokens: dict[str, tuple[str, int, bool]] = field(default_factory=dict)  # token: (kind, page, expand)
    _stale: set[str] = field(default_factory=set)
    _deleted: int = 0  # subscriptions deleted

    # --- scripting ---------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        retry_after: int | None = None,
        code: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next request (with ``method``, if given) with ``status``, a Graph error body and
        Retry-After, doing nothing else. Faults queue up: one request each, in order."""
        self.faults.append(Fault(status, retry_after, code, method))

    def add_changes(self, *items: dict[str, Any]) -> None:
        """Items (changed, or ``{"id": ..., "deleted": {...}}``) for the next delta link to return."""
        with self.lock:
            self._changes.extend(items)

    def expire_delta_links(self) -> None:
        """Every delta or next link issued so far answers 410 ``resyncRequired`` from now on."""
        with self.lock:
            self._stale.update(self._tokens)

    def requests(self, method: str | None = None, path_suffix: str = "") -> list[Seen]:
        return [s for s in self.seen if method in (None, s.method) and s.path.endswith(path_suffix)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._loopback.port}{BASE_PATH}"

    def __enter__(self) -> GraphServer:
        self._loopback = Loopback(_Handler, graph=self).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loopback.stop(timeout=5)

    # --- answering ---------------------------------------------------------------------------

    def answer(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> tuple[Reply, dict[str, str]]:
        with self.lock:
            fault = next((f for f in self.faults if f.method in (None, method)), None)
            if fault is not None:
                self.faults.remove(fault)
                extra = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
                return _error(fault.status, fault.code), extra
            if headers.get("authorization") != f"Bearer {self.token}":
                return _error(401), {}
            return self._route(method, path[len(BASE_PATH) :], query, body), {}

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Reply:
        delta = re.fullmatch(r"/sites/([^/]+)/lists/([^/]+)/items/delta(?:\(\))?", path)
        if delta and method == "GET":
            if delta.groups() != (self.site_id, self.list_id):
                return _error(404)
            return self._delta(query)
        if path == "/subscriptions" and method in ("GET", "POST"):
            return self._subscriptions(method, body)
        one = re.fullmatch(r"/subscriptions/([^/]+)(/reauthorize)?", path)
        if one and (method, bool(one.group(2))) in (("PATCH", False), ("POST", True)):
            return self._subscription(one.group(1), reauthorize=bool(one.group(2)), body=body)
        if one and method == "DELETE" and not one.group(2):
            if self.subscriptions.pop(one.group(1), None) is None:
                return _error(404, "ResourceNotFound")
            self._deleted += 1
            return 204, None
        mail = re.fullmatch(r"/users/([^/]+)/sendMail", path)
        if mail and method == "POST":
            sent = json.loads(body)
            # the action's parameters as Graph's metadata names them, and the SDK sends them
            if not isinstance(sent.get("Message"), dict):
                return _error(400, "ErrorInvalidRequest")
            self.sent_mail.append((mail.group(1), sent))
            return 202, None
        return _error(404, "BadRequest")

    def _delta(self, query: dict[str, list[str]]) -> Reply:
        token = query.get("token", [None])[0]
        if token is None:
            kind, page, expand = "page", 1, "fields" in query.get("$expand", [""])[0].split(",")
        elif token in self._stale:
            return _error(410)
        elif token in self._tokens:
            kind, page, expand = self._tokens[token]
        else:
            return _error(400, "invalidToken")
        if kind == "delta":
            value, self._changes, last = self._changes, [], True
        else:
            start = (page - 1) * self.page_size
            value, last = (
                self.items[start : start + self.page_size],
                start + self.page_size >= len(self.items),
            )
        link_kind = "delta" if last else "page"
        link_token = f"{link_kind}-{len(self._tokens) + 1}"
        self._tokens[link_token] = (link_kind, page + 1, expand)
        link = f"{self.url}/sites/{self.site_id}/lists/{self.list_id}/items/delta?token={link_token}"
        shown = [item if expand else {k: v for k, v in item.items() if k != "fields"} for item in value]
        page_body: dict[str, Any] = {
            "@odata.context": f"{self.url}/$metadata#Collection(listItem)",
            "value": shown,
        }
        page_body["@odata.deltaLink" if last else "@odata.nextLink"] = link
        return 200, page_body

    def _subscriptions(self, method: str, body: bytes) -> Reply:
        if method == "GET":
            return 200, {"value": [{**s, "clientState": None} for s in self.subscriptions.values()]}
        wanted = json.loads(body)
        required = ("changeType", "notificationUrl", "resource", "expirationDateTime")
        if any(not wanted.get(name) for name in required) or not _expiry_allowed(wanted):
            return _error(400, "ExtensionError")
        # never reused, as Graph's are not: every subscription there is or was counts
        subscription_id = f"sub-{len(self.subscriptions) + self._deleted + 1}"
        self.subscriptions[subscription_id] = {
            **wanted,
            "@odata.context": f"{self.url}/$metadata#subscriptions/$entity",
            "id": subscription_id,
            "applicationId": "00000000-0000-0000-0000-00000000b1d9",
            "creatorId": "00000000-0000-0000-0000-0000000c0ffe",
        }
        return 201, self.subscriptions[subscription_id]

    def _subscription(self, subscription_id: str, *, reauthorize: bool, body: bytes) -> Reply:
        if subscription_id not in self.subscriptions:
            return _error(404, "ResourceNotFound")
        if reauthorize:
            return 204, None
        changes = json.loads(body)
        if set(changes) - {"@odata.type", "expirationDateTime"} or not _expiry_allowed(changes):
            return _error(400, "ExtensionError")
        self.subscriptions[subscription_id]["expirationDateTime"] = changes["expirationDateTime"]
        return 200, self.subscriptions[subscription_id]


def _expiry_allowed(body: dict[str, Any]) -> bool:
    expiry = datetime.fromisoformat(body["expirationDateTime"].replace("Z", "+00:00"))
    return datetime.now(UTC) < expiry <= datetime.now(UTC) + LIST_SUBSCRIPTION_LIMIT


def _error(status: int, code: str | None = None) -> Reply:
    code = code or ERROR_CODES.get(status, "generalException")
    return status, {
        "error": {
            "code": code,
            "message": f"{code} (loopback Graph)",
            "innerError": {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "request-id": "loopback"},
        }
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        graph: GraphServer = self.server.graph  # type: ignore[attr-defined]
        arrived = time.monotonic()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        headers = {name.lower(): value for name, value in self.headers.items()}
        (status, answer), extra = graph.answer(self.command, path, query, headers, body)
        with graph.lock:
            graph.seen.append(Seen(self.command, path, query, headers, body, status, arrived))
        content = b"" if answer is None else json.dumps(answer).encode("utf-8")
        self.send_response(status)
        if content:
            self.send_header("Content-Type", "application/json")
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:  # the test output stays quiet
        return

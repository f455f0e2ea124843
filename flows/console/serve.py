"""``python -m flows serve``: the console and the HTTP endpoints on one machine, over the embedded store.

The HTTP endpoints are the Functions app's own functions (``forms/responses``, ``graph/notifications``)
called as the Functions host calls them, with the key the host would check and the queue output
going to the local work queue, so what is served here is what runs in Azure. One request at a time:
the embedded store is one SQLite connection, and operators are few.
"""

from __future__ import annotations

import errno
import functools
import json
import secrets
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from rich.console import Console

from flows.bootstrap import BridgeApp
from flows.console.app import ConsoleApp
from flows.console.http import ConsoleRequest, ConsoleResponse
from flows.errors import BadInput
from flows.queue_message import Message

MAX_BODY = 4 * 1024 * 1024
IDLE_SECONDS = 15  # a connection that sends nothing for this long is closed: one server thread serves all
ENDPOINTS = ("forms/responses", "graph/notifications")


def serve(app: BridgeApp, *, host: str, port: int, out: Console) -> int:
    """Serve until interrupted; prints the console's address (with a one-off key when none is set)."""
    server = make_server(app, host=host, port=port)
    base = f"http://{host}:{server.server_address[1]}"
    out.print(f"Operator console: {base}/console/?code={server.console_key}", markup=False)
    out.print(f"HTTP endpoints:   {base}/api/forms/responses, {base}/api/graph/notifications", markup=False)
    out.print("(the code is the console and function key for this run; Ctrl+C stops)", markup=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


class BridgeServer(HTTPServer):
    console: ConsoleApp
    console_key: str
    endpoints: Callable[[str, ConsoleRequest], ConsoleResponse]


def make_server(app: BridgeApp, *, host: str = "127.0.0.1", port: int = 0) -> BridgeServer:
    """A server bound to ``host:port`` (0: any free port), not yet serving."""
    key = (
        app.settings.console_key.get_secret_value() if app.settings.console_key else secrets.token_urlsafe(24)
    )
    try:
        server = BridgeServer((host, port), _Handler)
    except OSError as error:  # the bare "[Errno 98] Address already in use" named no address
        hint = ": another program listens there (stop it, or give another --port)"
        why = hint if error.errno == errno.EADDRINUSE else f": {error.strerror or error}"
        raise BadInput(f"cannot serve on {host}:{port}{why}") from error
    server.console = ConsoleApp(app, key=key)
    server.console_key = key
    server.endpoints = _Endpoints(app, key)
    return server


class _Endpoints:
    """The Functions app's HTTP triggers, called as the host calls them."""

    def __init__(self, app: BridgeApp, key: str) -> None:
        self._app = app
        self._key = key

    def __call__(self, route: str, request: ConsoleRequest) -> ConsoleResponse:
        import azure.functions as func

        given = request.query.get("code") or request.header("x-functions-key")
        if not given or not secrets.compare_digest(given, self._key):
            return ConsoleResponse(401, b"a function key is needed (?code= or x-functions-key)", "text/plain")
        function = http_functions().get(route)
        if function is None:  # pragma: no cover - ENDPOINTS names only routes the app has
            return ConsoleResponse(404, b"no such endpoint", "text/plain")
        http_request = func.HttpRequest(
            method=request.method,
            url=f"http://localhost/api/{route}",
            headers=dict(request.headers),
            params=dict(request.query),
            body=request.body,
        )
        queued: list[str] = []

        class _Out:
            def set(self, value: str) -> None:
                queued.append(value)

            def get(self) -> str:  # pragma: no cover - the functions only set
                return queued[-1]

        answer = function.get_user_function()(http_request, work=_Out())
        for text in queued:
            self._app.process(Message.model_validate_json(text))
        return ConsoleResponse(
            answer.status_code, answer.get_body(), answer.mimetype or "text/plain", dict(answer.headers)
        )


@functools.cache
def http_functions() -> Mapping[str, Any]:
    """The Functions app's functions by HTTP route, looked up once per process: ``get_functions``
    registers every name it builds and refuses a second call ("does not have a unique function
    name"), as the host calls it once. Called per request, it answered the first POST only."""
    from function_app import app as function_app

    functions = {}
    for function in function_app.get_functions():
        route = getattr(function.get_trigger(), "route", None)
        if route is not None:
            functions[route] = function
    return functions


class _Handler(BaseHTTPRequestHandler):
    server: BridgeServer
    server_version = "cpl-bridge"
    sys_version = ""
    timeout = IDLE_SECONDS

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        given = (self.headers.get("content-length") or "0").strip()
        if not given.isdigit():  # "-1" read the stream to its end, past the limit, holding the server
            self._send(ConsoleResponse(400, f"not a body length: {given[:40]!r}".encode(), "text/plain"))
            return
        length = int(given)
        if length > MAX_BODY:
            self._send(ConsoleResponse(413, f"the body is over {MAX_BODY:,} bytes".encode(), "text/plain"))
            return
        path = unquote(parts.path)  # as Functions routes it: the cases page links percent-encoded ids
        request = ConsoleRequest(
            method=self.command,
            path=path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        if path == "/console" or path.startswith("/console/"):
            scoped = ConsoleRequest(
                request.method, path.removeprefix("/console") or "/", request.query, request.headers,
                request.body,
            )  # fmt: skip
            self._send(self.server.console.handle(scoped))
        elif path.removeprefix("/api/") in ENDPOINTS:
            self._send(self.server.endpoints(path.removeprefix("/api/"), request))
        elif path == "/":
            self._send(ConsoleResponse.redirect("/console/cases", status=302))
        else:
            self._send(ConsoleResponse(404, json.dumps({"error": "not found"}).encode(), "application/json"))

    def _send(self, response: ConsoleResponse) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: a sign-in link carries the key in its query."""

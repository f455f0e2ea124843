"""HTTP trigger: the operator console, served by the function app itself.

The route is anonymous to the Functions host on purpose: the console does its own sign-in
(``flows.console.auth``: a console key opening a session cookie, or App Service authentication naming
the operator), because a function key in every link would end up in browser history and logs.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import azure.functions as func

if TYPE_CHECKING:  # the console (and the bridge under it) is imported on first use, not at cold start
    from flows.console import ConsoleApp

blueprint = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions ships it untyped

_lock = threading.Lock()
_console: ConsoleApp | None = None


@blueprint.route(route="console/{*path}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def console(req: func.HttpRequest) -> func.HttpResponse:
    """Every console page and form: built on first use, like the worker's bridge."""
    from flows.console import ConsoleRequest

    request = ConsoleRequest(
        method=req.method,
        path="/" + (req.route_params.get("path") or ""),
        query=dict(req.params),
        headers={name.lower(): value for name, value in req.headers.items()},
        body=req.get_body() or b"",
    )
    response = _app().handle(request)
    return func.HttpResponse(
        response.body,
        status_code=response.status,
        headers={"Content-Type": response.content_type, **response.headers},
    )


def _app() -> ConsoleApp:
    from adapters.functions.runtime import current_app
    from flows.console import ConsoleApp

    global _console
    bridge = current_app()
    with _lock:
        if _console is None or _console.app is not bridge:  # the bridge was rebuilt (settings changed)
            _console = ConsoleApp(bridge, root="/api/console")
        return _console

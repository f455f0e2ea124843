"""Azure Functions entry point (v2 programming model). Thin on purpose: each trigger decodes its
input, hands a typed message to the bridge and maps the result. Importing this module does no I/O
and builds no clients, so the host's cold start stays short."""

from __future__ import annotations

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness for the platform's probes: answers without touching any store."""
    return func.HttpResponse("ok", mimetype="text/plain")

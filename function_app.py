"""Azure Functions entry point (v2 programming model): it only registers the blueprints.

Importing this module does no I/O and builds no clients: the bridge is built inside a worker on
its first message, so the host's cold start and the Graph webhook's 3-second answer stay short.
"""

from __future__ import annotations

import azure.functions as func

from adapters.functions import console, schedules, webhooks, worker

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(webhooks.blueprint)
app.register_functions(schedules.blueprint)
app.register_functions(worker.blueprint)
app.register_functions(console.blueprint)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Liveness for the platform's probes: answers without touching any store."""
    return func.HttpResponse("ok", mimetype="text/plain")

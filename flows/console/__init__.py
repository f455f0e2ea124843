"""The operator console: server-rendered pages over the bridge's stores, and operators' decisions.

``ConsoleApp.handle`` takes a plain ``ConsoleRequest`` and gives a ``ConsoleResponse``, so the same
console is served by the Functions app (``adapters/functions/console.py``) and, locally, by
``python -m flows serve`` (``flows/console/serve.py``).
"""

from flows.console.app import ConsoleApp
from flows.console.http import ConsoleRequest, ConsoleResponse

__all__ = ["ConsoleApp", "ConsoleRequest", "ConsoleResponse"]

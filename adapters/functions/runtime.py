"""The worker's one bridge, built from app settings on first use and kept for the process's life."""

from __future__ import annotations

import threading

from flows.bootstrap import BridgeApp, bootstrap

_lock = threading.Lock()
_app: BridgeApp | None = None


def current_app() -> BridgeApp:
    global _app
    with _lock:
        if _app is None:
            _app = bootstrap()
        return _app


def reset() -> None:
    """Forget the built bridge (tests, or after settings change); closes it."""
    global _app
    with _lock:
        if _app is not None:
            _app.close()
        _app = None

"""The worker's one bridge, built from app settings on first use and kept for the process's life.

Before the first build it checks that the bridge's work queue is the one the queue triggers read: the
triggers bind ``connection="AzureWebJobsStorage"`` (adapters/functions/worker.py), while the bridge
writes the events its flows emit, SharePoint items and requeued poison to the queue of its own storage
settings. On two accounts those land on a queue no trigger watches, and nothing ever says so.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping

from flows.bootstrap import BridgeApp, bootstrap
from flows.errors import BadInput
from flows.settings import Settings, read_settings

HOST_STORAGE = "AzureWebJobsStorage"  # the connection the queue triggers bind (worker.py)

_lock = threading.Lock()
_app: BridgeApp | None = None
_log = logging.getLogger(__name__)


def current_app() -> BridgeApp:
    global _app
    with _lock:
        if _app is None:
            settings = read_settings()
            if settings.backend == "azure":
                check_work_queue_account(settings, os.environ)
            _app = bootstrap(settings)
        return _app


def reset() -> None:
    """Forget the built bridge (tests, or after settings change); closes it."""
    global _app
    with _lock:
        if _app is not None:
            _app.close()
        _app = None


def check_work_queue_account(settings: Settings, environment: Mapping[str, str]) -> None:
    """Raise ``BadInput`` when the bridge's queue endpoint is not the host's; worked out from the
    settings alone, without a request. A host account that cannot be worked out is logged, not refused:
    the host may be configured in a way this does not know."""
    from adapters.azure_storage.settings import (
        comparable_endpoint,
        queue_endpoint,
        same_endpoint,
        service_urls,
    )

    host = host_queue_endpoint(environment)
    if host is None:
        _log.warning(
            "cannot tell which storage account the queue triggers read (%s): not checked that it is "
            "the bridge's work queue's",
            HOST_STORAGE,
        )
        return
    try:
        if settings.storage_connection is not None:
            setting = "BRIDGE_STORAGE_CONNECTION"
            bridge = queue_endpoint(settings.storage_connection.get_secret_value())
        else:
            setting = "BRIDGE_STORAGE_ACCOUNT_URL"
            bridge = comparable_endpoint(service_urls(settings.storage_account_url)["queue_url"])
    except ValueError:
        return  # the build that follows refuses the setting itself, naming it
    if not same_endpoint(bridge, host):
        raise BadInput(
            f"the bridge's work queue is on {bridge} ({setting}) but the queue triggers read {host} "
            f"({HOST_STORAGE}): what the flows queue would never run; give both the same account"
        )


def host_queue_endpoint(environment: Mapping[str, str]) -> str | None:
    """The queue endpoint of the host's storage: its connection string, or for an identity-based
    connection ``__queueServiceUri`` or ``__accountName`` (public cloud); ``None`` if none of these
    can be read."""
    from adapters.azure_storage.settings import comparable_endpoint, queue_endpoint

    # The host reads its settings without regard to case (.NET configuration): so do we.
    environment = {name.lower(): value for name, value in environment.items() if name[:1] in "aA"}
    connection = environment.get(HOST_STORAGE.lower())
    if connection:
        try:
            return queue_endpoint(connection)
        except ValueError:  # the host would refuse it too; its own message says more than ours could
            return None
    uri = environment.get(f"{HOST_STORAGE}__queueServiceUri".lower())
    if uri:
        return comparable_endpoint(uri)
    account = environment.get(f"{HOST_STORAGE}__accountName".lower())
    if account:
        return f"https://{account.strip().lower()}.queue.core.windows.net"
    return None

"""Which adapter serves each port, from settings: part of the composition root.

State (cases, runs, publications, idempotency keys) and the work queue live in SQLite
(``backend=embedded``) or in Azure Storage (``backend=azure``). Each outside system is then chosen on
its own: the SMI over HTTP when ``smi_url`` is set, Teams when ``teams_webhook_url`` is, Graph mail
when ``graph_mailbox`` is; otherwise its embedded stand-in. Azure modules are imported only when
chosen, so the one-machine bridge never loads them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flows.engine.runs import RunStore
from flows.ports import CaseStore, IdempotencyStore, Inventory, Mailer, OperatorChannel, PublicationStore
from flows.service import WorkQueue
from flows.settings import Settings


@dataclass
class Parts:
    """The adapters the bridge runs on, and what must be closed when it stops."""

    cases: CaseStore
    publications: PublicationStore
    runs: RunStore
    idempotency: IdempotencyStore
    queue: WorkQueue
    inventory: Inventory
    mailer: Mailer
    channel: OperatorChannel
    local_queue: bool
    list_changes: Callable[[], Iterable[dict[str, Any]]] | None = None
    renew_subscription: Callable[[], None] | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)


def build_parts(settings: Settings, now: Callable[[], datetime]) -> Parts:
    parts = _azure_state(settings, now) if settings.backend == "azure" else _embedded_state(settings, now)
    if settings.smi_url or settings.teams_webhook_url:
        _http_systems(settings, parts)
    if settings.graph_mailbox or settings.graph_site_id:
        _graph(settings, parts)
    return parts


def _embedded_state(settings: Settings, now: Callable[[], datetime]) -> Parts:
    from adapters.embedded.cases import SqliteCaseStore
    from adapters.embedded.idempotency import SqliteIdempotencyStore
    from adapters.embedded.inventory import SqliteInventory
    from adapters.embedded.publications import SqlitePublicationStore
    from adapters.embedded.queue import SqliteWorkQueue
    from adapters.embedded.runs import SqliteRunStore
    from adapters.embedded.sqlite import BridgeDatabase
    from adapters.outbox import OutboxMailer, OutboxOperatorChannel

    database = BridgeDatabase.in_home(settings.home)
    outbox = settings.home / "outbox"
    return Parts(
        cases=SqliteCaseStore(database, clock=now),
        publications=SqlitePublicationStore(database),
        runs=SqliteRunStore(database),
        idempotency=SqliteIdempotencyStore(database, clock=now),
        queue=SqliteWorkQueue(database),
        inventory=SqliteInventory(database, clock=now),
        mailer=OutboxMailer(outbox, sender=settings.mail_sender, clock=now),
        channel=OutboxOperatorChannel(outbox),
        local_queue=True,
        closers=[database.close],
    )


def _azure_state(settings: Settings, now: Callable[[], datetime]) -> Parts:
    from adapters.azure_storage import StorageSettings, connect

    storage = StorageSettings(
        connection_string=settings.storage_connection,
        **_account(settings.storage_account_url),
        work_queue=settings.work_queue,
    )
    stores = connect(storage, clock=now)
    # The SMI, mail and Teams stand-ins still need a home when those systems are not configured.
    embedded = _embedded_state(settings, now)
    return Parts(
        cases=stores.cases,
        publications=stores.publications,
        runs=stores.runs,
        idempotency=stores.idempotency,
        queue=stores.queue,
        inventory=embedded.inventory,
        mailer=embedded.mailer,
        channel=embedded.channel,
        local_queue=False,
        closers=[*embedded.closers, stores.close],
    )


def _account(url: str) -> dict[str, str]:
    if not url:
        return {}
    name = url.split("//", 1)[-1].split(".", 1)[0]
    return {"account_name": name}


def _credential(settings: Settings) -> Any:
    """The identity the bridge signs in with: managed identity in Azure, else the app registration."""
    from azure import identity

    if settings.graph_credential == "client_secret":
        if settings.graph_client_secret is None:
            raise ValueError("BRIDGE_GRAPH_CLIENT_SECRET is required with graph_credential=client_secret")
        secret = settings.graph_client_secret.get_secret_value()
        return identity.ClientSecretCredential(settings.graph_tenant_id, settings.graph_client_id, secret)
    if settings.graph_credential == "certificate":
        if settings.graph_certificate_path is None:
            raise ValueError("BRIDGE_GRAPH_CERTIFICATE_PATH is required with graph_credential=certificate")
        return identity.CertificateCredential(
            settings.graph_tenant_id, settings.graph_client_id, str(settings.graph_certificate_path)
        )
    return identity.ManagedIdentityCredential(client_id=settings.graph_client_id or None)


def _http_systems(settings: Settings, parts: Parts) -> None:
    import httpx

    from adapters.http_retry import NO_RETRY

    # httpx logs each request's full URL at INFO; the Teams webhook URL is a secret.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    client = httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))
    parts.closers.append(client.close)
    # The engine retries transient failures with the action's policy and the far side's Retry-After:
    # the adapters do not retry as well (NO_RETRY), so attempts do not multiply.
    if settings.smi_url:
        from adapters.smi import CredentialToken, HttpInventory

        token = CredentialToken(_credential(settings), settings.smi_scope)
        parts.inventory = HttpInventory(settings.smi_url, client, token, retry=NO_RETRY)
    if settings.teams_webhook_url is not None:
        from adapters.teams_webhook import WorkflowsWebhookChannel

        parts.channel = WorkflowsWebhookChannel(settings.teams_webhook_url, client, retry=NO_RETRY)


def _graph(settings: Settings, parts: Parts) -> None:
    """Graph: supplier mail from the shared mailbox, list-item delta, and the list subscription.

    One Graph session per worker, opened here (the bridge is built on a worker's first message).
    """
    from adapters.embedded.sqlite import BridgeDatabase
    from adapters.graph import (
        GraphMailer,
        GraphSession,
        GraphSettings,
        ListDeltaReader,
        ListSubscriptions,
        SqliteDeltaLinkStore,
    )

    graph = GraphSettings(
        tenant_id=settings.graph_tenant_id,
        client_id=settings.graph_client_id,
        credential=settings.graph_credential,
        client_secret=settings.graph_client_secret,
        certificate_path=settings.graph_certificate_path,
        site_id=settings.graph_site_id,
        list_id=settings.graph_list_id,
        mailbox=settings.graph_mailbox,
        notification_url=settings.graph_notification_url,
        client_state=settings.graph_client_state,
    )
    session = GraphSession.open(graph)
    parts.closers.append(session.close)
    if settings.graph_mailbox:
        # The engine retries mail.send with its idempotency key: the SDK must not retry as well.
        parts.mailer = GraphMailer(session, mailbox=settings.graph_mailbox, sdk_retry=False)
    if settings.graph_site_id and settings.graph_list_id:
        # The delta link is kept beside the worker's embedded state; a worker that starts without
        # it reads the list from the start, and intake's response-id check makes that harmless.
        database = BridgeDatabase.in_home(settings.home)
        parts.closers.append(database.close)
        store = SqliteDeltaLinkStore(database)
        reader = ListDeltaReader(session, site_id=graph.site_id, list_id=graph.list_id, store=store)
        parts.list_changes = reader.read
    if settings.graph_notification_url and settings.graph_client_state is not None:
        subscriptions = ListSubscriptions(
            session,
            site_id=settings.graph_site_id,
            list_id=settings.graph_list_id,
            notification_url=settings.graph_notification_url,
            client_state=settings.graph_client_state,
        )

        def renew() -> None:
            subscriptions.ensure_subscription()

        parts.renew_subscription = renew

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
from functools import cached_property
from typing import TYPE_CHECKING, Any

from flows.engine.runs import RunStore
from flows.ports import CaseStore, IdempotencyStore, Inventory, Mailer, OperatorChannel, PublicationStore
from flows.service import WorkQueue
from flows.settings import Settings

if TYPE_CHECKING:  # only for annotations: Graph, httpx and SQLite load when chosen
    import httpx

    from adapters.embedded.sqlite import BridgeDatabase
    from adapters.graph.delta_links import DeltaLinkStore
    from adapters.graph.subscription_records import SubscriptionRecords
    from adapters.outbox.journal import OutboxJournal


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


@dataclass
class _State:
    """Cases, runs, publications, idempotency keys and the work queue: in SQLite or in Azure Storage."""

    cases: CaseStore
    publications: PublicationStore
    runs: RunStore
    idempotency: IdempotencyStore
    queue: WorkQueue
    local_queue: bool
    delta_links: DeltaLinkStore | None  # None: kept in the home's SQLite file
    subscription_records: SubscriptionRecords | None  # None: kept in the home's SQLite file


class _Shared:
    """What several adapters share, each opened on first use only: the home's SQLite file, and one
    HTTP client for the SMI and Teams.

    On the Azure backend with every outside system configured nothing lives in the home, and a
    Functions worker run from a package cannot write its own folder: opening the file anyway (for
    stand-ins no one used) would fail the worker's first message there.
    """

    def __init__(self, settings: Settings, closers: list[Callable[[], None]]) -> None:
        self._settings = settings
        self._closers = closers

    @cached_property
    def database(self) -> BridgeDatabase:
        from adapters.embedded.sqlite import BridgeDatabase

        database = BridgeDatabase.in_home(self._settings.home)
        self._closers.append(database.close)
        return database

    @cached_property
    def http(self) -> httpx.Client:
        import httpx

        # httpx logs each request's full URL at INFO; the Teams webhook URL is a secret.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        client = httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))
        self._closers.append(client.close)
        return client


def build_parts(settings: Settings, now: Callable[[], datetime]) -> Parts:
    """Every adapter, from settings; what is built is closed again if a later part fails."""
    closers: list[Callable[[], None]] = []
    try:
        return _build(settings, now, closers)
    except BaseException:
        for close in reversed(closers):
            close()
        raise


def _build(settings: Settings, now: Callable[[], datetime], closers: list[Callable[[], None]]) -> Parts:
    from adapters.outbox import OutboxMailer

    shared = _Shared(settings, closers)
    embedded = settings.backend != "azure"
    state = _embedded_state(shared, now) if embedded else _azure_state(settings, now, closers)
    # The outbox journal must share the idempotency keys' SQLite file (adapters.outbox.journal);
    # with the keys in Azure Tables each outbox file is synced to disk instead.
    journal = _outbox_journal(shared, now) if embedded else None
    parts = Parts(
        cases=state.cases,
        publications=state.publications,
        runs=state.runs,
        idempotency=state.idempotency,
        queue=state.queue,
        inventory=_inventory(settings, now, shared),
        # the outbox folder creates nothing before the first message; Graph mail replaces it (_graph)
        mailer=OutboxMailer(
            settings.home / "outbox", sender=settings.mail_sender, clock=now, journal=journal
        ),
        channel=_channel(settings, shared, journal),
        local_queue=state.local_queue,
        closers=closers,
    )
    if settings.graph_mailbox or settings.graph_site_id:
        _graph(settings, parts, state, shared)
    if journal is not None:
        _repair_outbox(parts, shared.database)
    return parts


def _outbox_journal(shared: _Shared, now: Callable[[], datetime]) -> OutboxJournal:
    from adapters.outbox.journal import OutboxJournal

    return OutboxJournal(shared.database, clock=now)


def _repair_outbox(parts: Parts, database: BridgeDatabase) -> None:
    """Before any message is sent: write again the outbox files a crash lost after their journal rows.

    Only a process that is the home's only user repairs. Files are lost only when the machine stops
    (a killed process leaves its writes to the operating system), and then every process stopped
    with it; while another is running, a row without its file is a message it is writing now.
    """
    from adapters.outbox import OutboxMailer, OutboxOperatorChannel

    with database.alone() as alone:
        for sender in (parts.mailer, parts.channel) if alone else ():
            if isinstance(sender, OutboxMailer | OutboxOperatorChannel):
                for path in sender.repair():
                    logging.getLogger(__name__).warning("outbox: wrote %s again from its journal", path)


def _embedded_state(shared: _Shared, now: Callable[[], datetime]) -> _State:
    from adapters.embedded.cases import SqliteCaseStore
    from adapters.embedded.idempotency import SqliteIdempotencyStore
    from adapters.embedded.publications import SqlitePublicationStore
    from adapters.embedded.queue import SqliteWorkQueue
    from adapters.embedded.runs import SqliteRunStore

    database = shared.database
    return _State(
        cases=SqliteCaseStore(database, clock=now),
        publications=SqlitePublicationStore(database),
        runs=SqliteRunStore(database),
        idempotency=SqliteIdempotencyStore(database, clock=now),
        queue=SqliteWorkQueue(database),
        local_queue=True,
        delta_links=None,
        subscription_records=None,
    )


def _azure_state(
    settings: Settings, now: Callable[[], datetime], closers: list[Callable[[], None]]
) -> _State:
    from adapters.azure_storage import StorageSettings, connect

    storage = StorageSettings(
        connection_string=settings.storage_connection,
        **_account(settings.storage_account_url),
        work_queue=settings.work_queue,
    )
    stores = connect(storage, clock=now)
    closers.append(stores.close)
    return _State(
        cases=stores.cases,
        publications=stores.publications,
        runs=stores.runs,
        idempotency=stores.idempotency,
        queue=stores.queue,
        local_queue=False,
        delta_links=stores.delta_links,
        subscription_records=stores.subscription_records,
    )


def _inventory(settings: Settings, now: Callable[[], datetime], shared: _Shared) -> Inventory:
    """The SMI over HTTP when ``smi_url`` is set; else its stand-in, a table in the home's SQLite file.

    The engine retries transient failures with the action's policy and the far side's Retry-After:
    the HTTP adapters do not retry as well (``NO_RETRY``), so attempts do not multiply.
    """
    if not settings.smi_url:
        from adapters.embedded.inventory import SqliteInventory

        return SqliteInventory(shared.database, clock=now)
    from adapters.http_retry import NO_RETRY
    from adapters.smi import CredentialToken, HttpInventory

    token = CredentialToken(_credential(settings), settings.smi_scope)
    return HttpInventory(settings.smi_url, shared.http, token, retry=NO_RETRY)


def _channel(settings: Settings, shared: _Shared, journal: OutboxJournal | None) -> OperatorChannel:
    """The Teams Workflows webhook when its URL is set; else the outbox folder (nothing is created
    before the first card)."""
    if settings.teams_webhook_url is None:
        from adapters.outbox import OutboxOperatorChannel

        return OutboxOperatorChannel(settings.home / "outbox", journal=journal)
    from adapters.http_retry import NO_RETRY
    from adapters.teams_webhook import WorkflowsWebhookChannel

    return WorkflowsWebhookChannel(settings.teams_webhook_url, shared.http, retry=NO_RETRY)


def _account(url: str) -> dict[str, str]:
    if not url:
        return {}
    name = url.split("//", 1)[-1].split(".", 1)[0]
    return {"account_name": name}


def _credential(settings: Settings) -> Any:
    """The identity the bridge signs in with: managed identity in Azure, else the app registration."""
    from azure import identity

    from adapters.identity import credential_options

    options = credential_options()  # a busy token service is a TransientError
    if settings.graph_credential == "client_secret":
        if settings.graph_client_secret is None:
            raise ValueError("BRIDGE_GRAPH_CLIENT_SECRET is required with graph_credential=client_secret")
        secret = settings.graph_client_secret.get_secret_value()
        return identity.ClientSecretCredential(
            settings.graph_tenant_id, settings.graph_client_id, secret, **options
        )
    if settings.graph_credential == "certificate":
        if settings.graph_certificate_path is None:
            raise ValueError("BRIDGE_GRAPH_CERTIFICATE_PATH is required with graph_credential=certificate")
        return identity.CertificateCredential(
            settings.graph_tenant_id,
            settings.graph_client_id,
            str(settings.graph_certificate_path),
            **options,
        )
    return identity.ManagedIdentityCredential(client_id=settings.graph_client_id or None, **options)


def _graph(settings: Settings, parts: Parts, state: _State, shared: _Shared) -> None:
    """Graph: supplier mail from the shared mailbox, list-item delta, and the list subscription.

    One Graph session per worker, opened here (the bridge is built on a worker's first message).
    ``state``: where the backend keeps the list's delta link and subscription record (``None``: the
    home's SQLite file).
    """
    from adapters.graph import (
        GraphMailer,
        GraphSession,
        GraphSettings,
        ListDeltaReader,
        ListSubscriptions,
        SqliteDeltaLinkStore,
        SqliteSubscriptionRecords,
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
        # Azure keeps the delta link in a table every worker shares; the embedded bridge beside its
        # state. Without it a read starts from the whole list, which intake's response-id check makes
        # harmless, only slower.
        delta_links = state.delta_links
        store = delta_links if delta_links is not None else SqliteDeltaLinkStore(shared.database)
        reader = ListDeltaReader(session, site_id=graph.site_id, list_id=graph.list_id, store=store)
        parts.list_changes = reader.read
    if settings.graph_notification_url and settings.graph_client_state is not None:
        subscriptions = ListSubscriptions(
            session,
            site_id=settings.graph_site_id,
            list_id=settings.graph_list_id,
            notification_url=settings.graph_notification_url,
            client_state=settings.graph_client_state,
            # what upkeep compares the configured client state with (a fingerprint, never the state)
            records=state.subscription_records or SqliteSubscriptionRecords(shared.database),
        )

        def renew() -> None:
            subscriptions.ensure_subscription()

        parts.renew_subscription = renew

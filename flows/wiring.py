"""Which adapter serves each port, from settings: part of the composition root.

State (cases, runs, publications, idempotency keys) and the work queue live in SQLite
(``backend=embedded``) or in Azure Storage (``backend=azure``). Each outside system is then chosen on
its own: the SMI over HTTP when ``smi_url`` is set, Teams when ``teams_webhook_url`` is, Graph mail
when ``graph_mailbox`` is; otherwise its embedded stand-in, which on Azure needs ``allow_stand_ins``
(a stand-in only pretends: a model "loaded" into a SQLite file on a worker's disk). Each choice is
logged once at INFO, without secrets. Azure modules are imported only when chosen, so the one-machine
bridge never loads them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError

from flows.engine.runs import RunStore
from flows.errors import BadInput
from flows.ports import CaseStore, IdempotencyStore, Inventory, Mailer, OperatorChannel, PublicationStore
from flows.service import WorkQueue
from flows.settings import Settings

if TYPE_CHECKING:  # only for annotations: Graph, httpx and SQLite load when chosen
    import httpx

    from adapters.embedded.sqlite import BridgeDatabase
    from adapters.graph.delta_links import DeltaLinkStore
    from adapters.graph.subscription_records import SubscriptionRecords
    from adapters.outbox.journal import OutboxJournal

_log = logging.getLogger(__name__)
T = TypeVar("T")


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

    embedded = settings.backend != "azure"
    if not embedded:
        _refuse_stand_ins(settings)
    shared = _Shared(settings, closers)
    state = _embedded_state(shared, now) if embedded else _azure_state(settings, now, closers)
    # The outbox journal must share the idempotency keys' SQLite file (adapters.outbox.journal);
    # with the keys in Azure Tables each outbox file is synced to disk instead.
    journal = _outbox_journal(shared, now) if embedded else None
    outbox = settings.home / "outbox"
    mail_outbox = outbox / "mail"  # where OutboxMailer writes
    parts = Parts(
        cases=state.cases,
        publications=state.publications,
        runs=state.runs,
        idempotency=state.idempotency,
        queue=state.queue,
        inventory=_inventory(settings, now, shared),
        # the outbox folder creates nothing before the first message; Graph mail replaces it (_graph)
        mailer=OutboxMailer(outbox, sender=settings.mail_sender, clock=now, journal=journal),
        channel=_channel(settings, shared, journal),
        local_queue=state.local_queue,
        closers=closers,
    )
    if settings.graph_mailbox or settings.graph_site_id:
        _graph(settings, parts, state, shared)
    if not settings.graph_mailbox:
        _log.info("supplier mail: the stand-in, files in %s (BRIDGE_GRAPH_MAILBOX unset)", mail_outbox)
    if journal is not None:
        _repair_outbox(parts, shared.database)
    return parts


def _refuse_stand_ins(settings: Settings) -> None:
    """On Azure, every outside system must be the real one unless the deployment says otherwise."""
    left = settings.stand_ins()
    named = ", ".join(f"{setting} ({what})" for setting, what in left)
    if left and settings.allow_stand_ins:
        _log.warning("BRIDGE_ALLOW_STAND_INS: systems left on their local stand-ins: %s", named)
    elif left:
        raise BadInput(
            f"BRIDGE_BACKEND=azure with systems left on their local stand-ins: set {named}; "
            "or BRIDGE_ALLOW_STAND_INS=true for a trial"
        )


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
    _log.info("storage: embedded, the SQLite file in %s", database.path.parent)
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
    from adapters.azure_storage.settings import comparable_endpoint, queue_endpoint

    storage = _in_setting_names(
        lambda: StorageSettings(
            connection_string=settings.storage_connection,
            **_service_urls(settings),
            work_queue=settings.work_queue,
            # The one identity the bridge signs in with, as for Graph and the SMI: a user-assigned one
            # is named by its client id (without it, the system-assigned identity was asked, and none).
            managed_identity_client_id=(
                settings.graph_client_id or None if settings.graph_credential == "managed_identity" else None
            ),
        ),
        _STORAGE_SETTINGS,
        "Azure Storage",
    )
    connection = storage.connection_string
    try:
        endpoint = (
            queue_endpoint(connection.get_secret_value())
            if connection is not None
            else comparable_endpoint(storage.service_url("queue"))
        )
    except ValueError as error:  # the SDK's own words are not repeated: they might quote the secret
        raise BadInput(
            "BRIDGE_STORAGE_CONNECTION: not a storage connection string the SDK can read (it needs "
            "AccountName and AccountKey, a SharedAccessSignature, or UseDevelopmentStorage=true)"
        ) from error
    # before connecting: when that fails, the line says which account was tried
    _log.info("storage: Azure Storage, work queue %s at %s", storage.work_queue, endpoint)
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

        _log.info("SMI: the stand-in, a table in %s's SQLite file (BRIDGE_SMI_URL unset)", settings.home)
        return SqliteInventory(shared.database, clock=now)
    if not settings.smi_scope.strip():  # else every load failed at its first token, long after the start
        raise BadInput(
            "BRIDGE_SMI_URL is set without BRIDGE_SMI_SCOPE, the scope its tokens are asked for "
            "(e.g. api://<smi-app-id>/.default)"
        )
    from adapters.http_retry import NO_RETRY
    from adapters.smi import CredentialToken, HttpInventory

    # the host alone: a path or query may carry a key
    _log.info("SMI: over HTTP at %s", urlsplit(settings.smi_url).netloc.rpartition("@")[2])
    token = CredentialToken(_credential(settings), settings.smi_scope)
    return HttpInventory(settings.smi_url, shared.http, token, retry=NO_RETRY)


def _channel(settings: Settings, shared: _Shared, journal: OutboxJournal | None) -> OperatorChannel:
    """The Teams Workflows webhook when its URL is set; else the outbox folder (nothing is created
    before the first card)."""
    if settings.teams_webhook_url is None:
        from adapters.outbox import OutboxOperatorChannel

        _log.info(
            "Teams: the stand-in, files in %s (BRIDGE_TEAMS_WEBHOOK_URL unset)",
            settings.home / "outbox" / "teams",
        )
        return OutboxOperatorChannel(settings.home / "outbox", journal=journal)
    from adapters.http_retry import NO_RETRY
    from adapters.teams_webhook import WorkflowsWebhookChannel

    _log.info("Teams: the Workflows webhook of BRIDGE_TEAMS_WEBHOOK_URL (a secret: not shown)")
    return WorkflowsWebhookChannel(settings.teams_webhook_url, shared.http, retry=NO_RETRY)


# What the storage and Graph models' fields are called where an operator sets them.
_STORAGE_SETTINGS = {
    "connection_string": "BRIDGE_STORAGE_CONNECTION",
    "account_name": "BRIDGE_STORAGE_ACCOUNT_URL",
    "table_url": "BRIDGE_STORAGE_ACCOUNT_URL",
    "queue_url": "BRIDGE_STORAGE_ACCOUNT_URL",
    "blob_url": "BRIDGE_STORAGE_ACCOUNT_URL",
    "work_queue": "BRIDGE_WORK_QUEUE",
}
_GRAPH_SETTINGS = {
    name: f"BRIDGE_GRAPH_{name.upper()}"
    for name in (
        "tenant_id",
        "client_id",
        "credential",
        "client_secret",
        "certificate_path",
        "site_id",
        "list_id",
        "mailbox",
        "notification_url",
        "client_state",
    )
}


def _service_urls(settings: Settings) -> dict[str, str]:
    """The three service endpoints from ``BRIDGE_STORAGE_ACCOUNT_URL`` as given (a sovereign cloud's,
    a private DNS zone's), or none with a connection string; exactly one of the two is needed."""
    from adapters.azure_storage.settings import service_urls

    url = settings.storage_account_url
    if settings.storage_connection is not None and url:
        raise BadInput(
            "Azure Storage: give BRIDGE_STORAGE_CONNECTION or BRIDGE_STORAGE_ACCOUNT_URL, not both"
        )
    if settings.storage_connection is None and not url:
        raise BadInput(
            "BRIDGE_BACKEND=azure needs BRIDGE_STORAGE_ACCOUNT_URL (with the managed identity) "
            "or BRIDGE_STORAGE_CONNECTION (a connection string)"
        )
    if not url:
        return {}
    try:
        return service_urls(url)
    except ValueError as error:
        raise BadInput(f"BRIDGE_STORAGE_ACCOUNT_URL: {error}") from error


def _in_setting_names(build: Callable[[], T], names: Mapping[str, str], what: str) -> T:
    """``build()``, with a model's validation error told in one line that names the ``BRIDGE_*``
    settings its fields come from, not the fields (``connection_string``, ``tenant_id``)."""
    try:
        return build()
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            message = problem["msg"].removeprefix("Value error, ")
            where = names.get(str(problem["loc"][0])) if problem["loc"] else None
            problems.append(f"{where}: {message}" if where else message)
        raise BadInput(f"{what}: {'; '.join(problems)}") from error


def _credential(settings: Settings) -> Any:
    """The identity the bridge signs in with: managed identity in Azure, else the app registration."""
    from azure import identity

    from adapters.identity import credential_options

    _require_identity(settings)
    options = credential_options()  # a busy token service is a TransientError
    if settings.graph_credential == "client_secret":
        assert settings.graph_client_secret is not None  # _require_identity
        secret = settings.graph_client_secret.get_secret_value()
        return identity.ClientSecretCredential(
            settings.graph_tenant_id, settings.graph_client_id, secret, **options
        )
    if settings.graph_credential == "certificate":
        return identity.CertificateCredential(
            settings.graph_tenant_id,
            settings.graph_client_id,
            str(settings.graph_certificate_path),
            **options,
        )
    return identity.ManagedIdentityCredential(client_id=settings.graph_client_id or None, **options)


def _require_identity(settings: Settings) -> None:
    """An app registration's sign-in needs its tenant, client id and secret or certificate: each one
    missing is named as an operator sets it (the SDK and ``GraphSettings`` name their own fields)."""
    needed: dict[str, object] = {}
    if settings.graph_credential != "managed_identity":
        needed = {
            "BRIDGE_GRAPH_TENANT_ID": settings.graph_tenant_id,
            "BRIDGE_GRAPH_CLIENT_ID": settings.graph_client_id,
        }
    if settings.graph_credential == "client_secret":
        needed["BRIDGE_GRAPH_CLIENT_SECRET"] = settings.graph_client_secret
    if settings.graph_credential == "certificate":
        needed["BRIDGE_GRAPH_CERTIFICATE_PATH"] = settings.graph_certificate_path
    missing = [name for name, value in needed.items() if not value]
    if missing:
        raise BadInput(
            f"BRIDGE_GRAPH_CREDENTIAL={settings.graph_credential} needs {', '.join(missing)}, not set"
        )


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

    _require_identity(settings)
    graph = _in_setting_names(
        lambda: GraphSettings(
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
        ),
        _GRAPH_SETTINGS,
        "Graph",
    )
    session = GraphSession.open(graph)
    parts.closers.append(session.close)
    if settings.graph_mailbox:
        # The engine retries mail.send with its idempotency key: the SDK must not retry as well.
        parts.mailer = GraphMailer(session, mailbox=settings.graph_mailbox, sdk_retry=False)
        _log.info("supplier mail: Graph, from the mailbox %s", settings.graph_mailbox)
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

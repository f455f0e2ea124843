"""``connect``: the Azure Storage stores and work queue, built from ``StorageSettings``.

One service client per service (tables, queues, blobs), shared by the stores; each store gets the
table, container or queue client it works on. With ``create_missing`` (the default) the tables,
container and both queues are created if absent: a few requests, once per process. Nothing here logs
or raises with the connection string in it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Self

from azure.core.credentials import AzureNamedKeyCredential, TokenCredential
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import QueueClient, QueueServiceClient

from adapters.azure_storage._errors import storage_errors
from adapters.azure_storage.cases import TableCaseStore
from adapters.azure_storage.delta_links import TableDeltaLinkStore, TableSubscriptionRecords
from adapters.azure_storage.idempotency import TableIdempotencyStore
from adapters.azure_storage.poisoned import TablePoisonedMessages
from adapters.azure_storage.publications import BlobPublicationStore
from adapters.azure_storage.queue import StorageWorkQueue
from adapters.azure_storage.runs import TableRunStore
from adapters.azure_storage.settings import POISON_SUFFIX, StorageSettings

Credential = TokenCredential | AzureNamedKeyCredential
log = logging.getLogger(__name__)


@dataclass
class AzureStores:
    """The stores ``connect`` built; ``close()`` (or ``with``) releases their connections."""

    cases: TableCaseStore
    runs: TableRunStore
    idempotency: TableIdempotencyStore
    publications: BlobPublicationStore
    queue: StorageWorkQueue
    delta_links: TableDeltaLinkStore
    subscription_records: TableSubscriptionRecords
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def connect(
    settings: StorageSettings,
    *,
    credential: Credential | None = None,
    clock: Callable[[], datetime] | None = None,
) -> AzureStores:
    """Build the stores. Without a connection string, ``credential`` signs the requests (by default the
    Function App's managed identity: the user-assigned one the settings name, else the system-assigned).

    ``clock`` stamps ``updated_at`` / ``stored_at`` (UTC now by default).
    """
    closers: list[Callable[[], None]] = []
    if settings.connection_string is not None:
        secret = settings.connection_string.get_secret_value()
        tables = TableServiceClient.from_connection_string(secret)
        queues = QueueServiceClient.from_connection_string(secret)
        blobs = BlobServiceClient.from_connection_string(secret)
        how = "a connection string"
    else:
        if credential is None:
            from azure.identity import ManagedIdentityCredential  # only where it is used: slow to import

            from adapters.identity import credential_options

            # The managed identity itself, not DefaultAzureCredential: that chain raises its own error
            # without the token service's (a 503 read as a refusal, so permanent), and a managed identity
            # is what the app has in Azure. A busy token service is then a TransientError.
            default = ManagedIdentityCredential(
                client_id=settings.managed_identity_client_id, **credential_options()
            )
            closers.append(default.close)
            credential = default
        tables = TableServiceClient(endpoint=settings.service_url("table"), credential=credential)
        queues = QueueServiceClient(settings.service_url("queue"), credential=credential)
        blobs = BlobServiceClient(settings.service_url("blob"), credential=credential)
        how = f"a {type(credential).__name__}"
    closers += [tables.close, queues.close, blobs.close]

    container = blobs.get_container_client(settings.publications_container)
    work = queues.get_queue_client(settings.work_queue)
    poison = queues.get_queue_client(settings.poison_queue)
    poison_poison_name = settings.poison_queue + POISON_SUFFIX  # made by the host, when it needs it
    poison_poison = queues.get_queue_client(poison_poison_name) if len(poison_poison_name) <= 63 else None
    try:
        if settings.create_missing:
            _create_missing(settings, tables, container, work, poison)
    except BaseException:
        for close in reversed(closers):
            close()
        raise
    log.info("Azure Storage account %s, reached with %s", tables.account_name, how)
    return AzureStores(
        cases=TableCaseStore(tables.get_table_client(settings.cases_table), clock=clock),
        runs=TableRunStore(tables.get_table_client(settings.runs_table)),
        idempotency=TableIdempotencyStore(tables.get_table_client(settings.idempotency_table), clock=clock),
        publications=BlobPublicationStore(container),
        queue=StorageWorkQueue(
            work,
            poison,
            kept=TablePoisonedMessages(tables.get_table_client(settings.poisoned_table), clock=clock),
            poison_poison=poison_poison,
            encoding=settings.message_encoding,
            max_dequeue_count=settings.max_dequeue_count,
            visibility_timeout=settings.visibility_timeout,
        ),
        delta_links=TableDeltaLinkStore(tables.get_table_client(settings.delta_links_table), clock=clock),
        subscription_records=TableSubscriptionRecords(
            tables.get_table_client(settings.delta_links_table), clock=clock
        ),
        _closers=closers,
    )


def _create_missing(
    settings: StorageSettings,
    tables: TableServiceClient,
    container: ContainerClient,
    *queues: QueueClient,
) -> None:
    tables_used = (
        settings.cases_table,
        settings.runs_table,
        settings.idempotency_table,
        settings.delta_links_table,
        settings.poisoned_table,
    )
    for name in tables_used:
        with storage_errors(f"table {name}: create"):
            tables.create_table_if_not_exists(name)
    with storage_errors(f"container {container.container_name}: create"), suppress(ResourceExistsError):
        container.create_container()
    for queue in queues:
        with storage_errors(f"queue {queue.queue_name}: create"), suppress(ResourceExistsError):
            queue.create_queue()

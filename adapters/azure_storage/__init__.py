"""Azure Storage implementations of the state ports and the work queue (tested against Azurite).

``connect(StorageSettings(...))`` builds them all; each can also be built alone from an SDK client:

- ``TableCaseStore`` (``CaseStore``), ``TableRunStore`` (``RunStore``), ``TableIdempotencyStore``
  (``IdempotencyStore``), ``TableDeltaLinkStore`` (``adapters.graph.DeltaLinkStore``),
  ``TableSubscriptionRecords`` (``adapters.graph.SubscriptionRecords``): Azure Table storage;
- ``BlobPublicationStore`` (``PublicationStore``, plus ``add_raw`` / ``get_raw`` for the raw files):
  Blob storage;
- ``StorageWorkQueue`` (``WorkQueue``): a Storage queue with its ``-poison`` queue.

Storage errors reach callers as ``flows.errors.TransientError`` / ``PermanentError``; a record too big
for one table entity as ``DocumentTooLarge`` (a ``PermanentError``).
"""

from adapters.azure_storage._errors import DocumentTooLarge
from adapters.azure_storage.cases import TableCaseStore
from adapters.azure_storage.connect import AzureStores, connect
from adapters.azure_storage.delta_links import TableDeltaLinkStore, TableSubscriptionRecords
from adapters.azure_storage.idempotency import TableIdempotencyStore
from adapters.azure_storage.publications import BlobPublicationStore
from adapters.azure_storage.queue import StorageWorkQueue
from adapters.azure_storage.runs import TableRunStore
from adapters.azure_storage.settings import StorageSettings

__all__ = [
    "AzureStores",
    "BlobPublicationStore",
    "DocumentTooLarge",
    "StorageSettings",
    "StorageWorkQueue",
    "TableCaseStore",
    "TableDeltaLinkStore",
    "TableIdempotencyStore",
    "TableRunStore",
    "TableSubscriptionRecords",
    "connect",
]

"""``TableDeltaLinkStore``: each SharePoint list's Graph delta link in a table, shared by every worker;
and ``TableSubscriptionRecords``: the list subscription the bridge made, in the same table.

In Azure the workers come and go (scale out, recycles, deployments) and keep nothing on disk; run
from a package, their folder is not even writable. A delta link kept beside a worker would go with it,
and each new worker would read the whole list again. One entity per list: PartitionKey the list id
(made a valid key by ``key_text``), RowKey ``delta``, the link in ``delta_link``.

The last writer wins. Of two workers reading the list at once, either link is a valid bookmark: the
changes after the older one are read again, and intake drops a response it has seen by its id.

Beside it, RowKey ``subscription``: the id of the subscription the bridge made for the list and a salted
SHA-256 of the client state it was made with (``adapters.graph.SubscriptionRecord``; never the state).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from adapters.azure_storage._errors import storage_errors
from adapters.azure_storage._keys import key_text, utc_text
from adapters.graph.subscription_records import SubscriptionRecord

ROW = "delta"
SUBSCRIPTION_ROW = "subscription"


class TableDeltaLinkStore:
    """The ``DeltaLinkStore`` (``adapters.graph``) on Azure Table storage."""

    def __init__(self, table: TableClient, *, clock: Callable[[], datetime] | None = None) -> None:
        """``table``: the delta links table (it must exist). ``clock`` stamps ``updated_at``."""
        self._table = table
        self._clock = clock or (lambda: datetime.now(UTC))

    def get(self, list_id: str) -> str | None:
        with storage_errors(f"delta link of list {list_id}: read"):
            try:
                entity = self._table.get_entity(key_text(list_id), ROW, select=["delta_link"])
            except ResourceNotFoundError:
                return None
        return str(entity["delta_link"])

    def set(self, list_id: str, delta_link: str) -> None:
        entity = {
            "PartitionKey": key_text(list_id),
            "RowKey": ROW,
            "list_id": list_id,
            "delta_link": delta_link,
            "updated_at": utc_text(self._clock()),
        }
        with storage_errors(f"delta link of list {list_id}: write"):
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def forget(self, list_id: str) -> None:
        with storage_errors(f"delta link of list {list_id}: delete"), suppress(ResourceNotFoundError):
            self._table.delete_entity(key_text(list_id), ROW)


class TableSubscriptionRecords:
    """The ``SubscriptionRecords`` (``adapters.graph``) on Azure Table storage, in the delta links table."""

    def __init__(self, table: TableClient, *, clock: Callable[[], datetime] | None = None) -> None:
        """``table``: the delta links table (it must exist). ``clock`` stamps ``updated_at``."""
        self._table = table
        self._clock = clock or (lambda: datetime.now(UTC))

    def get(self, list_id: str) -> SubscriptionRecord | None:
        fields = ["subscription_id", "state_salt", "state_fingerprint"]
        with storage_errors(f"subscription record of list {list_id}: read"):
            try:
                entity = self._table.get_entity(key_text(list_id), SUBSCRIPTION_ROW, select=fields)
            except ResourceNotFoundError:
                return None
        return SubscriptionRecord(*(str(entity[name]) for name in fields))

    def set(self, list_id: str, record: SubscriptionRecord) -> None:
        entity = {
            "PartitionKey": key_text(list_id),
            "RowKey": SUBSCRIPTION_ROW,
            "list_id": list_id,
            "subscription_id": record.subscription_id,
            "state_salt": record.state_salt,
            "state_fingerprint": record.state_fingerprint,
            "updated_at": utc_text(self._clock()),
        }
        with storage_errors(f"subscription record of list {list_id}: write"):
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

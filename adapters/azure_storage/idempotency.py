"""``TableIdempotencyStore``: results of side effects already made, by idempotency key, in a table.

Each key is its own partition (PartitionKey = the key made valid by ``key_text``, RowKey ``result``):
the store only ever does point reads and inserts, which spread best over many partitions. ``put`` is
an insert: the service refuses a second one for the same key (409), so the first writer wins even
between processes, with no read first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

from adapters.azure_storage._documents import pack, unpack
from adapters.azure_storage._errors import storage_errors
from adapters.azure_storage._keys import key_text, utc_text

ROW = "result"


class TableIdempotencyStore:
    """The ``IdempotencyStore`` on Azure Table storage: the first ``put`` for a key wins.

    Results are kept as JSON (``json.dumps``, no NaN): anything else is refused with ``TypeError`` or
    ``ValueError`` before anything is written, as in the embedded store.
    """

    def __init__(self, table: TableClient, *, clock: Callable[[], datetime] | None = None) -> None:
        """``table``: the idempotency table (it must exist). ``clock`` stamps ``stored_at``."""
        self._table = table
        self._clock = clock or (lambda: datetime.now(UTC))

    def get(self, key: str) -> dict[str, Any] | None:
        with storage_errors(f"idempotency key {key}: read"):
            try:
                entity = self._table.get_entity(key_text(key), ROW)
            except ResourceNotFoundError:
                return None
        result: dict[str, Any] = json.loads(unpack(entity))
        return result

    def put(self, key: str, result: dict[str, Any]) -> bool:
        document = json.dumps(result, allow_nan=False, ensure_ascii=False)
        entity = {
            "PartitionKey": key_text(key),
            "RowKey": ROW,
            "key": key,
            "stored_at": utc_text(self._clock()),
            **pack(document, what=f"idempotency key {key}"),
        }
        with storage_errors(f"idempotency key {key}: put"):
            try:
                self._table.create_entity(entity)
            except ResourceExistsError:
                return False
        return True

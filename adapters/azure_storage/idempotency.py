"""``TableIdempotencyStore``: results of side effects already made, by idempotency key, in a table.

Each key is its own partition (PartitionKey = the key made valid by ``key_text``, RowKey ``result``):
the store only ever does point reads and inserts, which spread best over many partitions. ``put`` is
an insert: the service refuses a second one for the same key (409), so the first writer wins even
between processes, with no read first.

A kept result never changes (it is only ever inserted, never updated or deleted), so the store
remembers the ones it has read or written and answers ``get`` for them without a round trip. A key
not found is not remembered: another worker may put it at any time.
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
from adapters.recent import Recent

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
        self._kept: Recent[str, str] = Recent()  # key -> its result's JSON; see the module's docstring

    def get(self, key: str) -> dict[str, Any] | None:
        document = self._kept.get(key)
        if document is None:
            with storage_errors(f"idempotency key {key}: read"):
                try:
                    entity = self._table.get_entity(key_text(key), ROW)
                except ResourceNotFoundError:
                    return None
            document = unpack(entity)
            self._kept.put(key, document)
        result: dict[str, Any] = json.loads(document)  # parsed each time: callers may change it
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
                return False  # someone else's result is kept: the next ``get`` reads it
        self._kept.put(key, document)
        return True

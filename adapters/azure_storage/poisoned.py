"""``TablePoisonedMessages``: poisoned work messages kept in a table until an operator puts them back.

In Azure the Functions host moves a message that failed ``maxDequeueCount`` deliveries to
``<queue>-poison``, and deletes it from there once the poison trigger returns. The trigger keeps the
message here first (``StorageWorkQueue.keep_poisoned``), so a message whose runs were never recorded
(the bridge could not start: a bad setting, Storage down) can still be put back once the cause is
mended (``python -m flows poisoned --requeue``).

A table, not a blob container: a queue message is at most 64 KiB as queued, so any body fits one
entity (1 MiB) as raw bytes in at most two binary properties of 63 KiB (``body0``, ``body1``, their
number in ``body_parts``); one insert keeps it with its id, type, flow and reason, and the listing is
one partition query that leaves the bodies on the server.

Each body is kept once: RowKey is the SHA-256 of the body as the trigger got it, and the write is an
insert, which the service refuses for a second copy (409). So the host re-running the trigger, the
put-back after a failed alert and the upkeep's bring-back from ``-poison-poison`` all find the copy
already kept. All rows share one partition: they are few, and listed whole.

Bodies hold personal data (a supplier's contact): nothing here logs or raises with a body in it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient
from pydantic import ValidationError

from adapters.azure_storage._errors import DocumentTooLarge, storage_errors
from flows.queue_message import Message
from flows.service import PoisonedMessage

PARTITION = "poisoned"
PART_BYTES = 63 * 1024  # bytes in one binary property (the service allows 64 KiB)
MAX_PARTS = 14  # under the 1 MiB entity limit with room for the rest; a queue message needs 2 at most
_LISTED = ["RowKey", "message_id", "type", "flow", "reason", "kept_at"]


class TablePoisonedMessages:
    """Kept poisoned messages, one entity per body (see the module's docstring)."""

    def __init__(self, table: TableClient, *, clock: Callable[[], datetime] | None = None) -> None:
        """``table``: the kept messages' table (it must exist). ``clock`` stamps ``kept_at``."""
        self._table = table
        self._clock = clock or (lambda: datetime.now(UTC))

    def keep(self, body: bytes, *, reason: str) -> tuple[PoisonedMessage, bool]:
        """Keep ``body`` once; what is kept under it, and whether this call kept it (False: a copy
        was kept already, and is left as it was)."""
        digest = hashlib.sha256(body).hexdigest()
        message_id, kind, flow = _what(body, digest)
        parts = [body[start : start + PART_BYTES] for start in range(0, len(body), PART_BYTES)] or [b""]
        if len(parts) > MAX_PARTS:
            raise DocumentTooLarge(f"poisoned message {message_id}: {len(body):,} bytes, too many to keep")
        kept_at = self._clock().astimezone(UTC)
        entity: dict[str, Any] = {
            "PartitionKey": PARTITION,
            "RowKey": digest,
            "message_id": message_id,
            "type": kind,
            "flow": flow or "",
            "reason": reason,
            "kept_at": kept_at,
            "body_parts": len(parts),
            **{f"body{number}": part for number, part in enumerate(parts)},
        }
        with storage_errors(f"table {self._table.table_name}: keep poisoned message {message_id}"):
            try:
                self._table.create_entity(entity)
            except ResourceExistsError:
                return self._read(digest), False
        return _described(entity), True

    def listing(self) -> list[PoisonedMessage]:
        """Every kept message, oldest first; bodies are not read."""
        return sorted((_described(entity) for entity in self._entities()), key=lambda kept: kept.poisoned_at)

    def kept_under(self, message_ids: set[str]) -> dict[str, list[str]]:
        """The kept rows (their RowKeys) of each of ``message_ids`` that has any."""
        rows: dict[str, list[str]] = {}
        for entity in self._entities():
            if entity["message_id"] in message_ids:
                rows.setdefault(str(entity["message_id"]), []).append(str(entity["RowKey"]))
        return rows

    def all_rows(self) -> list[str]:
        """Every kept row's RowKey, oldest first."""
        entities = sorted(self._entities(), key=_kept_at)
        return [str(entity["RowKey"]) for entity in entities]

    def body(self, row: str) -> bytes | None:
        """The body kept in ``row``; None if it is gone (put back by someone else meanwhile)."""
        with storage_errors(f"table {self._table.table_name}: read a poisoned message"):
            try:
                entity = self._table.get_entity(PARTITION, row)
            except ResourceNotFoundError:
                return None
        return b"".join(bytes(entity[f"body{number}"]) for number in range(int(entity["body_parts"])))

    def forget(self, row: str) -> None:
        """Delete a kept row (after its message is back on the work queue); one already gone is fine."""
        with storage_errors(f"table {self._table.table_name}: forget a poisoned message"):
            self._table.delete_entity(PARTITION, row)  # no error when it is not there

    def _read(self, row: str) -> PoisonedMessage:
        with storage_errors(f"table {self._table.table_name}: read a poisoned message"):
            entity = self._table.get_entity(PARTITION, row, select=_LISTED)
        return _described(entity)

    def _entities(self) -> Iterator[dict[str, Any]]:
        with storage_errors(f"table {self._table.table_name}: list poisoned messages"):
            yield from self._table.query_entities(f"PartitionKey eq '{PARTITION}'", select=_LISTED)


def identify(body: bytes) -> tuple[str, str, str | None]:
    """The message id, type and flow a body would be kept under (an unreadable one: by its digest)."""
    return _what(body, hashlib.sha256(body).hexdigest())


def _what(body: bytes, digest: str) -> tuple[str, str, str | None]:
    """The message id, type and flow of a body; an unreadable one is named by its digest."""
    try:
        message = Message.model_validate_json(body)
    except (ValidationError, ValueError):
        return f"unreadable-{digest[:16]}", "unreadable", None
    return message.message_id, message.type, message.flow


def _kept_at(entity: dict[str, Any]) -> datetime:
    moment = entity["kept_at"]
    assert isinstance(moment, datetime)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _described(entity: dict[str, Any]) -> PoisonedMessage:
    return PoisonedMessage(
        message_id=str(entity["message_id"]),
        type=str(entity["type"]),
        flow=str(entity["flow"]) or None,
        reason=str(entity["reason"]),
        poisoned_at=_kept_at(entity),
    )

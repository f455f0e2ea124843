"""``SqliteInventory``: the embedded stand-in for the Smart Metering Inventory's device model register."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from adapters.embedded.sqlite import BridgeDatabase, SqliteStore, StrPath, utc_text
from flows.domain.cpl import DeviceModelCombination
from flows.ports import InventoryRecord, InventoryStatus, UpsertOutcome

_FIELDS = (
    "device_type",
    "manufacturer_id",
    "model_id",
    "hardware_version",
    "firmware_version",
    "cpl_entry_id",
    "s1sp",
    "response_id",
    "status",
)
_KEY_LENGTH = 5  # the first five fields: the device model combination, the primary key
_SELECT_ONE = """
    SELECT device_type, manufacturer_id, model_id, hardware_version, firmware_version,
           cpl_entry_id, s1sp, response_id, status
    FROM inventory
    WHERE device_type = ? AND manufacturer_id = ? AND model_id = ? AND hardware_version = ?
          AND firmware_version = ?
"""
_SELECT_ALL = """
    SELECT device_type, manufacturer_id, model_id, hardware_version, firmware_version,
           cpl_entry_id, s1sp, response_id, status
    FROM inventory
    ORDER BY device_type, manufacturer_id, model_id, hardware_version, firmware_version
"""
_SELECT_ACTIVE_FROM = """
    SELECT device_type, manufacturer_id, model_id, hardware_version, firmware_version,
           cpl_entry_id, s1sp, response_id, status
    FROM inventory
    WHERE cpl_entry_id IN (SELECT value FROM json_each(?)) AND status = ?
    ORDER BY device_type, manufacturer_id, model_id, hardware_version, firmware_version
"""
_INSERT = """
    INSERT INTO inventory (device_type, manufacturer_id, model_id, hardware_version, firmware_version,
                           cpl_entry_id, s1sp, response_id, status, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT DO NOTHING
"""
_UPDATE = """
    UPDATE inventory SET cpl_entry_id = ?, s1sp = ?, response_id = ?, status = ?, updated_at = ?
    WHERE device_type = ? AND manufacturer_id = ? AND model_id = ? AND hardware_version = ?
          AND firmware_version = ?
"""
_WITHDRAW = """
    UPDATE inventory SET status = ?, updated_at = ?
    WHERE status != ? AND device_type = ? AND manufacturer_id = ? AND model_id = ? AND hardware_version = ?
          AND firmware_version = ?
"""
_SEEN = "SELECT outcome FROM inventory_requests WHERE idempotency_key = ?"
_REMEMBER = """
    INSERT INTO inventory_requests (idempotency_key, operation, dmc, outcome, at) VALUES (?, ?, ?, ?, ?)
"""


class SqliteInventory(SqliteStore):
    """The embedded ``Inventory``, one row per device model combination (its primary key).

    Idempotency: every key used (by ``upsert`` or ``withdraw``) is kept in ``inventory_requests``, and
    **the first write for a key wins**: a request repeated with a key already seen changes nothing,
    even if its record differs from the first one (``upsert`` then answers ``UNCHANGED``, ``withdraw``
    ``False``). A changed record needs a new key.
    """

    SCHEMA_COMPONENT = "inventory"
    SCHEMA_VERSION = 1
    SCHEMA = (
        """
        CREATE TABLE IF NOT EXISTS inventory (
            device_type      TEXT NOT NULL,
            manufacturer_id  TEXT NOT NULL,
            model_id         TEXT NOT NULL,
            hardware_version TEXT NOT NULL,
            firmware_version TEXT NOT NULL,
            cpl_entry_id     TEXT NOT NULL,
            s1sp             TEXT NOT NULL,
            response_id      TEXT NOT NULL,
            status           TEXT NOT NULL,
            updated_at       TEXT NOT NULL,
            PRIMARY KEY (device_type, manufacturer_id, model_id, hardware_version, firmware_version)
        )
        """,
        # Added after version 1 without a new version: made on opening any file that lacks it, and a
        # bridge of before ignores it (a version would make it refuse the file on a roll-back).
        "CREATE INDEX IF NOT EXISTS inventory_by_entry ON inventory (cpl_entry_id)",
        """
        CREATE TABLE IF NOT EXISTS inventory_requests (
            idempotency_key TEXT PRIMARY KEY,
            operation       TEXT NOT NULL,
            dmc             TEXT NOT NULL,
            outcome         TEXT NOT NULL,
            at              TEXT NOT NULL
        )
        """,
    )

    def __init__(
        self, database: BridgeDatabase | StrPath, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(database)
        self._clock = clock or (lambda: datetime.now(UTC))

    def upsert(self, record: InventoryRecord, *, idempotency_key: str, attempt: int = 1) -> UpsertOutcome:
        now = utc_text(self._clock())
        values = tuple(str(getattr(record, field)) for field in _FIELDS)
        with self._db.write() as connection:
            seen = self._seen(connection, idempotency_key)
            if seen is not None:  # a repeat: this effect's own outcome only on a later attempt
                return UpsertOutcome(seen) if attempt > 1 else UpsertOutcome.UNCHANGED
            # Inserted unless the combination is there (then read to compare): a new one, the usual
            # case, costs no read.
            if connection.execute(_INSERT, (*values, now)).rowcount == 1:
                outcome = UpsertOutcome.CREATED
            elif self._select(connection, record.dmc) == record:
                outcome = UpsertOutcome.UNCHANGED
            else:
                outcome = UpsertOutcome.UPDATED
                connection.execute(_UPDATE, (*values[_KEY_LENGTH:], now, *record.dmc))
            self._remember(connection, idempotency_key, "upsert", record.dmc, outcome.value, now)
        return outcome

    def withdraw(self, dmc: DeviceModelCombination, *, idempotency_key: str, attempt: int = 1) -> bool:
        now = utc_text(self._clock())
        with self._db.write() as connection:
            seen = self._seen(connection, idempotency_key)
            if seen is not None:
                return attempt > 1 and seen == "withdrawn"
            withdrawn_status = InventoryStatus.WITHDRAWN.value
            cursor = connection.execute(_WITHDRAW, (withdrawn_status, now, withdrawn_status, *dmc))
            withdrawn = cursor.rowcount == 1
            outcome = "withdrawn" if withdrawn else "not loaded or already withdrawn"
            self._remember(connection, idempotency_key, "withdraw", dmc, outcome, now)
        return withdrawn

    def get(self, dmc: DeviceModelCombination) -> InventoryRecord | None:
        with self._db.read() as connection:
            return self._select(connection, dmc)

    def all(self) -> list[InventoryRecord]:
        """Every record, whatever its status, sorted by device model combination."""
        with self._db.read() as connection:
            rows = connection.execute(_SELECT_ALL).fetchall()
        return [_record(row) for row in rows]

    def active_from(self, entry_ids: Iterable[str]) -> list[InventoryRecord]:
        """The active records loaded from any of ``entry_ids``, sorted by combination, found by an index
        (``FindsByEntry``): a withdrawal reads what it withdraws, not the whole register."""
        wanted = json.dumps(sorted(set(entry_ids)))
        with self._db.read() as connection:
            rows = connection.execute(_SELECT_ACTIVE_FROM, (wanted, InventoryStatus.ACTIVE.value)).fetchall()
        return [_record(row) for row in rows]

    @staticmethod
    def _select(connection: sqlite3.Connection, dmc: DeviceModelCombination) -> InventoryRecord | None:
        row = connection.execute(_SELECT_ONE, tuple(dmc)).fetchone()
        return None if row is None else _record(row)

    @staticmethod
    def _seen(connection: sqlite3.Connection, idempotency_key: str) -> str | None:
        """The outcome kept for a key already used, or None."""
        row = connection.execute(_SEEN, (idempotency_key,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _remember(
        connection: sqlite3.Connection,
        idempotency_key: str,
        operation: str,
        dmc: DeviceModelCombination,
        outcome: str,
        now: str,
    ) -> None:
        connection.execute(_REMEMBER, (idempotency_key, operation, dmc.key, outcome, now))


def _record(row: tuple[str, ...]) -> InventoryRecord:
    return InventoryRecord.model_validate(dict(zip(_FIELDS, row, strict=True)))

"""What the bridge knows of the list subscription it made: its id, and a fingerprint of its client state.

Graph keeps the client state a subscription was made with, never lists it, and a renewal cannot change
it. So that upkeep can tell a subscription made with the configured state from one made before the state
was rotated, the bridge keeps, per SharePoint list, the id of the subscription it made and a salted
SHA-256 of the state it made it with: never the state itself (no secrets in storage). Two stores here
(in memory, the home's SQLite file); Azure keeps the record in a table (``adapters.azure_storage``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Protocol

from adapters.embedded.sqlite import SqliteStore, utc_text


@dataclass(frozen=True)
class SubscriptionRecord:
    """The subscription the bridge made for a list, and a fingerprint of the client state it sent."""

    subscription_id: str
    state_salt: str  # hex, random per record
    state_fingerprint: str  # hex SHA-256 of the salt's bytes then the client state's UTF-8

    @classmethod
    def of(cls, subscription_id: str, client_state: str) -> SubscriptionRecord:
        salt = secrets.token_hex(16)
        return cls(subscription_id, salt, _fingerprint(salt, client_state))

    def made_with(self, client_state: str) -> bool:
        """Whether the subscription was made with ``client_state`` (compared in constant time)."""
        try:
            expected = _fingerprint(self.state_salt, client_state)
        except ValueError:  # a salt that is not hex: a damaged record vouches for nothing
            return False
        return hmac.compare_digest(expected, self.state_fingerprint)


def _fingerprint(salt: str, client_state: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + client_state.encode()).hexdigest()


class SubscriptionRecords(Protocol):
    """The ``SubscriptionRecord`` per SharePoint list id."""

    def get(self, list_id: str) -> SubscriptionRecord | None: ...

    def set(self, list_id: str, record: SubscriptionRecord) -> None: ...


class InMemorySubscriptionRecords:
    """Records in a dict: for tests and one-shot runs."""

    def __init__(self) -> None:
        self._records: dict[str, SubscriptionRecord] = {}
        self._lock = threading.Lock()

    def get(self, list_id: str) -> SubscriptionRecord | None:
        with self._lock:
            return self._records.get(list_id)

    def set(self, list_id: str, record: SubscriptionRecord) -> None:
        with self._lock:
            self._records[list_id] = record


class SqliteSubscriptionRecords(SqliteStore):
    """Records in the bridge's SQLite file (table ``graph_subscriptions``)."""

    SCHEMA_COMPONENT: ClassVar[str] = "graph_subscriptions"
    SCHEMA_VERSION: ClassVar[int] = 1
    SCHEMA: ClassVar[tuple[str, ...]] = (
        """
        CREATE TABLE IF NOT EXISTS graph_subscriptions (
            list_id           TEXT PRIMARY KEY,
            subscription_id   TEXT NOT NULL,
            state_salt        TEXT NOT NULL,
            state_fingerprint TEXT NOT NULL,
            updated_at        TEXT NOT NULL
        )
        """,
    )

    def get(self, list_id: str) -> SubscriptionRecord | None:
        with self.database.read() as connection:
            row = connection.execute(
                "SELECT subscription_id, state_salt, state_fingerprint FROM graph_subscriptions "
                "WHERE list_id = ?",
                (list_id,),
            ).fetchone()
        return None if row is None else SubscriptionRecord(str(row[0]), str(row[1]), str(row[2]))

    def set(self, list_id: str, record: SubscriptionRecord) -> None:
        with self.database.write() as connection:
            connection.execute(
                "INSERT INTO graph_subscriptions "
                "(list_id, subscription_id, state_salt, state_fingerprint, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (list_id) DO UPDATE SET "
                "subscription_id = excluded.subscription_id, state_salt = excluded.state_salt, "
                "state_fingerprint = excluded.state_fingerprint, updated_at = excluded.updated_at",
                (
                    list_id,
                    record.subscription_id,
                    record.state_salt,
                    record.state_fingerprint,
                    utc_text(datetime.now(UTC)),
                ),
            )

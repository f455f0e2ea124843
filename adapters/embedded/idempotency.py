"""``SqliteIdempotencyStore``: results of side effects already made, by idempotency key."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from adapters.embedded.sqlite import BridgeDatabase, SqliteStore, StrPath, utc_text

# ``json.dumps`` with these options builds an encoder for every call: one serves every ``put``.
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False)


class SqliteIdempotencyStore(SqliteStore):
    """The embedded ``IdempotencyStore``: the first ``put`` for a key wins, later ones change nothing.

    Results are kept as JSON (``json.dumps``, no NaN): anything else is refused with ``TypeError`` or
    ``ValueError`` rather than stored in a form that would read back differently.
    """

    SCHEMA_COMPONENT = "idempotency"
    SCHEMA_VERSION = 1
    SCHEMA = (
        """
        CREATE TABLE IF NOT EXISTS idempotency (
            key       TEXT PRIMARY KEY,
            result    TEXT NOT NULL,
            stored_at TEXT NOT NULL
        )
        """,
    )

    def __init__(
        self, database: BridgeDatabase | StrPath, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(database)
        self._clock = clock or (lambda: datetime.now(UTC))

    def get(self, key: str) -> dict[str, Any] | None:
        with self._db.read() as connection:
            row = connection.execute("SELECT result FROM idempotency WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        result: dict[str, Any] = json.loads(row[0])
        return result

    def put(self, key: str, result: dict[str, Any]) -> bool:
        document = _ENCODER.encode(result)
        cursor = self._db.write_one(
            "INSERT OR IGNORE INTO idempotency (key, result, stored_at) VALUES (?, ?, ?)",
            (key, document, utc_text(self._clock())),
        )
        return cursor.rowcount == 1

"""``OutboxJournal``: the outbox's durable record, a table in the same SQLite file as the run history.

Why it exists: a message counts as sent once the engine records its idempotency key, so after a crash
the record must never be there without the message. For a file alone that takes an fsync before the
record is written, about half a millisecond to a millisecond per message on an ordinary disk (a fifth
of a case's time). A row committed to the same SQLite file before the record needs none: the two are
ordered, not made durable (``synchronous=NORMAL`` syncs at checkpoints), and SQLite's write-ahead log
is replayed in order up to its last whole commit, so a power cut may lose both, or the record alone,
never the message alone. The file is written after the commit without an fsync; the journal's bytes
decide what it holds (``OutboxFolder.write_once``), and ``OutboxFolder.repair`` writes again, at
start, any file a power cut lost or cut short.

The journal must be on the same ``BridgeDatabase`` as the idempotency store: two SQLite files give no
order between them. Messages are kept as the bytes written (a sent-items folder), one row per file, for
as long as the home: a file moved or deleted from the outbox comes back at the next start.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from adapters.embedded.sqlite import BridgeDatabase, SqliteStore, utc_text


class OutboxJournal(SqliteStore):
    """Each outbox file's bytes by folder and file name; the first writer of a name wins."""

    SCHEMA_COMPONENT = "outbox"
    SCHEMA_VERSION = 1
    SCHEMA = (
        """
        CREATE TABLE IF NOT EXISTS outbox_messages (
            folder    TEXT NOT NULL,
            name      TEXT NOT NULL,
            size      INTEGER NOT NULL,
            content   BLOB NOT NULL,
            stored_at TEXT NOT NULL,
            PRIMARY KEY (folder, name)
        )
        """,
    )

    def __init__(self, database: BridgeDatabase, *, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(database)
        self._clock = clock or (lambda: datetime.now(UTC))

    def keep(self, folder: str, name: str, content: bytes) -> tuple[bytes, bool]:
        """Commit ``content`` as the file's bytes unless some are kept already; returns the bytes kept
        and whether they are this call's."""
        row = (folder, name, len(content), content, utc_text(self._clock()))
        with self._db.write() as connection:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO outbox_messages (folder, name, size, content, stored_at) "
                "VALUES (?, ?, ?, ?, ?)",
                row,
            )
            if cursor.rowcount == 1:
                return content, True
            (kept,) = connection.execute(
                "SELECT content FROM outbox_messages WHERE folder = ? AND name = ?", (folder, name)
            ).fetchone()
        return bytes(kept), False

    def sizes(self, folder: str) -> dict[str, int]:
        """Every file the folder should hold, with its size in bytes."""
        with self._db.read() as connection:
            rows = connection.execute(
                "SELECT name, size FROM outbox_messages WHERE folder = ?", (folder,)
            ).fetchall()
        return {str(name): int(size) for name, size in rows}

    def content(self, folder: str, name: str) -> bytes | None:
        with self._db.read() as connection:
            row = connection.execute(
                "SELECT content FROM outbox_messages WHERE folder = ? AND name = ?", (folder, name)
            ).fetchone()
        return None if row is None else bytes(row[0])

"""Where a list's Graph delta link is kept between reads: the ``DeltaLinkStore`` port and two stores.

A delta link is Graph's bookmark: the next read with it returns only what changed since. Losing it
costs one full read (intake deduplicates by response id), so the store is small and simple.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import ClassVar, Protocol

from adapters.embedded.sqlite import SqliteStore, utc_text


class DeltaLinkStore(Protocol):
    """The last ``@odata.deltaLink`` per SharePoint list id."""

    def get(self, list_id: str) -> str | None: ...

    def set(self, list_id: str, delta_link: str) -> None: ...

    def forget(self, list_id: str) -> None:
        """Drop the link: the next read starts from a fresh delta (everything again)."""
        ...


class InMemoryDeltaLinkStore:
    """Delta links in a dict: for tests and one-shot runs."""

    def __init__(self) -> None:
        self._links: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, list_id: str) -> str | None:
        with self._lock:
            return self._links.get(list_id)

    def set(self, list_id: str, delta_link: str) -> None:
        with self._lock:
            self._links[list_id] = delta_link

    def forget(self, list_id: str) -> None:
        with self._lock:
            self._links.pop(list_id, None)


class SqliteDeltaLinkStore(SqliteStore):
    """Delta links in the bridge's SQLite file (table ``graph_delta_links``)."""

    SCHEMA_COMPONENT: ClassVar[str] = "graph_delta_links"
    SCHEMA_VERSION: ClassVar[int] = 1
    SCHEMA: ClassVar[tuple[str, ...]] = (
        """
        CREATE TABLE IF NOT EXISTS graph_delta_links (
            list_id    TEXT PRIMARY KEY,
            delta_link TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """,
    )

    def get(self, list_id: str) -> str | None:
        with self.database.read() as connection:
            row = connection.execute(
                "SELECT delta_link FROM graph_delta_links WHERE list_id = ?", (list_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def set(self, list_id: str, delta_link: str) -> None:
        with self.database.write() as connection:
            connection.execute(
                "INSERT INTO graph_delta_links (list_id, delta_link, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (list_id) DO UPDATE SET delta_link = excluded.delta_link, "
                "updated_at = excluded.updated_at",
                (list_id, delta_link, utc_text(datetime.now(UTC))),
            )

    def forget(self, list_id: str) -> None:
        with self.database.write() as connection:
            connection.execute("DELETE FROM graph_delta_links WHERE list_id = ?", (list_id,))

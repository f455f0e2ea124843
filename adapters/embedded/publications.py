"""``SqlitePublicationStore``: every distinct CPL publication seen, keyed by the raw file's SHA-256."""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import TypeAdapter

from adapters.embedded.sqlite import BridgeDatabase, SqliteStore, StrPath, utc_text
from flows.domain.cpl import CplEntry, CplPublication
from flows.errors import BadInput
from flows.ports import StoredPublication

_INSERT = """
    INSERT OR IGNORE INTO publications
        (source_sha256, source_name, published_at, fetched_at, fetched_order, source, row_count, entries)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT = "SELECT source_sha256, source_name, published_at, fetched_at, source, entries FROM publications"
_LATEST_SHA256 = "SELECT source_sha256 FROM publications ORDER BY fetched_order DESC, rowid DESC LIMIT 1"
_BY_SHA256 = _SELECT + " WHERE source_sha256 = ?"
_ENTRIES: TypeAdapter[tuple[CplEntry, ...]] = TypeAdapter(tuple[CplEntry, ...])


class SqlitePublicationStore(SqliteStore):
    """The embedded ``PublicationStore``. ``latest()`` is the one fetched last (ties: the one added last).

    Construct with a shared ``BridgeDatabase`` or a file path (see ``SqliteStore``).
    """

    SCHEMA_COMPONENT = "publications"
    SCHEMA_VERSION = 1
    SCHEMA = (
        """
        CREATE TABLE IF NOT EXISTS publications (
            source_sha256 TEXT PRIMARY KEY,
            source_name   TEXT NOT NULL,
            published_at  TEXT,
            fetched_at    TEXT NOT NULL,
            fetched_order TEXT NOT NULL,
            source        TEXT NOT NULL,
            row_count     INTEGER NOT NULL,
            entries       TEXT NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS publications_by_fetch ON publications (fetched_order)",
        """
        CREATE TABLE IF NOT EXISTS raw_publications (
            sha256 TEXT PRIMARY KEY,
            data   BLOB NOT NULL
        )
        """,
    )

    def add_raw(self, sha256: str, data: bytes) -> bool:
        """Keep a raw CPL file by its SHA-256 (checked against ``data``); False if it is kept already."""
        if hashlib.sha256(data).hexdigest() != sha256:
            raise BadInput(f"the raw file's SHA-256 is not {sha256}")
        with self._db.write() as connection:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO raw_publications (sha256, data) VALUES (?, ?)", (sha256, data)
            )
            return cursor.rowcount == 1

    def get_raw(self, sha256: str) -> bytes | None:
        with self._db.read() as connection:
            query = "SELECT data FROM raw_publications WHERE sha256 = ?"
            row = connection.execute(query, (sha256,)).fetchone()
        return None if row is None else bytes(row[0])

    def add(self, publication: CplPublication, *, fetched_at: datetime, source: str) -> bool:
        published_at = None if publication.published_at is None else publication.published_at.isoformat()
        with self._db.write() as connection:
            cursor = connection.execute(
                _INSERT,
                (
                    publication.source_sha256,
                    publication.source_name,
                    published_at,
                    fetched_at.isoformat(),  # as given, time zone included, for an exact round trip
                    utc_text(fetched_at),  # UTC, fixed width: what ``latest()`` orders by
                    source,
                    len(publication.entries),
                    _ENTRIES.dump_json(publication.entries).decode(),
                ),
            )
            return cursor.rowcount == 1

    def __init__(self, database: BridgeDatabase | StrPath) -> None:
        super().__init__(database)
        self._parsed: dict[str, StoredPublication] = {}

    def latest(self) -> StoredPublication | None:
        # Every case assessment asks for the latest publication: look up its hash (cheap) and
        # parse its entries only once. Publications never change once kept, so the cache holds.
        with self._db.read() as connection:
            row = connection.execute(_LATEST_SHA256).fetchone()
        return None if row is None else self.get(row[0])

    def get(self, source_sha256: str) -> StoredPublication | None:
        cached = self._parsed.get(source_sha256)
        if cached is None:
            cached = self._one(_BY_SHA256, (source_sha256,))
            if cached is not None:
                self._parsed = {source_sha256: cached}  # keep one: the latest is what is asked for
        return cached

    def _one(self, query: str, parameters: tuple[str, ...]) -> StoredPublication | None:
        with self._db.read() as connection:
            row = connection.execute(query, parameters).fetchone()
        if row is None:
            return None
        sha256, name, published_at, fetched_at, source, entries = row
        publication = CplPublication(
            source_sha256=sha256,
            source_name=name,
            published_at=None if published_at is None else datetime.fromisoformat(published_at),
            entries=_ENTRIES.validate_json(entries),
        )
        return StoredPublication(
            publication=publication, fetched_at=datetime.fromisoformat(fetched_at), source=source
        )

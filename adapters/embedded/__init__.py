"""Embedded (single-machine) implementations of the state ports and the SMI, on one SQLite file.

``BridgeDatabase.in_home(home)`` opens ``<home>/bridge.sqlite3``; every store takes that shared
database (which its opener closes) or a file path of its own (closed by the store's ``close()``).
"""

from adapters.embedded.cases import SqliteCaseStore
from adapters.embedded.idempotency import SqliteIdempotencyStore
from adapters.embedded.inventory import SqliteInventory
from adapters.embedded.publications import SqlitePublicationStore
from adapters.embedded.sqlite import DEFAULT_FILE_NAME, BridgeDatabase, SchemaMismatch

__all__ = [
    "DEFAULT_FILE_NAME",
    "BridgeDatabase",
    "SchemaMismatch",
    "SqliteCaseStore",
    "SqliteIdempotencyStore",
    "SqliteInventory",
    "SqlitePublicationStore",
]

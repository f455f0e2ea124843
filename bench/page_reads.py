"""Which statements make SQLite read pages again when two workers share one home: counts, not times.

SQLite empties a connection's page cache whenever another connection committed since its last
transaction, so with two worker processes nearly every transaction reads afresh each page it
touches (page 1, then every B-tree level of every table and index), from the WAL with one
``pread64`` each. ``strace -f -c`` counts them but cannot say whose they are; this drains the bench
cases in one process, makes a second connection commit before each transaction the drain begins (as
the other worker would), and reads SQLite's own count of cache misses (``SQLITE_DBSTATUS_CACHE_MISS``,
through ``ctypes``: Python's ``sqlite3`` does not expose it) around every statement.
Prints the statements by page reads a case, then one JSON line: {"bench": "page_reads", "cases":
..., "page_reads": ..., "by_statement": {...}}, each a case.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import re
import sqlite3
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.embedded import sqlite as embedded
from bench.engine import NOW, synthetic
from flows.bootstrap import bootstrap
from flows.cli import positive_number
from flows.domain.cpl import CplPublication
from flows.service import Message
from flows.settings import Settings

_CACHE_MISS = 8  # SQLITE_DBSTATUS_CACHE_MISS
_LITERALS = re.compile(r"'(?:[^']|'')*'|\bx'[0-9a-fA-F]*'|(?<![\w.])-?\d+(?:\.\d+)?\b")


class CounterUnavailable(RuntimeError):
    """This Python's ``sqlite3`` cannot be counted: its SQLite is not a shared library it can find, or
    its connection object is laid out otherwise than CPython 3.11's."""


class _Misses:
    """SQLite's cache misses of one connection, found through its C handle."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        library = ctypes.CDLL(_sqlite_library())
        self._status = library.sqlite3_db_status
        self._status.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
        ]
        name = library.sqlite3_db_filename
        name.argtypes, name.restype = [ctypes.c_void_p, ctypes.c_char_p], ctypes.c_char_p
        # CPython's connection object holds its ``sqlite3 *`` right after the object header; checked
        # against the file's name, so another layout fails here instead of counting nonsense.
        self._handle = ctypes.c_void_p.from_address(id(connection) + object.__basicsize__).value
        (path,) = connection.execute("SELECT file FROM pragma_database_list WHERE name = 'main'").fetchone()
        if self._handle is None or name(self._handle, b"main") != str(path).encode():
            raise CounterUnavailable("cannot find the SQLite handle of a connection in this Python")

    def __call__(self) -> int:
        current, highest = ctypes.c_int(), ctypes.c_int()
        if self._status(self._handle, _CACHE_MISS, ctypes.byref(current), ctypes.byref(highest), 0):
            raise RuntimeError("sqlite3_db_status failed")
        return current.value


def _sqlite_library() -> str:
    """The shared SQLite library this process's ``sqlite3`` is linked to (not one ctypes finds first)."""
    maps = Path("/proc/self/maps").read_text().splitlines()
    found = [line.split()[-1] for line in maps if "libsqlite3" in line]
    if not found:
        raise CounterUnavailable("this Python's sqlite3 is not linked to a shared libsqlite3")
    return found[0]


class _Counted:
    """The home's cache misses, in all and by statement (each a statement's, from its start to the next's)."""

    def __init__(self) -> None:
        self.by_statement: Counter[str] = Counter()
        self.executions: Counter[str] = Counter()
        self.misses: _Misses | None = None
        self.database: embedded.BridgeDatabase | None = None  # the home's, counted
        self._last: str | None = None
        self._seen = 0

    def total(self) -> int:
        assert self.misses is not None, "the home was not opened"
        return self.misses()

    def start(self) -> None:
        """Count from now on."""
        self.by_statement.clear()
        self.executions.clear()
        self._last, self._seen = None, self.total()

    def traced(self, statement: str) -> None:
        now = self.total()
        if self._last is not None:
            self.by_statement[self._last] += now - self._seen
        self._seen, self._last = now, " ".join(_LITERALS.sub("?", statement).split())
        self.executions[self._last] += 1


@contextmanager
def _counted(*, another_writer: bool) -> Iterator[_Counted]:
    """Count the home's misses; ``another_writer``: with a second connection committing before every
    write transaction (once the writers' lock is held, as the other worker's commit ends just before)
    and every read that begins one."""
    counted = _Counted()
    other: list[sqlite3.Connection] = []
    opened, enter_lock, enter_read = (
        embedded.BridgeDatabase.__init__,
        embedded._WriterLock.__enter__,
        embedded._Reading.__enter__,
    )

    def commit_elsewhere() -> None:
        for connection in other:
            connection.execute("INSERT OR REPLACE INTO bench_other_writer VALUES (1, random())")

    def open_counted(database: embedded.BridgeDatabase, *args: Any, **kwargs: Any) -> None:
        opened(database, *args, **kwargs)
        if counted.misses is None and database.path.name == embedded.DEFAULT_FILE_NAME:
            counted.misses, counted.database = _Misses(database._connection), database
            database._connection.set_trace_callback(counted.traced)
            connection = sqlite3.connect(database.path, isolation_level=None, timeout=10)
            connection.execute(
                "CREATE TABLE IF NOT EXISTS bench_other_writer (k INTEGER PRIMARY KEY, v INTEGER)"
            )
            if another_writer:
                other.append(connection)
            else:
                connection.close()

    def lock_then_commit_elsewhere(lock: embedded._WriterLock) -> None:
        enter_lock(lock)
        commit_elsewhere()

    def read_after_a_commit_elsewhere(reading: embedded._Reading) -> sqlite3.Connection:
        connection = enter_read(reading)
        if not connection.in_transaction:
            commit_elsewhere()
        return connection

    embedded.BridgeDatabase.__init__ = open_counted  # type: ignore[method-assign, assignment]
    embedded._WriterLock.__enter__ = lock_then_commit_elsewhere  # type: ignore[method-assign]
    embedded._Reading.__enter__ = read_after_a_commit_elsewhere  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        embedded.BridgeDatabase.__init__ = opened  # type: ignore[method-assign]
        embedded._WriterLock.__enter__ = enter_lock  # type: ignore[method-assign]
        embedded._Reading.__enter__ = enter_read  # type: ignore[method-assign]
        for connection in other:
            connection.close()


@dataclass(frozen=True)
class PageReads:
    """What a drain read, each a case: pages in all, and pages and executions by statement (values
    replaced by ``?``); and the depth of each table's and index's B-tree at the end."""

    total: float
    by_statement: dict[str, float]
    executions: dict[str, float]
    depths: dict[str, int]


def page_reads(count: int, *, another_writer: bool = True) -> PageReads:
    """The page reads of a drain of ``count`` cases (see the module's docstring)."""
    made = [synthetic(index) for index in range(count)]
    entries = tuple(entry for _, emergency, previous in made for entry in (previous, emergency))
    publication = CplPublication(source_sha256="bench", source_name="bench.xlsx", entries=entries)
    with (
        tempfile.TemporaryDirectory(prefix="bench-pages-") as folder,
        _counted(another_writer=another_writer) as counted,
        bootstrap(Settings(home=Path(folder)), clock=lambda: NOW) as app,
    ):
        app.publications.add(publication, fetched_at=NOW, source="bench")
        for response, _, _ in made:
            body = {"response_id": str(response["responseId"]), "payload": response}
            app.bridge.submit(Message(type="form_response", body=body))
        counted.start()
        before = counted.total()
        app.bridge.drain()
        counted.traced("")  # the last statement's count ends here
        total = counted.total() - before
        assert counted.database is not None
        with counted.database.read() as connection:
            # dbstat's path: "/" for a root, "/000/" for its first child...; each "/" a level.
            depths = connection.execute(
                "SELECT name, max(length(path) - length(replace(path, '/', ''))) FROM dbstat "
                "WHERE pagetype != 'overflow' GROUP BY name"
            ).fetchall()
    return PageReads(
        total=total / count,
        by_statement={statement: reads / count for statement, reads in counted.by_statement.most_common()},
        executions={statement: runs / count for statement, runs in counted.executions.items() if statement},
        depths={str(name): int(depth) for name, depth in depths},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--cases", type=positive_number, default=1000, help="(default: 1000, as bench/engine.py)"
    )
    args = parser.parse_args(argv)
    found = page_reads(args.cases)
    total, by_statement = found.total, found.by_statement
    print(f"{total:.1f} page reads a case (reads, executions a case, statement)")
    for statement, reads in by_statement.items():
        print(f"{reads:7.2f} {found.executions.get(statement, 0):6.2f}  {statement[:110]}")
    print(
        json.dumps(
            {
                "bench": "page_reads",
                "cases": args.cases,
                "page_reads": round(total, 1),
                "by_statement": {k: round(v, 2) for k, v in by_statement.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

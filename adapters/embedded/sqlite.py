"""One SQLite file for the bridge's embedded state, opened the same way by every store.

Threads: the flow engine may run for-each branches in threads, so a ``BridgeDatabase`` holds **one**
connection opened with ``check_same_thread=False`` and serialises every use of it with a lock. Per-thread
connections would let readers run in parallel, but they cannot be closed from the thread that owns the
database (a worker thread's connection lingers until that thread dies) and SQLite admits one writer at
a time anyway; the embedded bridge is small enough that one guarded connection costs nothing. Two
``BridgeDatabase`` objects (two processes, or two in one process) on the same file are still safe: WAL
lets them read while one writes, and the busy timeout makes a writer wait for the other's transaction.

Writes run in ``BEGIN IMMEDIATE`` transactions, so a read-then-write never fails half-way with
``SQLITE_BUSY``: the write lock is taken (waiting up to the busy timeout) before anything is read.
A write that is one statement (``write_one``) runs on its own instead: SQLite takes the write lock
at the start of such a statement the same way, and the statement is atomic by itself.

Processes writing to one file (``flows.workers``) queue for it on an advisory lock beside it
(``<file>.writer``, ``flock``) before ``BEGIN IMMEDIATE``. SQLite's own busy handler polls, sleeping a
millisecond and more between tries, while a transaction here takes a fraction of one; with two workers
that sleeping cost more than the second worker gave. A blocked ``flock`` is woken as soon as the lock
is released. Other programs on the file (the ``sqlite3`` shell) still meet the busy timeout.

Checkpoints (copying the WAL back into the file, with two fsyncs) run after every ``CHECKPOINT_EVERY``
commits of a connection, once its transaction is over and the advisory lock released, and when a
connection that committed since its last one closes. SQLite's own automatic checkpoint runs inside the
commit that crosses its threshold, so every other worker waited for those fsyncs too (on an ordinary
disk they took a fifth of the time the lock was held).

Every ``BridgeDatabase`` also holds a shared ``flock`` on ``<file>.users`` while it is open, so that a
process can tell whether it is the file's only user (``alone()``): the outbox's repair at start must
not take a live worker's message, journaled a moment before its file is written, for one a crash lost.

A process forked while databases are open (``flows.workers`` forks its workers) lets go of them in the
child at once (``_let_go_after_fork``): the child's copies are closed without unlocking anything, and
the child opens its own. Kept open, the copy's lock bookkeeping (SQLite's, per process) made the
child's own connection believe it held locks only the parent held, and the child's copy of a lock
file kept the parent's ``flock``: a child outliving a killed parent then lost commits to the next
command's clean-up, or hung every later writer.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self, TypeAlias

try:
    import fcntl
except ImportError:  # Windows: writers meet SQLite's busy timeout alone
    fcntl = None  # type: ignore[assignment]

StrPath: TypeAlias = str | os.PathLike[str]

_log = logging.getLogger(__name__)

DEFAULT_FILE_NAME = "bridge.sqlite3"
DEFAULT_BUSY_TIMEOUT = 10.0  # seconds
CHECKPOINT_EVERY = 1000  # commits of one connection between its checkpoints (see the docstring)

_SCHEMA_VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_versions (
    component  TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    applied_at TEXT NOT NULL
)
"""


class SchemaMismatch(RuntimeError):
    """The file was written by a different schema version than this code knows."""


class BridgeDatabase:
    """A SQLite file in WAL mode, shared by the embedded stores; close it when done."""

    def __init__(self, path: StrPath, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._commits = 0
        self._depth = 0  # nesting of ``transaction()`` in the thread holding the lock
        self._after_commit: list[Callable[[], None]] = []  # for the open ``transaction()`` (``after_commit``)
        # isolation_level=None: no implicit transactions; ``write()`` opens them explicitly.
        self._connection = sqlite3.connect(
            self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._writers = _WriterLock(None)
        self._users = _Users(None)
        try:
            self._writers = _WriterLock.beside(self.path)
            self._users = _Users.beside(self.path)  # waits while another process is alone() on it
            self._configure(busy_timeout)
            with self.write() as connection:
                connection.execute(_SCHEMA_VERSIONS)
        except BaseException:
            self._connection.close()
            self._writers.close()
            self._users.close()
            raise
        _OPEN.add(self)

    @classmethod
    def in_home(cls, home: StrPath, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> BridgeDatabase:
        """The bridge's usual file: ``<home>/bridge.sqlite3``."""
        return cls(Path(home) / DEFAULT_FILE_NAME, busy_timeout=busy_timeout)

    def _configure(self, busy_timeout: float) -> None:
        connection = self._connection
        (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"{self.path}: SQLite refused WAL journal mode (got {mode!r})")
        # NORMAL, not FULL: in WAL mode a commit is then durable against a crash of the process (the
        # WAL is in the operating system's hands), and the WAL is synced at each checkpoint. A power
        # cut may lose the last transactions before a checkpoint, but never corrupts the file; FULL
        # would add an fsync to every commit, and every action commits at least once.
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA wal_autocheckpoint=0")  # ``write`` checkpoints instead

    def read(self) -> AbstractContextManager[sqlite3.Connection]:
        """The connection, for queries; held exclusively by this thread meanwhile."""
        return _Reading(self)

    def write(self) -> AbstractContextManager[sqlite3.Connection]:
        """The connection inside a ``BEGIN IMMEDIATE`` transaction: committed, or rolled back on error.

        Inside ``transaction()`` the write is a savepoint of that transaction instead: undone alone if
        it fails, made durable when the whole transaction commits.
        """
        return _Writing(self, opens_transaction=False)

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction around several writes, by one store or several: they
        commit together (one commit instead of one each) or not at all. Other threads wait meanwhile,
        as they do for any write."""
        return _Writing(self, opens_transaction=True)

    def write_one(self, statement: str, parameters: Sequence[object] = ()) -> sqlite3.Cursor:
        """Run one writing statement: committed before this returns, or, inside ``transaction()``,
        part of that transaction. A statement is atomic in SQLite (one that fails changes nothing),
        so unlike ``write()`` it needs no savepoint inside a transaction, nor ``BEGIN IMMEDIATE``
        outside one: a statement that writes takes SQLite's write lock before it reads, waiting on
        the busy timeout, so it cannot fail half-way with ``SQLITE_BUSY`` either. The stores' most
        frequent writes (an action's record, an idempotency key) are one statement each, and the
        savepoint's two statements or the transaction's two cost as much as the statement itself."""
        with self._lock:
            connection = self._connection
            if self._depth:
                if not connection.in_transaction:
                    # SQLite ends a transaction itself on some errors (disk full, I/O, out of memory);
                    # a caller that caught one and went on would otherwise commit each statement alone.
                    raise sqlite3.OperationalError(
                        f"{self.path}: the transaction this write belongs to was rolled back by SQLite "
                        "after an earlier error; nothing more is written in it"
                    )
                return connection.execute(statement, parameters)
            with self._writers.held():
                cursor = connection.execute(statement, parameters)  # its own transaction (autocommit)
            self._committed()
            return cursor

    def after_commit(self, change: Callable[[], None]) -> None:
        """Call ``change`` (a store's update of what it keeps in memory) once what was just written is
        committed: now, outside ``transaction()``; inside one, when it commits, and never if it (or the
        savepoint the write belongs to) is rolled back. A store's memory of a write rolled back with a
        caller's transaction would otherwise outlive it."""
        with self._lock:  # another thread's transaction, if one is open, ends first
            if self._depth or self._connection.in_transaction:
                self._after_commit.append(change)
                return
        change()

    def _committed(self) -> None:
        """Count a commit, and checkpoint every ``CHECKPOINT_EVERY`` of them (outside the writers' lock)."""
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0:
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the WAL back into the file, after a commit: a failure here undoes no write, so it is
        logged, not raised (the next checkpoint, or SQLite's at the last close, does the work)."""
        try:
            # PASSIVE: copies what no reader still needs and waits for no one; writers go on.
            self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as error:
            _log.warning("%s: checkpoint failed after a commit (the commit stands): %s", self.path, error)

    def pragma(self, name: str) -> object:
        """The value of a read-only pragma such as ``journal_mode`` (for checks and tests)."""
        if not name.isidentifier():
            raise ValueError(f"not a pragma name: {name!r}")
        with self.read() as connection:
            row = connection.execute(f"PRAGMA {name}").fetchone()
        return None if row is None else row[0]

    def ensure_schema(
        self,
        component: str,
        version: int,
        statements: Iterable[str],
        migrations: Mapping[int, Sequence[str]] | None = None,
    ) -> None:
        """Create a component's tables if absent (idempotent) and record its schema version.

        ``migrations[n]`` takes the component's tables from version ``n`` to ``n + 1``; they run in
        one transaction with the rest. A file at a version with no path to this one (newer, or older
        than any migration) is refused with ``SchemaMismatch``: guessing would risk the data.
        """
        with self.write() as connection:
            row = connection.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (component,)
            ).fetchone()
            steps = migrations or {}
            while row is not None and row[0] < version and row[0] in steps:
                for statement in steps[row[0]]:
                    connection.execute(statement)
                connection.execute(
                    "UPDATE schema_versions SET version = ?, applied_at = ? WHERE component = ?",
                    (row[0] + 1, utc_text(datetime.now(UTC)), component),
                )
                row = (row[0] + 1,)
            if row is not None and row[0] != version:
                raise SchemaMismatch(
                    f"{self.path}: the {component} tables are at schema version {row[0]}, "
                    f"this code expects version {version}"
                )
            for statement in statements:
                connection.execute(statement)
            if row is None:
                connection.execute(
                    "INSERT INTO schema_versions (component, version, applied_at) VALUES (?, ?, ?)",
                    (component, version, utc_text(datetime.now(UTC))),
                )

    def schema_version(self, component: str) -> int | None:
        with self.read() as connection:
            row = connection.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (component,)
            ).fetchone()
        return None if row is None else int(row[0])

    def close(self) -> None:
        _OPEN.discard(self)
        with self._lock:
            if self._commits % CHECKPOINT_EVERY:  # commits since this connection's last checkpoint
                # SQLite checkpoints at the last connection's close only: a command that ran beside
                # a long-lived process (the console) would otherwise leave its commits in the WAL.
                self._checkpoint()
                self._commits = 0
            self._connection.close()
            self._writers.close()
            self._users.close()

    def _let_go_after_fork(self) -> None:
        """In a forked child: close this copy of the parent's database without touching the parent's.

        Closed only if it was idle at the fork (no thread of the parent held it): SQLite allows closing
        an inherited connection that had no write transaction, and rolling one back here would undo,
        in the shared memory of the WAL, the parent's own. A busy one is kept, unused, for the child's
        life. Either way the child's ``BridgeDatabase`` then refuses every use (a closed connection).
        The lock files are closed without ``LOCK_UN``: their ``flock`` belongs to the file description
        the parent shares, and unlocking here would unlock the parent."""
        idle = self._lock.acquire(blocking=False) and not self._connection.in_transaction
        if idle:
            self._connection.close()
        else:
            _NEVER_CLOSED.append(self._connection)
            self._connection = _closed_connection()
        self._lock = threading.RLock()  # the parent's may be held by a thread the child does not have
        self._writers.close()  # os.close: the parent's flock stays the parent's
        self._users.close()
        self._commits = 0  # no checkpoint at a close in the child

    def alone(self) -> AbstractContextManager[bool]:
        """Whether no other ``BridgeDatabase`` has this file open, held true until the block ends:
        one opening meanwhile waits for it. Always true where there is no ``flock`` (Windows)."""
        return self._users.alone()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class _Reading:
    """``BridgeDatabase.read()``: the connection, with the database's lock held."""

    __slots__ = ("_database",)

    def __init__(self, database: BridgeDatabase) -> None:
        self._database = database

    def __enter__(self) -> sqlite3.Connection:
        self._database._lock.acquire()
        return self._database._connection

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._database._lock.release()


class _Writing:
    """``BridgeDatabase.write()`` and ``transaction()``: a ``BEGIN IMMEDIATE`` transaction taken
    after the writers' lock, or a savepoint inside a transaction already open.

    A class rather than ``@contextmanager`` generators: every action of a flow writes, and the three
    nested generators (lock, transaction, savepoint) cost more than the statement they wrapped.
    """

    __slots__ = ("_database", "_held", "_mark", "_nested", "_opens")

    def __init__(self, database: BridgeDatabase, *, opens_transaction: bool) -> None:
        self._database = database
        # transaction(): the writes made inside it (``_depth``) join it as savepoints.
        self._opens = opens_transaction
        self._nested = False
        self._mark = 0  # how many ``after_commit`` changes were waiting when a savepoint began
        self._held: AbstractContextManager[None] | None = None

    def __enter__(self) -> sqlite3.Connection:
        database = self._database
        database._lock.acquire()
        try:
            connection = database._connection
            self._nested = database._depth > 0
            if self._nested:
                connection.execute("SAVEPOINT write")
                self._mark = len(database._after_commit)
            else:
                held = database._writers.held()
                held.__enter__()
                try:
                    connection.execute("BEGIN IMMEDIATE")
                except BaseException:
                    held.__exit__(None, None, None)
                    raise
                self._held = held
            if self._opens:
                database._depth += 1
        except BaseException:
            database._lock.release()
            raise
        return connection

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        database = self._database
        try:
            if self._opens:
                database._depth -= 1
            if self._nested:
                self._end_savepoint(database._connection, failed=kind is not None)
                if kind is not None:  # what the savepoint wrote is undone: so are the changes it asked for
                    del database._after_commit[self._mark :]
            else:
                self._end_transaction(database, failed=kind is not None)
        finally:
            database._lock.release()

    @staticmethod
    def _end_savepoint(connection: sqlite3.Connection, *, failed: bool) -> None:
        if failed:
            connection.execute("ROLLBACK TO write")
        connection.execute("RELEASE write")

    def _end_transaction(self, database: BridgeDatabase, *, failed: bool) -> None:
        connection, held = database._connection, self._held
        assert held is not None
        self._held = None
        changes, database._after_commit = database._after_commit, []
        try:
            if failed:
                connection.rollback()
                return
            try:
                connection.commit()
            except BaseException:
                # A commit can fail and leave the transaction open (a deferred constraint): it
                # would keep SQLite's write lock, and this connection could never write again.
                if connection.in_transaction:
                    connection.rollback()
                raise
        finally:
            held.__exit__(None, None, None)
        for change in changes:
            change()
        database._committed()  # after the writers' lock is released: a checkpoint keeps no one waiting


class _LockFile:
    """A file beside the database that processes ``flock``; a no-op without ``flock`` (Windows)."""

    def __init__(self, descriptor: int | None) -> None:
        self._descriptor = descriptor

    @staticmethod
    def _open(database: Path, suffix: str) -> int | None:
        if fcntl is None:
            return None
        return os.open(f"{database}.{suffix}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


class _WriterLock(_LockFile):
    """The advisory lock writers queue on (see the module's docstring)."""

    @classmethod
    def beside(cls, database: Path) -> _WriterLock:
        return cls(cls._open(database, "writer"))

    def held(self) -> AbstractContextManager[None]:
        return nullcontext() if self._descriptor is None else self

    # The lock itself is the context manager: ``held()`` runs for every write, and a generator-based
    # one cost a tenth of a small write.
    def __enter__(self) -> None:
        assert fcntl is not None and self._descriptor is not None
        fcntl.flock(self._descriptor, fcntl.LOCK_EX)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert fcntl is not None and self._descriptor is not None
        fcntl.flock(self._descriptor, fcntl.LOCK_UN)


class _Users(_LockFile):
    """A shared ``flock`` on ``<file>.users`` for as long as a database is open (see the module's
    docstring); ``alone()`` tries to turn it exclusive."""

    @classmethod
    def beside(cls, database: Path) -> _Users:
        descriptor = cls._open(database, "users")
        if descriptor is None or fcntl is None:
            return cls(None)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH)  # waits while a database open alone() holds it
        except BaseException:
            os.close(descriptor)
            raise
        return cls(descriptor)

    @contextmanager
    def alone(self) -> Iterator[bool]:
        descriptor = self._descriptor
        if descriptor is None or fcntl is None:
            yield fcntl is None
            return
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Linux drops the shared lock when a conversion fails: take it again.
            fcntl.flock(descriptor, fcntl.LOCK_SH)
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_SH)


class SqliteStore:
    """What the stores share: a database given, or a file path that the store opens and owns.

    A store closes only a database it opened itself; a shared ``BridgeDatabase`` is its owner's to close.
    """

    #: set by each store: its component name in ``schema_versions``, its version and its DDL
    SCHEMA_COMPONENT: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int]
    SCHEMA: ClassVar[tuple[str, ...]]
    MIGRATIONS: ClassVar[dict[int, tuple[str, ...]]] = {}

    def __init__(self, database: BridgeDatabase | StrPath) -> None:
        if isinstance(database, BridgeDatabase):
            self._db, self._owns_db = database, False
        else:
            self._db, self._owns_db = BridgeDatabase(database), True
        try:
            self._db.ensure_schema(self.SCHEMA_COMPONENT, self.SCHEMA_VERSION, self.SCHEMA, self.MIGRATIONS)
        except BaseException:
            self.close()
            raise

    @property
    def database(self) -> BridgeDatabase:
        return self._db

    # ``SharedTransactions`` (flows/engine/runs.py): stores on one database can write together.
    @property
    def transaction_scope(self) -> object:
        return self._db

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._db.transaction()

    def close(self) -> None:
        if self._owns_db:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


_OPEN: weakref.WeakSet[BridgeDatabase] = weakref.WeakSet()  # what a forked child lets go of
_NEVER_CLOSED: list[sqlite3.Connection] = []  # a busy parent's connections, copied by a fork


def _closed_connection() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:", check_same_thread=False)
    connection.close()
    return connection


def _let_go_after_fork() -> None:
    for database in list(_OPEN):
        try:
            database._let_go_after_fork()
        except (sqlite3.Error, OSError) as error:  # one copy that will not close leaves the others to do
            _log.warning("%s: a forked child could not let go of its copy: %s", database.path, error)
    _OPEN.clear()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_let_go_after_fork)


def utc_text(moment: datetime) -> str:
    """A fixed-width UTC text that sorts as time does; a naive ``moment`` is taken to be UTC."""
    if moment.tzinfo is not None and moment.tzinfo is not UTC:  # the stores' clocks give UTC: no conversion
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"

"""``SqliteWorkQueue``: the work queue on one machine, a table in the bridge's SQLite file.

It behaves as the Azure Storage queue does, so the flows cannot tell them apart:

- a message is written before ``put`` returns, so one a command queued (or a flow emitted) is not lost
  when the process dies before handling it: the next command's drain handles it;
- ``get`` leases the oldest visible message for ``visibility_timeout`` seconds and ``done`` deletes it;
  a message not acknowledged in time is delivered again, which is safe because its runs resume by
  message id. Several processes may drain one file at once (``flows.workers``): each lease is taken in
  a ``BEGIN IMMEDIATE`` transaction, so no two take the same message;
- leases held by a process that is gone (a command that crashed) are released when the queue is opened,
  so a newcomer who re-runs the command does not wait out the timeout. A lease names its owner's boot,
  pid namespace and start time (``adapters.embedded.processes``): a reused id, or one of another
  container sharing the home, is not taken for the owner;
- a message delivered ``max_dequeue_count`` times without being acknowledged, or one that cannot be
  read, moves to the poison table, kept for an operator, and ``get`` takes the next. ``on_poison`` then
  hears what it was (its id, type and flow, never its body): the bridge tells the operators, as the
  Functions app's poison-queue trigger does in Azure.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import ValidationError

from adapters.embedded.processes import current_owner, owner_is_gone, pid_is_running
from adapters.embedded.sqlite import BridgeDatabase, SqliteStore, StrPath
from flows.service import Message, PoisonedMessage, UnknownPoisoned

DEFAULT_VISIBILITY_TIMEOUT = 300.0  # seconds, as the Azure adapter's default
DEFAULT_MAX_DEQUEUE_COUNT = 5  # the Functions host's maxDequeueCount default


_log = logging.getLogger(__name__)

# The oldest visible message, leased: it shows its delivery count as it was before this delivery
# (RETURNING gives the row as updated). SQLite 3.35 or later (RETURNING).
_LEASE_OLDEST = """
    UPDATE work_queue
    SET visible_at = ?, dequeue_count = dequeue_count + 1, lease = ?, owner_pid = NULL, owner = ?
    WHERE position = (
        SELECT position FROM work_queue WHERE visible_at <= ? ORDER BY visible_at, position LIMIT 1
    )
    RETURNING position, message, dequeue_count - 1
"""


class SqliteWorkQueue(SqliteStore):
    """The embedded ``WorkQueue`` (see the module's docstring)."""

    SCHEMA_COMPONENT = "work_queue"
    SCHEMA_VERSION = 2
    MIGRATIONS: ClassVar[dict[int, tuple[str, ...]]] = {1: ("ALTER TABLE work_queue ADD COLUMN owner TEXT",)}
    SCHEMA = (
        """
        CREATE TABLE IF NOT EXISTS work_queue (
            position      INTEGER PRIMARY KEY AUTOINCREMENT,
            message_id    TEXT NOT NULL,
            message       TEXT NOT NULL,
            visible_at    REAL NOT NULL,
            dequeue_count INTEGER NOT NULL DEFAULT 0,
            lease         TEXT,
            owner_pid     INTEGER,  -- schema 1's owner; kept for leases a version-1 process took
            owner         TEXT      -- see adapters.embedded.processes
        )
        """,
        "CREATE INDEX IF NOT EXISTS work_queue_by_visibility ON work_queue (visible_at, position)",
        """
        CREATE TABLE IF NOT EXISTS work_queue_poison (
            position      INTEGER PRIMARY KEY,
            message_id    TEXT NOT NULL,
            message       TEXT NOT NULL,
            dequeue_count INTEGER NOT NULL,
            reason        TEXT NOT NULL,
            poisoned_at   REAL NOT NULL
        )
        """,
    )

    def __init__(
        self,
        database: BridgeDatabase | StrPath,
        *,
        visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
        max_dequeue_count: int = DEFAULT_MAX_DEQUEUE_COUNT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock``: wall-clock seconds, shared by every process on the file (not the bridge's clock,
        which a replay may fix)."""
        super().__init__(database)
        self._visibility_timeout = visibility_timeout
        self._max_dequeue_count = max_dequeue_count
        self._clock = clock
        self._leases: dict[str, list[tuple[int, str]]] = {}  # message id -> (position, lease) taken here
        self.on_poison: Callable[[dict[str, Any]], None] | None = None
        self._lock = threading.Lock()
        self._owner = current_owner()
        self.release_orphaned_leases()

    def put(self, message: Message) -> None:
        # One statement: committed alone, or part of the transaction open (an action's record's).
        self._db.write_one(
            "INSERT INTO work_queue (message_id, message, visible_at) VALUES (?, ?, ?)",
            (message.message_id, message.model_dump_json(), self._clock()),
        )

    def get(self) -> Message | None:
        """The oldest visible message, leased to this queue object; None when none is visible."""
        return self._take(acknowledged=[])

    def done(self, message: Message) -> None:
        """Delete what this queue object leased under the message's id; a lease that expired and was
        taken by another worker meanwhile is that worker's to acknowledge."""
        leases = self._leases_of(message)
        if not leases:
            return
        with self._db.write() as connection:
            connection.executemany("DELETE FROM work_queue WHERE position = ? AND lease = ?", leases)

    def done_then_get(self, message: Message, *, first: Callable[[], object] | None = None) -> Message | None:
        """``done(message)`` then ``get()``, in one transaction: a draining worker commits (and queues
        for the writers' lock) once per message instead of twice. ``first`` makes writes of its own to
        this file in that transaction, before the acknowledgement (the bridge: the end of the message's
        last run), so the message is never acknowledged without them."""
        return self._take(acknowledged=self._leases_of(message), first=first)

    def _leases_of(self, message: Message) -> list[tuple[int, str]]:
        with self._lock:
            return self._leases.pop(message.message_id, [])

    def _take(
        self, *, acknowledged: list[tuple[int, str]], first: Callable[[], object] | None = None
    ) -> Message | None:
        """Make ``first``'s writes, delete the ``acknowledged`` leases, then lease the oldest visible
        message, in one transaction."""
        while True:
            lease = uuid.uuid4().hex
            # One transaction (the other stores' writes ``first`` makes join it): select and lease in
            # one, so one taker; and what is acknowledged goes with what ``first`` wrote.
            with self._db.transaction() as connection:
                if first is not None:
                    first()
                    first = None  # a message poisoned below is told outside it, then the next taken
                # Read after ``first``: a message it queued (an event, with the record of the action
                # that emitted it) is visible from the moment it was put, and is leased here.
                now = self._clock()
                if acknowledged:
                    connection.executemany(
                        "DELETE FROM work_queue WHERE position = ? AND lease = ?", acknowledged
                    )
                    acknowledged = []
                # Found and leased in one statement (a message to poison is moved, lease and all,
                # below: its delivery count as found goes with it).
                until = now + self._visibility_timeout
                leased = connection.execute(_LEASE_OLDEST, (until, lease, self._owner, now)).fetchall()
                if not leased:  # (read to its end: the statement is over before the commit)
                    return None
                ((position, text, dequeue_count),) = leased
                message, reason = _read(text, dequeue_count, self._max_dequeue_count)
                if message is None:
                    _to_poison(connection, position, dequeue_count, reason, now)
            if message is None:
                if self.on_poison is not None:  # after the commit: the message is safe in the table
                    self._tell(_described(text, position), reason)
                continue
            with self._lock:
                self._leases.setdefault(message.message_id, []).append((position, lease))
            return message

    def _tell(self, described: dict[str, Any], reason: str) -> None:
        """Report a poisoning; a report that fails (the channel is down) is logged, and the drain goes
        on: the message is kept in the poison table, and ``drain`` counts it there."""
        assert self.on_poison is not None
        try:
            self.on_poison(described)
        except Exception as error:  # any failure of the alert is only logged
            _log.error(
                "message %s was given up on (%s) and kept in the poison table, but telling operators "
                "failed: %s: %s",
                described["message_id"], reason, type(error).__name__, error,
            )  # fmt: skip

    def waiting(self) -> bool:
        """Whether ``get`` would find a visible message now (leased ones are not counted)."""
        with self._db.read() as connection:
            row = connection.execute(
                "SELECT 1 FROM work_queue WHERE visible_at <= ? LIMIT 1", (self._clock(),)
            ).fetchone()
        return row is not None

    def pending(self) -> int:
        """Messages not yet acknowledged, visible or leased (poisoned ones are not counted)."""
        with self._db.read() as connection:
            (count,) = connection.execute("SELECT count(*) FROM work_queue").fetchone()
        return int(count)

    def poisoned(self) -> list[tuple[str, str]]:
        """The poison table: (message id, why), oldest first."""
        with self._db.read() as connection:
            rows = connection.execute(
                "SELECT message_id, reason FROM work_queue_poison ORDER BY position"
            ).fetchall()
        return [(str(message_id), str(reason)) for message_id, reason in rows]

    def poisoned_messages(self) -> list[PoisonedMessage]:
        """The poison table, oldest first: each message's id, type, flow, why and when (never its body)."""
        with self._db.read() as connection:
            rows = connection.execute(
                "SELECT position, message, dequeue_count, reason, poisoned_at FROM work_queue_poison "
                "ORDER BY position"
            ).fetchall()
        kept = []
        for position, text, dequeue_count, reason, poisoned_at in rows:
            described = _described(str(text), int(position))
            kept.append(
                PoisonedMessage(
                    message_id=described["message_id"],
                    type=described["type"],
                    flow=described["flow"],
                    reason=str(reason),
                    poisoned_at=datetime.fromtimestamp(float(poisoned_at), UTC),
                    dequeue_count=int(dequeue_count),
                )
            )
        return kept

    def requeue_poisoned(self, message_ids: Collection[str] | None = None) -> int:
        """Put poisoned messages back on the queue, delivery count reset (once their cause is fixed):
        those with these ids, or every one when None; returns how many. Moved in one transaction, so a
        message is in one table or the other. An id not in the poison table raises ``UnknownPoisoned``
        with nothing moved. An unreadable one goes straight back to poison on the next ``get``."""
        now = self._clock()
        with self._db.write() as connection:
            rows = connection.execute("SELECT position, message_id FROM work_queue_poison").fetchall()
            if message_ids is not None:
                unknown = set(message_ids) - {str(message_id) for _, message_id in rows}
                if unknown:
                    raise UnknownPoisoned(unknown)
                rows = [(position, message_id) for position, message_id in rows if message_id in message_ids]
            positions = sorted((int(position),) for position, _ in rows)
            connection.executemany(
                "INSERT INTO work_queue (message_id, message, visible_at) "
                "SELECT message_id, message, ? FROM work_queue_poison WHERE position = ?",
                [(now, position) for (position,) in positions],
            )
            connection.executemany("DELETE FROM work_queue_poison WHERE position = ?", positions)
        return len(positions)

    def forget_poisoned(self, message_ids: Collection[str]) -> int:
        """Delete the poisoned messages with these ids; how many. An id not in the poison table raises
        ``UnknownPoisoned`` with nothing deleted (one transaction)."""
        wanted = set(message_ids)
        with self._db.write() as connection:
            rows = connection.execute("SELECT position, message_id FROM work_queue_poison").fetchall()
            unknown = wanted - {str(message_id) for _, message_id in rows}
            if unknown:
                raise UnknownPoisoned(unknown)
            positions = [(int(position),) for position, message_id in rows if message_id in wanted]
            connection.executemany("DELETE FROM work_queue_poison WHERE position = ?", positions)
        return len(positions)

    def __len__(self) -> int:
        return self.pending()

    def release_orphaned_leases(self) -> None:
        """Make visible at once the messages leased by processes on this machine that are gone: at
        open, and by workers waiting for messages others hold (one of them may have died)."""
        with self._db.read() as connection:
            owners = connection.execute(
                "SELECT DISTINCT owner, owner_pid FROM work_queue WHERE lease IS NOT NULL"
            ).fetchall()
        gone_owners = [(owner,) for owner, _ in owners if owner is not None and owner_is_gone(owner)]
        gone_pids = [
            (pid,)
            for owner, pid in owners
            if owner is None and pid is not None and not pid_is_running(int(pid))
        ]
        if not gone_owners and not gone_pids:
            return
        release = "UPDATE work_queue SET visible_at = ?, lease = NULL, owner_pid = NULL, owner = NULL WHERE "
        now = self._clock()
        with self._db.write() as connection:
            connection.executemany(release + "owner = ?", [(now, *each) for each in gone_owners])
            connection.executemany(
                release + "owner IS NULL AND owner_pid = ?", [(now, *each) for each in gone_pids]
            )


def _read(text: str, dequeue_count: int, max_dequeue_count: int) -> tuple[Message | None, str]:
    """The message, or None and why it goes to poison."""
    if dequeue_count >= max_dequeue_count:
        return None, f"delivered {dequeue_count} times without being acknowledged"
    try:
        return Message.model_validate_json(text), ""
    except ValidationError as error:
        return None, f"unreadable: {error.errors()[0]['msg']}"


def _described(text: str, position: int) -> dict[str, Any]:
    """What operators are told of a poisoned message: what it was, never its body. ``poisoning``
    tells this poisoning from a later one of the same message (put back, it gets a new position)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return {
            "message_id": f"queue position {position}",
            "type": "unreadable",
            "flow": None,
            "poisoning": str(position),
        }
    return {
        "poisoning": str(position),
        "message_id": str(data.get("message_id") or f"queue position {position}"),
        "type": str(data.get("type")) if isinstance(data.get("type"), str) else "unreadable",
        "flow": data.get("flow") if isinstance(data.get("flow"), str) else None,
    }


def _to_poison(
    connection: sqlite3.Connection, position: int, dequeue_count: int, reason: str, now: float
) -> None:
    connection.execute(
        "INSERT INTO work_queue_poison (position, message_id, message, dequeue_count, reason, poisoned_at) "
        "SELECT position, message_id, message, ?, ?, ? FROM work_queue WHERE position = ?",
        (dequeue_count, reason, now, position),
    )
    connection.execute("DELETE FROM work_queue WHERE position = ?", (position,))

"""A process forked while a ``BridgeDatabase`` is open (``flows.workers`` forks its workers): the child
lets go of its copy at once, so its own connection holds its own locks, it keeps none of the parent's,
and the parent's work goes on untouched. Linux only (``/proc``); the bridge forks only there."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from adapters.embedded.sqlite import BridgeDatabase

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; the bridge forks on Linux only")

FORK = multiprocessing.get_context("fork")
GUARD = 60.0  # seconds: against a child that hangs, far above what a fork and an open take


def _locks_of(pid: int, inode: int) -> list[str]:
    """The POSIX locks process ``pid`` holds on the file with ``inode`` (type and range)."""
    held = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "POSIX" and fields[4] == str(pid) and int(fields[5].rsplit(":", 1)[1]) == inode:
            held.append(f"{fields[3]} {fields[6]}-{fields[7]}")
    return sorted(held)


def _opens_its_own(path: Path, ready: Connection, done: Connection) -> None:
    """In the child: open the database anew, say so, and keep it open until told to end."""
    database = BridgeDatabase(path)
    database.pragma("journal_mode")
    ready.send(os.getpid())
    done.recv()
    database.close()


def test_a_forked_child_holds_the_locks_of_its_own_connection_as_a_new_process_would(tmp_path: Path) -> None:
    """SQLite keeps its locks' bookkeeping per process; a child still holding the parent's copy took
    the parent's locks for its own and held none: once the parent died, the next command closing the
    home deleted the write-ahead log the child was committing to."""
    path = tmp_path / "bridge.sqlite3"
    with BridgeDatabase(path) as parent:
        parent.pragma("journal_mode")
        ours = {name: _locks_of(os.getpid(), os.stat(f"{path}{name}").st_ino) for name in ("", "-shm")}
        assert ours[""] and ours["-shm"]  # what any open connection holds, the parent's too
        ready_child, ready = FORK.Pipe(duplex=False)
        done, done_child = FORK.Pipe(duplex=False)
        child = FORK.Process(target=_opens_its_own, args=(path, ready, done))
        child.start()
        try:
            assert ready_child.poll(GUARD)
            pid = ready_child.recv()
            theirs = {name: _locks_of(pid, os.stat(f"{path}{name}").st_ino) for name in ("", "-shm")}
        finally:
            done_child.send("end")
            child.join(GUARD)
    assert child.exitcode == 0
    assert theirs == ours


def _descriptors_to(suffixes: tuple[str, ...], path: Path, answer: Connection) -> None:
    """In the child: which of the files ``path`` + suffix it has open, from its descriptor table."""
    targets = {f"{path}{suffix}" for suffix in suffixes}
    names = []
    for entry in Path("/proc/self/fd").iterdir():
        try:
            names.append(os.readlink(entry))
        except OSError:  # the listing's own descriptor, closed meanwhile
            continue
    answer.send(sorted(name for name in names if name in targets))


def test_a_forked_child_keeps_no_copy_of_the_parents_lock_files(tmp_path: Path) -> None:
    """A ``flock`` belongs to the open file a fork shares: the child's copy of ``.writer`` kept the
    parent's lock when the parent was killed holding it, and every later writer of the home waited
    for it forever."""
    path = tmp_path / "bridge.sqlite3"
    with BridgeDatabase(path):
        answer, answer_child = FORK.Pipe(duplex=False)
        child = FORK.Process(target=_descriptors_to, args=((".writer", ".users", ""), path, answer_child))
        child.start()
        assert answer.poll(GUARD)
        kept = answer.recv()
        child.join(GUARD)
    assert kept == []


def _uses_the_parents(database: BridgeDatabase, answer: Connection) -> None:
    """In the child: try the parent's database object; say what happened."""
    try:
        database.pragma("journal_mode")
    except sqlite3.ProgrammingError as error:
        answer.send(f"refused: {error}")
        return
    answer.send("used")


def test_the_parents_database_refuses_the_forked_child_even_when_a_thread_held_it_mid_transaction(
    tmp_path: Path,
) -> None:
    """Forked while another thread writes: the child must not roll that transaction back (closing the
    copy would, in the write-ahead log's shared memory), nor wait for a lock whose thread it does not
    have. The parent's transaction commits once the child is gone."""
    path = tmp_path / "bridge.sqlite3"
    with BridgeDatabase(path) as database:
        database.write_one("CREATE TABLE t (x INTEGER)")
        writing, forked = threading.Event(), threading.Event()

        def write_across_the_fork() -> None:
            with database.transaction() as connection:
                connection.execute("INSERT INTO t VALUES (1)")
                writing.set()
                forked.wait(GUARD)
                connection.execute("INSERT INTO t VALUES (2)")

        writer = threading.Thread(target=write_across_the_fork)
        writer.start()
        try:
            assert writing.wait(GUARD)
            answer, answer_child = FORK.Pipe(duplex=False)
            child = FORK.Process(target=_uses_the_parents, args=(database, answer_child))
            child.start()
            assert answer.poll(GUARD), "the child waited for the lock of a thread it does not have"
            said = answer.recv()
            child.join(GUARD)
        finally:
            forked.set()
            writer.join(GUARD)
        with database.read() as connection:
            rows = connection.execute("SELECT x FROM t ORDER BY x").fetchall()
    assert said.startswith("refused: ") and "closed database" in said
    assert child.exitcode == 0 and rows == [(1,), (2,)]
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_the_parents_idle_database_refuses_the_forked_child(tmp_path: Path) -> None:
    path = tmp_path / "bridge.sqlite3"
    with BridgeDatabase(path) as database:
        answer, answer_child = FORK.Pipe(duplex=False)
        child = FORK.Process(target=_uses_the_parents, args=(database, answer_child))
        child.start()
        assert answer.poll(GUARD)
        said = answer.recv()
        child.join(GUARD)
        database.write_one("CREATE TABLE after_the_child (x INTEGER)")  # the parent's goes on
    assert said.startswith("refused: ") and child.exitcode == 0


class _WillNotClose:
    """A lock file whose descriptor cannot be closed (as after an I/O error)."""

    def close(self) -> None:
        raise OSError("the descriptor would not close")


def _refused(databases: list[BridgeDatabase], answer: Connection) -> None:
    """In the child: whether each of ``databases`` refuses to be used."""
    said = []
    for database in databases:
        try:
            database.pragma("journal_mode")
            said.append(False)
        except sqlite3.ProgrammingError:
            said.append(True)
    answer.send(said)


def test_a_copy_that_will_not_let_go_leaves_the_others_to_do_so(tmp_path: Path) -> None:
    """The fork hook's error is printed and dropped by Python: the copies after it were kept, usable
    in the child. Both fail here, so whichever comes first, the other shows it."""
    with BridgeDatabase(tmp_path / "one.sqlite3") as one, BridgeDatabase(tmp_path / "two.sqlite3") as two:
        kept = [one._users, two._users]
        one._users = two._users = _WillNotClose()  # type: ignore[assignment]
        try:
            answer, answer_child = FORK.Pipe(duplex=False)
            child = FORK.Process(target=_refused, args=([one, two], answer_child))
            child.start()
            assert answer.poll(GUARD)
            said = answer.recv()
            child.join(GUARD)
        finally:
            one._users, two._users = kept
    assert said == [True, True] and child.exitcode == 0

"""``SqliteRunStore``: the flow engine's run history in the bridge's SQLite file."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import ClassVar

from adapters.embedded.sqlite import BridgeDatabase, SqliteStore, StrPath, utc_text
from adapters.recent import Recent
from flows.engine.runs import ActionRecord, RunRecord, RunStatus

# Version 1's run_actions and run_keys named their run as a foreign key: every action's record (13
# a bench case) then looked the run up in runs' index, and with two workers on a file those pages
# are read afresh for each record, the other's commits emptying SQLite's cache
# (``bench/page_reads.py``: 22 page reads a case). A run is started in the transaction of its first
# record, its keys are written with its start or its end, and runs are never deleted, so the check
# never failed; the Azure run store has none either. run_keys, a pair of short texts a row, also
# becomes its primary key's B-tree alone (WITHOUT ROWID): a key added wrote three B-trees, now two
# (5 page reads a case). SQLite cannot drop a constraint: each table is made again, run_actions'
# rows keeping their rowids (the order the actions ran); run_keys_by_key is made by ``SCHEMA``.
_TO_VERSION_2 = (
    """
    CREATE TABLE run_actions_2 (
        run_id TEXT NOT NULL,
        path   TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (run_id, path)
    )
    """,
    "INSERT INTO run_actions_2 (rowid, run_id, path, record) "
    "SELECT rowid, run_id, path, record FROM run_actions",
    "DROP TABLE run_actions",
    "ALTER TABLE run_actions_2 RENAME TO run_actions",
    "CREATE TABLE run_keys_2 (run_id TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (run_id, key))"
    " WITHOUT ROWID",
    "INSERT INTO run_keys_2 (run_id, key) SELECT run_id, key FROM run_keys",
    "DROP TABLE run_keys",
    "ALTER TABLE run_keys_2 RENAME TO run_keys",
)


class SqliteRunStore(SqliteStore):
    """The embedded ``RunStore``. Action results are upserted by (run, path) and kept in the order
    they were first written, which is the order they ran."""

    SCHEMA_COMPONENT = "runs"
    SCHEMA_VERSION = 2
    MIGRATIONS: ClassVar[dict[int, tuple[str, ...]]] = {1: _TO_VERSION_2}
    SCHEMA = (
        """
        CREATE TABLE IF NOT EXISTS runs (
            run_id      TEXT PRIMARY KEY,
            flow        TEXT NOT NULL,
            status      TEXT NOT NULL,
            started_at  TEXT NOT NULL,
            record      TEXT NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS runs_by_flow ON runs (flow, started_at)",
        """
        CREATE TABLE IF NOT EXISTS run_keys (
            run_id TEXT NOT NULL,  -- no foreign key: see _TO_VERSION_2
            key    TEXT NOT NULL,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX IF NOT EXISTS run_keys_by_key ON run_keys (key)",
        """
        CREATE TABLE IF NOT EXISTS run_actions (
            run_id TEXT NOT NULL,  -- no foreign key: see _TO_VERSION_2
            path   TEXT NOT NULL,
            record TEXT NOT NULL,
            PRIMARY KEY (run_id, path)
        )
        """,
    )

    def __init__(self, database: BridgeDatabase | StrPath) -> None:
        super().__init__(database)
        # The headers of runs this store started: ``finish`` then writes without reading one back.
        # A header never changes but at ``finish``, and only in fields ``finish`` is given.
        self._started: Recent[str, RunRecord] = Recent(1024)

    # Documents are built before ``write()``: other worker processes wait while a write is open.
    def start(self, run: RunRecord) -> bool:
        header = run.model_copy(update={"actions": {}})
        row = (run.run_id, run.flow, run.status.value, utc_text(run.started_at), header.model_dump_json())
        with self._db.write() as connection:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO runs (run_id, flow, status, started_at, record) "
                "VALUES (?, ?, ?, ?, ?)",
                row,
            )
            if cursor.rowcount != 1:
                return False
            self._add_keys(connection, run.run_id, run.keys)
        # Remembered at once, though the start may be part of a caller's transaction (the first
        # record's): rolled back, the run is not there, so the delivery again starts it again.
        self._started.put(run.run_id, header)
        return True

    def get(self, run_id: str) -> RunRecord | None:
        with self._db.read() as connection:
            row = connection.execute("SELECT record FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            actions = connection.execute(
                "SELECT record FROM run_actions WHERE run_id = ? ORDER BY rowid", (run_id,)
            ).fetchall()
        run = RunRecord.model_validate_json(row[0])
        records = [ActionRecord.model_validate_json(action) for (action,) in actions]
        return run.model_copy(update={"actions": {record.path: record for record in records}})

    def record_action(self, run_id: str, record: ActionRecord) -> None:
        self._db.write_one(
            "INSERT INTO run_actions (run_id, path, record) VALUES (?, ?, ?) "
            "ON CONFLICT (run_id, path) DO UPDATE SET record = excluded.record",
            (run_id, record.path, record.model_dump_json()),
        )

    def finish(
        self, run_id: str, status: RunStatus, *, ended_at: datetime, error: str | None, keys: list[str]
    ) -> None:
        # The header is read outside the write: only ``finish`` changes a stored header, and every
        # field it changes comes from the caller, so a finish by another delivery meanwhile loses nothing.
        header = self._started.get(run_id)
        if header is None:
            with self._db.read() as connection:
                row = connection.execute("SELECT record FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise KeyError(f"no run {run_id!r} to finish")
            header = RunRecord.model_validate_json(row[0])
        update = {"status": status, "ended_at": ended_at, "error": error, "keys": keys}
        finished = header.model_copy(update=update)
        ended = (status.value, finished.model_dump_json(), run_id)
        # The keys the header has are in run_keys already (written with it): only new ones are added.
        # Often there are none (a run's keys are mostly its business key), and the end is then one
        # statement, which joins a transaction open (the queue's acknowledgement) without a savepoint.
        known = set(header.keys)
        new_keys = [key for key in keys if key not in known]
        if new_keys:
            with self._db.write() as connection:
                cursor = connection.execute("UPDATE runs SET status = ?, record = ? WHERE run_id = ?", ended)
                if cursor.rowcount == 1:
                    self._add_keys(connection, run_id, new_keys)
        else:
            cursor = self._db.write_one("UPDATE runs SET status = ?, record = ? WHERE run_id = ?", ended)
        if cursor.rowcount != 1:
            raise KeyError(f"no run {run_id!r} to finish")
        # Remembered once committed: the end may be part of the acknowledgement's transaction, and a
        # header kept from one rolled back would say its keys were written (``new_keys`` above); until
        # then the next end reads the header the file holds.
        self._started.forget(run_id)
        self._db.after_commit(lambda: self._started.put(run_id, finished))

    def find(
        self,
        *,
        key: str | None = None,
        flow: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        clauses, parameters = [], []
        if key is not None:
            clauses.append("run_id IN (SELECT run_id FROM run_keys WHERE key = ?)")
            parameters.append(key)
        if flow is not None:
            clauses.append("flow = ?")
            parameters.append(flow)
        if status is not None:
            clauses.append("status = ?")
            parameters.append(status.value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT run_id FROM runs {where} ORDER BY started_at DESC, rowid DESC LIMIT ?"  # noqa: S608 - clauses are constants
        with self._db.read() as connection:
            run_ids = [row[0] for row in connection.execute(query, (*parameters, limit)).fetchall()]
        return [run for run in map(self.get, run_ids) if run is not None]

    @staticmethod
    def _add_keys(connection: sqlite3.Connection, run_id: str, keys: list[str]) -> None:
        if not keys:  # a flow without a business key: no statement at all
            return
        connection.executemany(
            "INSERT OR IGNORE INTO run_keys (run_id, key) VALUES (?, ?)", [(run_id, key) for key in keys]
        )

"""``SqliteCaseStore``: cases as JSON documents, with the columns the flows query on beside them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from adapters.embedded.case_cache import ParsedCases, copy_case
from adapters.embedded.sqlite import BridgeDatabase, SqliteStore, StrPath, utc_text
from flows.domain.case import Case, CaseReport, CaseState, CaseSummary
from flows.ports import ConcurrencyConflict

_INSERT = """
    INSERT OR IGNORE INTO cases
        (response_id, state, supplier, cpl_entry_id, opened_at, version, updated_at, problems, state_since,
         notified, document)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_UPDATE = """
    UPDATE cases
    SET state = ?, supplier = ?, cpl_entry_id = ?, opened_at = ?, version = version + 1, updated_at = ?,
        problems = ?, state_since = ?, notified = ?, document = ?
    WHERE response_id = ? AND version = ?
"""
_SUMMARIES = """
    SELECT response_id, state, supplier, cpl_entry_id, problems, opened_at, state_since, notified FROM cases
"""
# Version 1 had neither summary column: read them from the documents once.
_ADD_SUMMARY_COLUMNS = (
    "ALTER TABLE cases ADD COLUMN problems TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE cases ADD COLUMN state_since TEXT",
    """
    UPDATE cases SET
        problems = coalesce(json_extract(document, '$.problems'), '[]'),
        state_since = coalesce(
            (SELECT json_extract(step.value, '$.at') FROM json_each(document, '$.timeline') AS step
             WHERE json_extract(step.value, '$.from_state') IS NOT json_extract(step.value, '$.to_state')
             ORDER BY step.key DESC LIMIT 1),
            opened_at)
    """,
)
# Version 2 did not say which cases have a notification (the message previews list only those).
_ADD_NOTIFIED_COLUMN = (
    "ALTER TABLE cases ADD COLUMN notified INTEGER NOT NULL DEFAULT 0",
    "UPDATE cases SET notified = coalesce(json_type(document, '$.notification'), 'null') != 'null'",
)
_LIST_ALL = "SELECT response_id, document FROM cases ORDER BY opened_at, rowid"
_LIST_IN_STATES = """
    SELECT response_id, document FROM cases WHERE state IN (SELECT value FROM json_each(?))
    ORDER BY opened_at, rowid
"""
# Both read through an index (``cases_by_cpl_entry``, ``cases_by_state_since``): an event about one entry,
# or the hourly escalation, costs what it finds, not the whole history.
_PAIRED_WITH = """
    SELECT response_id, document FROM cases
    WHERE cpl_entry_id = ? AND state IN (SELECT value FROM json_each(?))
    ORDER BY opened_at, rowid
"""
_ENTERED_BEFORE = """
    SELECT response_id, state_since, document FROM cases
    WHERE state IN (SELECT value FROM json_each(?)) AND state_since < ?
    ORDER BY opened_at, rowid
"""
# ``state_since`` is ``utc_text`` as this store writes it, but version 1 files were given it in the form
# pydantic wrote the timeline (no fraction of a second, or an offset): compared as text, such a value may
# sort up to the offset away from its instant. The index is asked for a day more, then each row's
# instant is compared exactly.
_TEXT_FORMS_MARGIN = timedelta(days=1)
# Indexes versions 1 to 3 made that no query uses (see ``SqliteCaseStore.SCHEMA``).
UNUSED_INDEXES = ("cases_by_state", "cases_by_supplier", "cases_by_updated")


class SqliteCaseStore(SqliteStore):
    """The embedded ``CaseStore``.

    ``save`` is optimistic: it writes only if the stored version is still the one the case was read
    at, and bumps it, so of two writers who read the same version exactly one succeeds.
    """

    SCHEMA_COMPONENT = "cases"
    SCHEMA_VERSION = 3
    MIGRATIONS: ClassVar[dict[int, tuple[str, ...]]] = {1: _ADD_SUMMARY_COLUMNS, 2: _ADD_NOTIFIED_COLUMN}
    SCHEMA = (
        """
        CREATE TABLE IF NOT EXISTS cases (
            response_id  TEXT PRIMARY KEY,
            state        TEXT NOT NULL,
            supplier     TEXT NOT NULL,
            cpl_entry_id TEXT,
            opened_at    TEXT NOT NULL,
            version      INTEGER NOT NULL,
            updated_at   TEXT NOT NULL,
            problems     TEXT NOT NULL DEFAULT '[]',  -- JSON, for summaries
            state_since  TEXT,                        -- when it entered its state, for summaries
            notified     INTEGER NOT NULL DEFAULT 0,  -- 1 if it has its notification, for summaries
            document     TEXT NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS cases_by_cpl_entry ON cases (cpl_entry_id)",
        "CREATE INDEX IF NOT EXISTS cases_by_opened ON cases (opened_at)",
        # Added after version 3 without a new version: made on opening any file that lacks it, and a
        # bridge of before ignores it (a version would make it refuse the file on a roll-back).
        "CREATE INDEX IF NOT EXISTS cases_by_state_since ON cases (state, state_since)",
        # Dropped, likewise without a version (a bridge of before makes them again, and loses nothing):
        # no query reads them (``cases_by_state``'s queries are planned on ``cases_by_state_since``,
        # which leads with the state too), and every save wrote each. With several workers on one
        # file each index a save writes is also read afresh, SQLite's cache being emptied by the
        # other workers' commits (``bench/page_reads.py``).
        *(f"DROP INDEX IF EXISTS {name}" for name in UNUSED_INDEXES),
    )

    def __init__(
        self, database: BridgeDatabase | StrPath, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        """``database``: a shared ``BridgeDatabase``, or a file path to open (and close on ``close()``).

        ``clock`` stamps ``updated_at`` (UTC now by default).
        """
        super().__init__(database)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._parsed = ParsedCases()

    def get(self, response_id: str) -> Case | None:
        with self._db.read() as connection:
            row = connection.execute(
                "SELECT document FROM cases WHERE response_id = ?", (response_id,)
            ).fetchone()
        return None if row is None else self._parsed.get(response_id, row[0])

    # Rows are built (and saved documents parsed) outside ``write()``: other worker processes wait
    # while a write is open, and a case's JSON takes longer than its SQL.
    def add(self, case: Case) -> bool:
        row = self._row(case)
        with self._db.write() as connection:
            added = connection.execute(_INSERT, row).rowcount == 1
        if added:
            self._parsed.keep(row[-1], case)  # its first read is then not parsed
        return added

    def save(self, case: Case) -> Case:
        written = case.model_copy(update={"version": case.version + 1})  # as a read would return it
        row = self._row(written)
        with self._db.write() as connection:
            cursor = connection.execute(_UPDATE, (*row[1:5], *row[6:], case.response_id, case.version))
            saved = cursor.rowcount == 1
            stored = (
                None
                if saved
                else connection.execute(
                    "SELECT version FROM cases WHERE response_id = ?", (case.response_id,)
                ).fetchone()
            )
        if saved:
            # Kept for the next read, as if parsed from what was written (its JSON round trip is exact).
            self._parsed.keep(row[-1], written)
            return copy_case(written)  # the caller's own: neither the lists given nor the kept ones
        if stored is None:
            raise ConcurrencyConflict(f"case {case.response_id}: not stored (add it before saving it)")
        raise ConcurrencyConflict(
            f"case {case.response_id}: read at version {case.version}, but version {stored[0]} is "
            "stored: someone saved it meanwhile; re-read it and decide again"
        )

    def list(self, states: Iterable[CaseState] | None = None) -> list[Case]:
        """Cases in the given states (all when ``None``), oldest opened first (ties: first added)."""
        return [self._parsed.get(response_id, document) for response_id, document in self._documents(states)]

    def paired_with(self, entry_id: str, states: Iterable[CaseState]) -> Sequence[Case]:
        """As ``list``, only the cases paired with CPL entry ``entry_id`` (an index finds them)."""
        with self._db.read() as connection:
            rows = connection.execute(_PAIRED_WITH, (entry_id, _states_json(states))).fetchall()
        return [self._parsed.get(response_id, document) for response_id, document in rows]

    def entered_before(self, states: Iterable[CaseState], moment: datetime) -> Sequence[Case]:
        """As ``list``, only the cases that entered their current state before ``moment`` (an index
        finds them; see ``_TEXT_FORMS_MARGIN``)."""
        bound = utc_text(moment + _TEXT_FORMS_MARGIN)
        with self._db.read() as connection:
            rows = connection.execute(_ENTERED_BEFORE, (_states_json(states), bound)).fetchall()
        return [
            self._parsed.get(response_id, document)
            for response_id, since, document in rows
            if datetime.fromisoformat(since) < moment
        ]

    def reports(self, states: Iterable[CaseState] | None = None) -> Sequence[CaseReport]:
        """As ``list``, each document read as a report (the notification is not validated again)."""
        return [CaseReport.model_validate_json(document) for _, document in self._documents(states)]

    def _documents(self, states: Iterable[CaseState] | None) -> Sequence[tuple[str, str]]:
        with self._db.read() as connection:
            if states is None:
                return connection.execute(_LIST_ALL).fetchall()
            return connection.execute(_LIST_IN_STATES, (_states_json(states),)).fetchall()

    def summaries(self, states: Iterable[CaseState] | None = None) -> Sequence[CaseSummary]:
        """As ``list``, from the summary columns beside each document: thousands of cases cost no
        pydantic parse (both instants are stored as ``utc_text``, or as pydantic wrote them: aware)."""
        query = _SUMMARIES
        parameters: tuple[str, ...] = ()
        if states is not None:
            query += " WHERE state IN (SELECT value FROM json_each(?))"
            parameters = (_states_json(states),)
        with self._db.read() as connection:
            rows = connection.execute(query + " ORDER BY opened_at, rowid", parameters).fetchall()
        states_by_value = {state.value: state for state in CaseState}
        instant = datetime.fromisoformat
        return [
            CaseSummary(
                response_id,
                states_by_value[state],
                supplier,
                cpl_entry_id,
                () if problems == "[]" else tuple(json.loads(problems)),
                instant(opened_at),
                instant(state_since or opened_at),
                notified == 1,
            )
            for response_id, state, supplier, cpl_entry_id, problems, opened_at, state_since, notified in rows
        ]

    def _row(self, case: Case) -> tuple[str, str, str, str | None, str, int, str, str, str, int, str]:
        """The row in ``_INSERT``'s column order for ``case``, at its version."""
        document = case.model_dump_json()
        return (
            case.response_id,
            case.state.value,
            case.supplier,
            case.cpl_entry_id,
            utc_text(case.opened_at),
            case.version,
            utc_text(self._clock()),
            json.dumps(case.problems),
            utc_text(case.waited_since()),
            int(case.notification is not None),
            document,
        )


def _states_json(states: Iterable[CaseState]) -> str:
    """The states as the JSON array the queries read with ``json_each`` (one parameter for any number)."""
    return json.dumps(sorted({CaseState(state).value for state in states}))

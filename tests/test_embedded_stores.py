"""The embedded SQLite stores, against real database files (no mocks)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from adapters.embedded import (
    BridgeDatabase,
    SchemaMismatch,
    SqliteCaseStore,
    SqliteIdempotencyStore,
    SqliteInventory,
    SqlitePublicationStore,
)
from adapters.embedded import sqlite as sqlite_module
from adapters.embedded.cases import UNUSED_INDEXES
from adapters.embedded.runs import SqliteRunStore
from flows.domain.case import Case, CaseReport, CaseState, CaseSummary
from flows.domain.cpl import CplPublication
from flows.engine.definition import ActionStatus
from flows.engine.runs import ActionRecord, RunRecord, RunStatus
from flows.ports import ConcurrencyConflict, InventoryRecord, InventoryStatus, UpsertOutcome
from tests.support.demo_home import demo_home
from tests.support.store_builders import (
    T0,
    a_case,
    a_notification,
    a_notified_case,
    a_publication,
    an_entry,
    race_to_save,
)

# --- builders ------------------------------------------------------------------------------------


def a_record(*, firmware: str = "0203", s1sp: str = "FOC", model: str = "AB12") -> InventoryRecord:
    return InventoryRecord(
        device_type="ESME",
        manufacturer_id="1234",
        model_id=model,
        hardware_version="0102",
        firmware_version=firmware,
        cpl_entry_id="S1-000123",
        s1sp=s1sp,
        response_id="R-0001",
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "bridge.sqlite3"


@pytest.fixture
def database(db_path: Path) -> Iterator[BridgeDatabase]:
    with BridgeDatabase(db_path) as database:
        yield database


# --- the database file ---------------------------------------------------------------------------


def test_the_file_is_in_wal_mode_with_the_bridge_settings(database: BridgeDatabase, db_path: Path) -> None:
    assert database.pragma("journal_mode") == "wal"
    assert database.pragma("synchronous") == 1  # NORMAL
    assert database.pragma("foreign_keys") == 1
    assert database.pragma("busy_timeout") == 10_000
    with sqlite3.connect(db_path) as other:  # WAL is a property of the file, seen by anyone
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    other.close()


def test_checkpoints_run_after_the_commit_and_outside_the_writers_lock(
    database: BridgeDatabase, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's own checkpoint would run inside a commit, with every other worker waiting on its fsyncs."""
    monkeypatch.setattr(sqlite_module, "CHECKPOINT_EVERY", 10)
    holding = False
    real_held = database._writers.held

    @contextmanager
    def watched() -> Iterator[None]:
        nonlocal holding
        with real_held():
            holding = True
            try:
                yield
            finally:
                holding = False

    monkeypatch.setattr(database._writers, "held", watched)
    checkpoints: list[bool] = []
    database._connection.set_trace_callback(
        lambda statement: checkpoints.append(holding) if "wal_checkpoint" in statement else None
    )
    with database.write() as connection:
        connection.execute("CREATE TABLE blobs (content BLOB)")
    for _ in range(60):
        with database.write() as connection:
            connection.execute("INSERT INTO blobs VALUES (zeroblob(8000))")
    assert database.pragma("wal_autocheckpoint") == 0
    assert len(checkpoints) >= 6 and not any(checkpoints)
    # checkpointed, the log is reused from its start: it holds about ten commits, not sixty
    assert Path(f"{db_path}-wal").stat().st_size < 30 * 3 * 4096


def test_a_connection_that_committed_checkpoints_when_it_closes(db_path: Path) -> None:
    """A short command beside a long-lived one (the console) leaves its commits in the file, not the WAL:
    SQLite itself checkpoints only at the last connection's close."""
    with BridgeDatabase(db_path) as console:
        command = BridgeDatabase(db_path)
        with command.write() as connection:
            connection.execute("CREATE TABLE blobs (content BLOB)")
        for _ in range(40):
            with command.write() as connection:
                connection.execute("INSERT INTO blobs VALUES (zeroblob(8000))")
        command.close()
        assert db_path.stat().st_size > 40 * 8000  # the rows are in the file itself
        with console.read() as connection:
            assert connection.execute("SELECT count(*) FROM blobs").fetchone() == (40,)


def test_closing_twice_is_quiet(db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    database = BridgeDatabase(db_path)
    with database.write() as connection:
        connection.execute("CREATE TABLE kept (n INTEGER)")
    database.close()
    database.close()
    assert "checkpoint failed" not in caplog.text


def test_a_failed_checkpoint_is_logged_and_the_write_stands(
    database: BridgeDatabase, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sqlite_module, "CHECKPOINT_EVERY", 1)

    def no_checkpoints(action: int, argument: str | None, *_: object) -> int:
        refused = action == sqlite3.SQLITE_PRAGMA and argument == "wal_checkpoint"
        return sqlite3.SQLITE_DENY if refused else sqlite3.SQLITE_OK

    database._connection.set_authorizer(no_checkpoints)
    with database.write() as connection:
        connection.execute("CREATE TABLE kept (n INTEGER)")
        connection.execute("INSERT INTO kept VALUES (1)")
    with database.read() as connection:
        assert connection.execute("SELECT n FROM kept").fetchall() == [(1,)]
    assert "checkpoint failed after a commit (the commit stands)" in caplog.text


def test_alone_says_whether_another_database_has_the_file_open(db_path: Path) -> None:
    with BridgeDatabase(db_path) as first:
        with first.alone() as alone:
            assert alone
        with BridgeDatabase(db_path) as second:
            with first.alone() as alone:
                assert not alone
            with second.alone() as alone:
                assert not alone
        with first.alone() as alone:  # a failed try keeps the first's shared hold: it still counts
            assert alone


def test_a_database_opening_while_another_is_alone_waits_for_it(db_path: Path) -> None:
    opened = threading.Event()

    def open_second() -> None:
        with BridgeDatabase(db_path):
            opened.set()

    with BridgeDatabase(db_path) as first, ThreadPoolExecutor(max_workers=1) as pool:
        with first.alone() as alone:
            assert alone
            waiting = pool.submit(open_second)
            assert not opened.wait(0.3)
        waiting.result(timeout=10)
    assert opened.is_set()


def test_a_commit_that_fails_is_rolled_back_and_the_database_writes_again(db_path: Path) -> None:
    with BridgeDatabase(db_path, busy_timeout=0.5) as database:
        with database.write() as connection:
            connection.execute("CREATE TABLE parent (id TEXT PRIMARY KEY)")
            connection.execute(
                "CREATE TABLE child (id TEXT REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
            )
        with pytest.raises(sqlite3.IntegrityError), database.write() as connection:
            connection.execute("INSERT INTO child VALUES ('orphan')")  # refused only at the commit
        with database.write() as connection:
            connection.execute("INSERT INTO parent VALUES ('p')")
        with sqlite3.connect(db_path, timeout=0.5) as other:
            assert other.execute("SELECT id FROM parent").fetchall() == [("p",)]
            assert other.execute("SELECT count(*) FROM child").fetchone() == (0,)


def test_an_open_that_fails_closes_what_it_opened(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    BridgeDatabase(db_path).close()

    def descriptors() -> list[str]:
        return sorted(
            os.readlink(f"/proc/self/fd/{fd}")
            for fd in os.listdir("/proc/self/fd")
            if fd.isdigit() and os.path.exists(f"/proc/self/fd/{fd}")
        )

    def interrupted(database: Path) -> None:
        raise KeyboardInterrupt  # as a Ctrl-C while waiting behind another process's alone()

    before = descriptors()
    monkeypatch.setattr(sqlite_module._Users, "beside", interrupted)
    with pytest.raises(KeyboardInterrupt):
        BridgeDatabase(db_path)
    assert descriptors() == before


def test_in_home_opens_the_usual_file(tmp_path: Path) -> None:
    with BridgeDatabase.in_home(tmp_path) as database:
        assert database.path == tmp_path / "bridge.sqlite3"
    assert (tmp_path / "bridge.sqlite3").exists()


def test_schema_creation_is_idempotent_and_versioned(db_path: Path) -> None:
    for opening in range(2):
        with BridgeDatabase(db_path) as database:
            cases = SqliteCaseStore(database)
            SqlitePublicationStore(database)
            SqliteIdempotencyStore(database)
            SqliteInventory(database)
            SqliteCaseStore(database)  # a second store on the same tables creates nothing new
            for component in ("publications", "idempotency", "inventory"):
                assert database.schema_version(component) == 1
            assert database.schema_version("cases") == SqliteCaseStore.SCHEMA_VERSION == 3
            assert cases.add(a_case()) is (opening == 0)  # the first opening's case is still there


def test_a_file_from_another_schema_version_is_refused(db_path: Path) -> None:
    with BridgeDatabase(db_path) as database:
        SqliteCaseStore(database)
        with database.write() as connection:
            connection.execute("UPDATE schema_versions SET version = 4 WHERE component = 'cases'")
        with pytest.raises(SchemaMismatch, match="cases tables are at schema version 4"):
            SqliteCaseStore(database)


VERSION_1_CASES = """
    CREATE TABLE cases (
        response_id TEXT PRIMARY KEY, state TEXT NOT NULL, supplier TEXT NOT NULL, cpl_entry_id TEXT,
        opened_at TEXT NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL, document TEXT NOT NULL
    )
"""


def test_version_1_cases_gain_their_summary_columns_from_their_documents(db_path: Path) -> None:
    case = a_case()
    case.move_to(CaseState.AWAITING_CPL, at=T0 + timedelta(hours=1), cause="waiting")
    case.move_to(CaseState.NEEDS_ATTENTION, at=T0 + timedelta(hours=2), cause="differs", problems=["x: a, b"])
    case.record(at=T0 + timedelta(hours=3), cause="escalated")  # a note: not a change of state
    with BridgeDatabase(db_path) as database:
        with database.write() as connection:
            connection.execute(VERSION_1_CASES)
            connection.execute(
                "INSERT INTO schema_versions (component, version, applied_at) VALUES ('cases', 1, 'then')"
            )
            connection.execute(
                "INSERT INTO cases VALUES (?, ?, ?, NULL, ?, 0, 'then', ?)",
                (case.response_id, case.state.value, case.supplier, T0.isoformat(), case.model_dump_json()),
            )
        store = SqliteCaseStore(database)
        assert database.schema_version("cases") == 3
        (summary,) = store.summaries()
        assert summary == CaseSummary.of(case)
        assert summary.state_since == T0 + timedelta(hours=2) and summary.problems == ("x: a, b",)
        assert store.get(case.response_id) == case


VERSION_2_CASES = """
    CREATE TABLE cases (
        response_id TEXT PRIMARY KEY, state TEXT NOT NULL, supplier TEXT NOT NULL, cpl_entry_id TEXT,
        opened_at TEXT NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL,
        problems TEXT NOT NULL DEFAULT '[]', state_since TEXT, document TEXT NOT NULL
    )
"""


def test_version_2_cases_learn_from_their_documents_which_have_a_notification(db_path: Path) -> None:
    unread = a_case("R-unread")  # a form that could not be read: no notification
    unread.move_to(CaseState.REJECTED, at=T0 + timedelta(hours=1), cause="invalid", problems=["x: y"])
    notified = a_notified_case("R-notified", at=T0 + timedelta(hours=2))
    with BridgeDatabase(db_path) as database:
        with database.write() as connection:
            connection.execute(VERSION_2_CASES)
            connection.execute(
                "INSERT INTO schema_versions (component, version, applied_at) VALUES ('cases', 2, 'then')"
            )
            for case in (unread, notified):
                summary = CaseSummary.of(case)
                connection.execute(
                    "INSERT INTO cases VALUES (?, ?, ?, NULL, ?, 0, 'then', ?, ?, ?)",
                    (case.response_id, case.state.value, case.supplier, case.opened_at.isoformat(),
                     json.dumps(case.problems), summary.state_since.isoformat(), case.model_dump_json()),
                )  # fmt: skip
        store = SqliteCaseStore(database)
        assert database.schema_version("cases") == 3
        assert list(store.summaries()) == [CaseSummary.of(unread), CaseSummary.of(notified)]
        assert [summary.notified for summary in store.summaries()] == [False, True]
        assert store.get("R-notified") == notified


# The indexes version 3 made, as a bridge of before made them on every opening.
VERSION_3_INDEXES = (
    "CREATE INDEX IF NOT EXISTS cases_by_state ON cases (state, opened_at)",
    "CREATE INDEX IF NOT EXISTS cases_by_supplier ON cases (supplier)",
    "CREATE INDEX IF NOT EXISTS cases_by_cpl_entry ON cases (cpl_entry_id)",
    "CREATE INDEX IF NOT EXISTS cases_by_opened ON cases (opened_at)",
    "CREATE INDEX IF NOT EXISTS cases_by_updated ON cases (updated_at)",
    "CREATE INDEX IF NOT EXISTS cases_by_state_since ON cases (state, state_since)",
)


def test_a_file_with_the_unused_case_indexes_loses_them_and_keeps_its_cases(db_path: Path) -> None:
    with BridgeDatabase(db_path) as database:
        store = SqliteCaseStore(database)
        store.add(a_case("R-1"))
        with database.write() as connection:  # the file as a bridge of before left it
            for statement in VERSION_3_INDEXES:
                connection.execute(statement)
    with BridgeDatabase(db_path) as database:
        store = SqliteCaseStore(database)
        assert database.schema_version("cases") == 3  # a bridge of before still opens the file
        with database.read() as connection:
            indexes = {row[0] for row in connection.execute("SELECT name FROM pragma_index_list('cases')")}
        assert indexes == {
            "sqlite_autoindex_cases_1",
            "cases_by_cpl_entry",
            "cases_by_opened",
            "cases_by_state_since",
        }
        assert [case.response_id for case in store.list()] == ["R-1"]


def test_every_case_query_still_reads_through_an_index(database: BridgeDatabase) -> None:
    """The statements the store runs, each planned by SQLite: none reads the whole table to find
    rows, none sorts them all (the lists of every case come in ``cases_by_opened``'s order), and
    none needed an index that is dropped."""
    store = SqliteCaseStore(database)
    statements: list[str] = []
    with database.read() as connection:
        connection.set_trace_callback(statements.append)
    try:
        waiting = a_case("R-1")
        waiting.move_to(CaseState.AWAITING_CPL, at=T0 + timedelta(hours=1), cause="waiting")
        waiting.cpl_entry_id = "S1-1"
        store.add(waiting)
        saved = store.save(waiting)
        with pytest.raises(ConcurrencyConflict):
            store.save(waiting)  # read at a version no longer stored: its version is read back
        assert store.get("R-1") == saved
        assert [case.response_id for case in store.list()] == ["R-1"]
        assert [case.response_id for case in store.list([CaseState.AWAITING_CPL])] == ["R-1"]
        assert [case.response_id for case in store.paired_with("S1-1", [CaseState.AWAITING_CPL])] == ["R-1"]
        assert [
            c.response_id for c in store.entered_before([CaseState.AWAITING_CPL], T0 + timedelta(hours=2))
        ] == ["R-1"]
        assert len(store.reports()) == len(store.summaries()) == len(store.summaries([CaseState.LOADED])) + 1
    finally:
        with database.read() as connection:
            connection.set_trace_callback(None)
    # Each kind of statement once (the trace gives them with their values; none holds a quote).
    queries = {re.sub("'[^']*'", "?", " ".join(s.split())): s for s in statements if " cases" in s}
    plans = {}
    with database.read() as connection:
        for kind, query in queries.items():
            if not kind.startswith("INSERT"):
                plans[kind] = [row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + query)]
    assert len(plans) == 9  # get, save, a save's conflict, the lists: all, by state, entry, entry time
    for query, plan in plans.items():
        if "WHERE" in query:  # found through an index, not by reading every row
            steps = [step for step in plan if " cases" in step]
            assert steps and all(step.startswith("SEARCH cases USING INDEX ") for step in steps), plan
        else:  # every case, in opening order
            assert plan == ["SCAN cases USING INDEX cases_by_opened"], (query, plan)
        assert not any(re.search(rf"\b{name}\b", step) for step in plan for name in UNUSED_INDEXES)


def test_a_store_opened_from_a_path_owns_and_closes_its_connection(db_path: Path) -> None:
    with SqliteCaseStore(db_path) as store:
        assert store.add(a_case())
    with pytest.raises(sqlite3.ProgrammingError):
        store.get("R-0001")
    with SqliteCaseStore(db_path) as again:
        assert again.get("R-0001") is not None


# --- cases ---------------------------------------------------------------------------------------


def test_case_round_trip_keeps_the_timeline(database: BridgeDatabase) -> None:
    store = SqliteCaseStore(database)
    case = a_case()
    assert store.add(case)
    read = store.get("R-0001")
    assert read == case
    assert read is not None
    read.move_to(
        CaseState.AWAITING_CPL,
        at=T0 + timedelta(minutes=1),
        cause="entry not on the CPL yet",
        evidence={"publication": "a" * 64},
    )
    read.cpl_entry_id = "S1-000123"
    saved = store.save(read)
    assert saved.version == 1
    assert store.get("R-0001") == saved
    assert [entry.to_state for entry in saved.timeline] == [CaseState.RECEIVED, CaseState.AWAITING_CPL]
    assert saved.timeline[1].evidence == {"publication": "a" * 64}
    assert saved.timeline[0].evidence == {"run": "run-1"}


def test_adding_a_case_twice_keeps_the_first(database: BridgeDatabase) -> None:
    store = SqliteCaseStore(database)
    assert store.add(a_case(supplier="First"))
    assert not store.add(a_case(supplier="Second"))
    stored = store.get("R-0001")
    assert stored is not None
    assert stored.supplier == "First"


def test_unknown_case_is_none(database: BridgeDatabase) -> None:
    assert SqliteCaseStore(database).get("R-404") is None


def test_two_connections_read_the_same_version_and_the_first_save_wins(db_path: Path) -> None:
    with SqliteCaseStore(db_path) as first, SqliteCaseStore(db_path) as second:
        assert first.add(a_case())
        mine, theirs = first.get("R-0001"), second.get("R-0001")
        assert mine is not None
        assert theirs is not None
        assert mine.version == theirs.version == 0
        mine.move_to(CaseState.AWAITING_CPL, at=T0, cause="waiting")
        theirs.move_to(CaseState.REJECTED, at=T0, cause="unknown supplier")
        assert first.save(mine).version == 1
        with pytest.raises(ConcurrencyConflict, match=r"case R-0001: read at version 0, but version 1"):
            second.save(theirs)
        stored = second.get("R-0001")
        assert stored is not None
        assert stored.state is CaseState.AWAITING_CPL
        assert stored.version == 1


def test_saving_a_case_never_added_is_a_conflict(database: BridgeDatabase) -> None:
    with pytest.raises(ConcurrencyConflict, match="not stored"):
        SqliteCaseStore(database).save(a_case("R-9999"))


@pytest.mark.parametrize("connections", ["one shared connection", "a connection per thread"])
def test_threads_racing_to_save_a_case_exactly_one_wins(db_path: Path, connections: str) -> None:
    shared = connections == "one shared connection"
    stores = [SqliteCaseStore(db_path)] if shared else [SqliteCaseStore(db_path), SqliteCaseStore(db_path)]
    try:
        for number in range(20):
            outcomes, stored = race_to_save(stores, f"R-{number:04d}")
            assert outcomes.count("conflict") == 1
            assert stored.version == 1
            assert [stored.state.value] == [outcome for outcome in outcomes if outcome != "conflict"]
            assert len(stored.timeline) == 2
    finally:
        for store in stores:
            store.close()


def test_list_by_state_in_opening_order(database: BridgeDatabase) -> None:
    store = SqliteCaseStore(database)
    plus_one = timezone(timedelta(hours=1))
    store.add(a_case("R-late", at=T0 + timedelta(hours=2)))
    store.add(a_case("R-early", at=datetime(2026, 11, 20, 9, 30, tzinfo=plus_one)))  # 08:30 UTC
    store.add(a_notified_case("R-middle", at=T0 + timedelta(minutes=30)))
    middle = store.get("R-middle")
    assert middle is not None
    middle.move_to(CaseState.AWAITING_CPL, at=T0 + timedelta(hours=3), cause="waiting")
    store.save(middle)

    assert [case.response_id for case in store.list()] == ["R-early", "R-middle", "R-late"]
    assert [summary.notified for summary in store.summaries()] == [False, True, False]
    assert [case.response_id for case in store.list([CaseState.RECEIVED])] == ["R-early", "R-late"]
    waiting = store.list(states=iter([CaseState.AWAITING_CPL, CaseState.LOADED]))
    assert [case.response_id for case in waiting] == ["R-middle"]
    assert store.list([]) == []
    # Summaries say the same, in the same order, for any filter.
    for states in (None, [CaseState.RECEIVED], [CaseState.AWAITING_CPL, CaseState.LOADED], []):
        assert list(store.summaries(states)) == [CaseSummary.of(case) for case in store.list(states)]
        # And reports, the notification's fields a report shows included.
        assert list(store.reports(states)) == [CaseReport.of(case) for case in store.list(states)]
    (_, middle_report, _, *_) = store.reports()
    assert middle_report.notification is not None
    assert middle_report.notification.device_type == a_notification().device_type.value


# --- publications --------------------------------------------------------------------------------


def test_publications_add_get_latest_and_duplicates(database: BridgeDatabase) -> None:
    store = SqlitePublicationStore(database)
    assert store.latest() is None
    first, second = a_publication("a" * 64), a_publication("b" * 64, an_entry("S1-000200"))
    plus_one = timezone(timedelta(hours=1))

    assert store.add(second, fetched_at=datetime(2026, 11, 24, 10, 30, tzinfo=plus_one), source="https://x")
    assert store.add(first, fetched_at=datetime(2026, 11, 24, 9, 45, tzinfo=UTC), source="/tmp/cpl.xlsx")
    assert not store.add(first, fetched_at=T0 + timedelta(days=9), source="again")

    kept = store.get("a" * 64)
    assert kept is not None
    assert kept.publication == first
    assert kept.source == "/tmp/cpl.xlsx"
    assert kept.fetched_at == datetime(2026, 11, 24, 9, 45, tzinfo=UTC)
    assert kept.publication.entries[0].previous_entry_ids == ("S1-000110", "S1-000111")
    assert store.get("c" * 64) is None

    latest = store.latest()  # 09:45 UTC is later than 10:30+01:00 (09:30 UTC)
    assert latest is not None
    assert latest.publication.source_sha256 == "a" * 64


def test_latest_publication_on_a_tie_is_the_one_added_last(database: BridgeDatabase) -> None:
    store = SqlitePublicationStore(database)
    for sha256 in ("b" * 64, "a" * 64, "c" * 64):
        store.add(a_publication(sha256), fetched_at=T0, source="file")
    latest = store.latest()
    assert latest is not None
    assert latest.publication.source_sha256 == "c" * 64


def test_publication_without_a_publication_date(database: BridgeDatabase) -> None:
    store = SqlitePublicationStore(database)
    bare = CplPublication(source_sha256="d" * 64, entries=())
    assert store.add(bare, fetched_at=T0, source="file")
    kept = store.get("d" * 64)
    assert kept is not None
    assert kept.publication == bare


# --- runs ----------------------------------------------------------------------------------------


def test_a_run_finished_by_its_starter_or_by_another_store_keeps_its_header(db_path: Path) -> None:
    """The store that started a run finishes it from the header it remembers, without reading it
    back; another one (a second delivery's worker) reads it. Both write the same record."""
    statements: list[str] = []
    with BridgeDatabase(db_path) as first, BridgeDatabase(db_path) as second:
        starter, other = SqliteRunStore(first), SqliteRunStore(second)
        for run_id in ("run-1", "run-2"):
            starter.start(
                RunRecord(
                    run_id=run_id, flow="f", flow_version="v1", trigger={"x": 1}, keys=["K"], started_at=T0
                )
            )
        with first.read() as connection:
            connection.set_trace_callback(statements.append)
        starter.finish("run-1", RunStatus.SUCCEEDED, ended_at=T0, error=None, keys=["K", "R-1"])
        assert not any(statement.startswith("SELECT record FROM runs") for statement in statements)
        other.finish("run-2", RunStatus.SUCCEEDED, ended_at=T0, error=None, keys=["K", "R-1"])
        with pytest.raises(KeyError, match="no run 'run-404'"):
            starter.finish("run-404", RunStatus.FAILED, ended_at=T0, error="x", keys=[])
        one, two = starter.get("run-1"), starter.get("run-2")
        found = [run.run_id for run in other.find(key="R-1")]
    assert one is not None and two is not None
    assert one.model_dump(exclude={"run_id"}) == two.model_dump(exclude={"run_id"})
    assert (one.status, one.keys, one.trigger) == (RunStatus.SUCCEEDED, ["K", "R-1"], {"x": 1})
    assert found == ["run-2", "run-1"]


# The run tables as version 1 made them.
VERSION_1_RUNS = (
    "CREATE TABLE runs (run_id TEXT PRIMARY KEY, flow TEXT NOT NULL, status TEXT NOT NULL, "
    "started_at TEXT NOT NULL, record TEXT NOT NULL)",
    "CREATE INDEX runs_by_flow ON runs (flow, started_at)",
    "CREATE TABLE run_keys (run_id TEXT NOT NULL REFERENCES runs (run_id), key TEXT NOT NULL, "
    "PRIMARY KEY (run_id, key))",
    "CREATE INDEX run_keys_by_key ON run_keys (key)",
    "CREATE TABLE run_actions (run_id TEXT NOT NULL REFERENCES runs (run_id), path TEXT NOT NULL, "
    "record TEXT NOT NULL, PRIMARY KEY (run_id, path))",
)


def test_version_1_runs_keep_their_actions_in_the_order_they_ran_and_their_keys(
    db_path: Path,
) -> None:
    run = RunRecord(run_id="run-1", flow="f", flow_version="v1", trigger={"x": 1}, keys=["K"], started_at=T0)
    # Written in an order their paths do not sort in: the order they ran is the rows' own.
    ran = [
        ActionRecord(path=path, status=ActionStatus.SUCCEEDED, started_at=T0, ended_at=T0)
        for path in ("b", "a", "c")
    ]
    with BridgeDatabase(db_path) as database, database.write() as connection:
        for statement in VERSION_1_RUNS:
            connection.execute(statement)
        connection.execute(
            "INSERT INTO schema_versions (component, version, applied_at) VALUES ('runs', 1, 'then')"
        )
        connection.execute(
            "INSERT INTO runs VALUES ('run-1', 'f', 'Running', 'then', ?)",
            (run.model_copy(update={"actions": {}}).model_dump_json(),),
        )
        connection.execute("INSERT INTO run_keys VALUES ('run-1', 'K')")
        for record in ran:
            connection.execute(
                "INSERT INTO run_actions VALUES ('run-1', ?, ?)", (record.path, record.model_dump_json())
            )
    with BridgeDatabase(db_path) as database:
        store = SqliteRunStore(database)
        assert database.schema_version("runs") == 2
        kept = store.get("run-1")
        assert kept is not None and list(kept.actions.values()) == ran
        again = ran[1].model_copy(update={"attempts": 2})
        store.record_action("run-1", again)  # overwritten in its place; a new one goes last
        store.record_action(
            "run-1", ActionRecord(path="0", status=ActionStatus.SUCCEEDED, started_at=T0, ended_at=T0)
        )
        kept = store.get("run-1")
        assert kept is not None and list(kept.actions) == ["b", "a", "c", "0"] and kept.actions["a"] == again
        assert [run.run_id for run in store.find(key="K")] == ["run-1"]
        store.finish("run-1", RunStatus.SUCCEEDED, ended_at=T0, error=None, keys=["K", "R-1"])
        assert [run.run_id for run in store.find(key="R-1")] == ["run-1"]
        kept = store.get("run-1")
        with database.read() as connection:
            for table in ("run_actions", "run_keys"):
                assert (
                    connection.execute(f"SELECT * FROM pragma_foreign_key_list('{table}')").fetchall() == []
                )
            (keys_without_rowid,) = connection.execute("SELECT wr FROM pragma_table_list('run_keys')")
            key_indexes = {
                row[0] for row in connection.execute("SELECT name FROM pragma_index_list('run_keys')")
            }
            assert keys_without_rowid == (1,) and "run_keys_by_key" in key_indexes
            tables = {
                row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            indexes = {
                row[0] for row in connection.execute("SELECT name FROM pragma_index_list('run_actions')")
            }
        assert not {"run_actions_2", "run_keys_2"} & tables and len(indexes) == 1  # as in a new file
    with BridgeDatabase(db_path) as database:  # opened again: nothing more to migrate
        assert SqliteRunStore(database).get("run-1") == kept


def test_a_run_s_end_adds_only_the_keys_its_start_did_not_write(database: BridgeDatabase) -> None:
    """Keys the header has are in run_keys already: an end with no new key is the one UPDATE (which
    joins a transaction open without a savepoint); new keys are added, and found, with it."""
    store = SqliteRunStore(database)
    for run_id in ("run-1", "run-2"):
        store.start(
            RunRecord(run_id=run_id, flow="f", flow_version="v1", trigger={}, keys=["K"], started_at=T0)
        )
    statements: list[str] = []
    with database.read() as connection:
        connection.set_trace_callback(statements.append)
    with database.transaction():
        store.finish("run-1", RunStatus.SUCCEEDED, ended_at=T0, error=None, keys=["K"])
    store.finish("run-2", RunStatus.SUCCEEDED, ended_at=T0, error=None, keys=["K", "R-2"])
    with database.read() as connection:
        connection.set_trace_callback(None)
    first_end = [statement.split(" ")[0] for statement in statements[: statements.index("COMMIT") + 1]]
    assert first_end == ["BEGIN", "UPDATE", "COMMIT"]
    assert [statement.split(" (")[0] for statement in statements if "run_keys" in statement] == [
        "INSERT OR IGNORE INTO run_keys"
    ]
    assert [run.run_id for run in store.find(key="K")] == ["run-2", "run-1"]
    assert [(run.run_id, run.keys) for run in store.find(key="R-2")] == [("run-2", ["K", "R-2"])]
    assert [run.status for run in store.find()] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]


def test_a_run_s_end_rolled_back_with_its_transaction_is_written_whole_the_next_time(
    database: BridgeDatabase,
) -> None:
    """The end joins the acknowledgement's transaction in a drain: rolled back with it (a full disk),
    the store must not remember the header it did not write, or the next end skips the new keys."""
    store = SqliteRunStore(database)
    store.start(RunRecord(run_id="run-1", flow="f", flow_version="v1", trigger={}, keys=["K"], started_at=T0))

    def acknowledgement_fails() -> None:
        with database.transaction():
            store.finish("run-1", RunStatus.SUCCEEDED, ended_at=T0, error=None, keys=["K", "extra"])
            raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(sqlite3.OperationalError):
        acknowledgement_fails()
    run = store.get("run-1")
    assert run is not None and run.status is RunStatus.RUNNING and store.find(key="extra") == []
    store.finish("run-1", RunStatus.SUCCEEDED, ended_at=T0, error=None, keys=["K", "extra"])
    assert [(run.run_id, run.keys) for run in store.find(key="extra")] == [("run-1", ["K", "extra"])]


def test_changes_after_a_commit_wait_for_it_and_go_with_a_rollback(database: BridgeDatabase) -> None:
    """``after_commit``: at once outside a transaction; at the commit inside one; never for a write
    rolled back, with its transaction or with its savepoint alone."""
    database.write_one("CREATE TABLE kept (n INTEGER)")
    done: list[str] = []

    def fails_in(writing: Callable[[], AbstractContextManager[object]], change: str) -> None:
        with writing():
            database.after_commit(lambda: done.append(change))
            raise RuntimeError("this write fails")

    database.after_commit(lambda: done.append("alone"))
    assert done == ["alone"]
    with database.transaction():
        database.write_one("INSERT INTO kept VALUES (1)")
        database.after_commit(lambda: done.append("kept"))
        with pytest.raises(RuntimeError):
            fails_in(database.write, "savepoint undone")  # fails alone
        with database.write():
            database.write_one("INSERT INTO kept VALUES (2)")
        database.after_commit(lambda: done.append("kept too"))
        assert done == ["alone"]  # not before the commit
    assert done == ["alone", "kept", "kept too"]
    with pytest.raises(RuntimeError):
        fails_in(database.transaction, "rolled back")
    with database.write():  # a write alone is a transaction too: its change waits for its commit
        database.after_commit(lambda: done.append("written alone"))
        assert done[-1] == "kept too"
    assert done == ["alone", "kept", "kept too", "written alone"]


# --- idempotency ---------------------------------------------------------------------------------


def test_idempotency_first_put_wins(database: BridgeDatabase) -> None:
    store = SqliteIdempotencyStore(database)
    assert store.get("flow:run:step") is None
    assert store.put("flow:run:step", {"message_id": "<1@x>", "to": ["a@b.example"], "n": 1.5})
    assert not store.put("flow:run:step", {"message_id": "<2@x>"})
    assert store.get("flow:run:step") == {"message_id": "<1@x>", "to": ["a@b.example"], "n": 1.5}


def test_idempotency_refuses_what_json_cannot_keep(database: BridgeDatabase) -> None:
    store = SqliteIdempotencyStore(database)
    with pytest.raises(TypeError):
        store.put("key", {"at": T0})
    assert store.get("key") is None


# --- the inventory -------------------------------------------------------------------------------


def test_inventory_upsert_created_unchanged_updated(database: BridgeDatabase) -> None:
    inventory = SqliteInventory(database)
    record = a_record()
    assert inventory.upsert(record, idempotency_key="load:1") is UpsertOutcome.CREATED
    assert inventory.upsert(record, idempotency_key="load:2") is UpsertOutcome.UNCHANGED
    changed = a_record(s1sp="IOC")
    assert inventory.upsert(changed, idempotency_key="load:3") is UpsertOutcome.UPDATED
    assert inventory.get(record.dmc) == changed


def test_inventory_same_key_twice_is_unchanged_even_with_another_record(database: BridgeDatabase) -> None:
    inventory = SqliteInventory(database)
    assert inventory.upsert(a_record(), idempotency_key="load:R-0001") is UpsertOutcome.CREATED
    outcome = inventory.upsert(a_record(s1sp="MOC"), idempotency_key="load:R-0001")
    assert outcome is UpsertOutcome.UNCHANGED
    assert inventory.get(a_record().dmc) == a_record()  # the first write for a key wins
    other = a_record(firmware="0300")
    assert inventory.upsert(other, idempotency_key="load:R-0001") is UpsertOutcome.UNCHANGED
    assert inventory.get(other.dmc) is None


def test_inventory_a_known_key_on_a_later_attempt_is_that_effects_own(database: BridgeDatabase) -> None:
    """The engine's attempt 2 of an effect whose attempt 1 wrote, but whose answer was lost."""
    inventory = SqliteInventory(database)
    record = a_record()
    assert inventory.upsert(record, idempotency_key="load:R-0001") is UpsertOutcome.CREATED
    assert inventory.upsert(record, idempotency_key="load:R-0001", attempt=2) is UpsertOutcome.CREATED
    assert inventory.withdraw(record.dmc, idempotency_key="withdraw:R-0001")
    assert inventory.withdraw(record.dmc, idempotency_key="withdraw:R-0001", attempt=3)
    assert not inventory.withdraw(record.dmc, idempotency_key="withdraw:R-0001")  # another effect's key


def test_inventory_withdraw(database: BridgeDatabase) -> None:
    inventory = SqliteInventory(database)
    record = a_record()
    inventory.upsert(record, idempotency_key="load:1")
    assert inventory.withdraw(record.dmc, idempotency_key="withdraw:1")
    stored = inventory.get(record.dmc)
    assert stored is not None
    assert stored.status is InventoryStatus.WITHDRAWN
    assert not inventory.withdraw(record.dmc, idempotency_key="withdraw:1")
    assert not inventory.withdraw(record.dmc, idempotency_key="withdraw:2")  # already withdrawn
    assert not inventory.withdraw(a_record(firmware="0999").dmc, idempotency_key="withdraw:3")
    reloaded = inventory.upsert(record, idempotency_key="load:again")  # active again
    assert reloaded is UpsertOutcome.UPDATED
    assert inventory.get(record.dmc) == record


def test_inventory_all_is_sorted_by_combination_and_survives_reopening(db_path: Path) -> None:
    records = [a_record(firmware="0300"), a_record(model="0001"), a_record(firmware="0203")]
    with SqliteInventory(db_path) as inventory:
        for number, record in enumerate(records):
            inventory.upsert(record, idempotency_key=f"load:{number}")
        inventory.withdraw(records[1].dmc, idempotency_key="withdraw:0")
    with SqliteInventory(db_path) as inventory:
        listed = inventory.all()
    assert [record.dmc for record in listed] == sorted(record.dmc for record in records)
    assert [record.status for record in listed] == [
        InventoryStatus.WITHDRAWN,
        InventoryStatus.ACTIVE,
        InventoryStatus.ACTIVE,
    ]


def test_all_stores_share_one_file(database: BridgeDatabase, db_path: Path) -> None:
    SqliteCaseStore(database).add(a_case())
    SqlitePublicationStore(database).add(a_publication(), fetched_at=T0, source="file")
    SqliteIdempotencyStore(database).put("k", {})
    SqliteInventory(database).upsert(a_record(), idempotency_key="k")
    with sqlite3.connect(db_path) as other:
        tables = {name for (name,) in other.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    other.close()
    assert {"cases", "publications", "idempotency", "inventory", "inventory_requests"} <= tables


def test_the_raw_publication_is_kept_once_under_its_hash(database: BridgeDatabase) -> None:
    import hashlib

    from flows.errors import BadInput

    store = SqlitePublicationStore(database)
    data = b"PK\x03\x04 the file as SECAS published it"
    sha256 = hashlib.sha256(data).hexdigest()
    assert store.get_raw(sha256) is None
    assert store.add_raw(sha256, data)
    assert not store.add_raw(sha256, data)
    assert store.get_raw(sha256) == data
    with pytest.raises(BadInput, match="SHA-256"):
        store.add_raw("0" * 64, data)


# --- one transaction across stores, and the parsed-case cache -------------------------------------


def test_a_transaction_commits_two_stores_writes_together_or_not_at_all(database: BridgeDatabase) -> None:
    cases, keys = SqliteCaseStore(database), SqliteIdempotencyStore(database)

    def fails_before_the_commit() -> None:
        with cases.transaction():
            assert cases.add(a_case("R-1"))
            assert keys.put("k-1", {"outputs": 1})
            raise RuntimeError("the worker failed before the commit")

    with pytest.raises(RuntimeError):
        fails_before_the_commit()
    assert cases.get("R-1") is None and keys.get("k-1") is None

    with keys.transaction():
        cases.add(a_case("R-2"))
        keys.put("k-2", {"outputs": 2})
    assert cases.get("R-2") is not None and keys.get("k-2") == {"outputs": 2}


def half_written(database: BridgeDatabase) -> None:
    with database.write() as connection:
        connection.execute("INSERT INTO idempotency (key, result, stored_at) VALUES ('undone', '{}', 'x')")
        connection.execute("INSERT INTO no_such_table VALUES (1)")


def test_a_failed_write_inside_a_transaction_is_undone_alone(database: BridgeDatabase) -> None:
    keys = SqliteIdempotencyStore(database)
    with keys.transaction():
        keys.put("kept", {"outputs": 1})
        with pytest.raises(sqlite3.OperationalError):
            half_written(database)
    assert keys.get("kept") == {"outputs": 1}
    assert keys.get("undone") is None


def test_one_statement_written_alone_commits_and_inside_a_transaction_joins_it(
    database: BridgeDatabase, db_path: Path
) -> None:
    """``write_one`` takes no savepoint and no ``BEGIN``: a statement is atomic by itself."""
    statements: list[str] = []
    database._connection.set_trace_callback(statements.append)
    database.write_one("CREATE TABLE kept (n INTEGER UNIQUE)")
    database.write_one("INSERT INTO kept VALUES (1)")
    with sqlite3.connect(db_path) as other:  # committed: another connection sees it
        assert other.execute("SELECT n FROM kept").fetchall() == [(1,)]
    other.close()
    assert statements == ["CREATE TABLE kept (n INTEGER UNIQUE)", "INSERT INTO kept VALUES (1)"]

    def fails_before_the_commit() -> None:
        with database.transaction():
            database.write_one("INSERT INTO kept VALUES (2)")
            raise RuntimeError("the worker failed before the commit")

    with pytest.raises(RuntimeError):
        fails_before_the_commit()
    with database.transaction():
        database.write_one("INSERT INTO kept VALUES (3)")
        with pytest.raises(sqlite3.IntegrityError):  # fails alone, as with a savepoint
            database.write_one("INSERT INTO kept VALUES (4), (3)")
    with database.read() as connection:
        assert connection.execute("SELECT n FROM kept ORDER BY n").fetchall() == [(1,), (3,)]
    assert not any("SAVEPOINT" in statement for statement in statements)


def test_one_statement_is_refused_in_a_transaction_sqlite_already_rolled_back(
    database: BridgeDatabase,
) -> None:
    """SQLite ends a transaction itself on a full disk or an I/O error. A caller that caught the error
    and went on must not have its later statements committed one by one, outside any transaction.
    (A full disk cannot be made here on demand; the rollback SQLite would do is done by hand.)"""
    database.write_one("CREATE TABLE kept (n INTEGER)")

    def goes_on_after_the_rollback() -> None:
        with database.transaction() as connection:
            database.write_one("INSERT INTO kept VALUES (1)")
            connection.execute("ROLLBACK")  # what SQLite does on SQLITE_FULL
            database.write_one("INSERT INTO kept VALUES (2)")

    with pytest.raises(sqlite3.OperationalError, match="rolled back by SQLite"):
        goes_on_after_the_rollback()
    with database.read() as connection:
        assert connection.execute("SELECT n FROM kept").fetchall() == []


def test_one_statement_waits_for_another_program_s_write_and_reads_what_it_wrote(
    database: BridgeDatabase, db_path: Path
) -> None:
    """Written without ``BEGIN IMMEDIATE``, the statement still takes the write lock before it reads:
    it waits on the busy timeout (no ``SQLITE_BUSY``) and then counts the other program's row."""
    database.write_one("CREATE TABLE counted (n INTEGER)")
    with database.read() as connection:  # a snapshot read before the other program writes
        assert connection.execute("SELECT count(*) FROM counted").fetchone() == (0,)
    other = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO counted VALUES (1)")
    committing = threading.Timer(0.2, other.commit)
    committing.start()
    try:
        database.write_one("INSERT INTO counted SELECT count(*) + 1 FROM counted")
    finally:
        committing.join()
        other.close()
    with database.read() as connection:
        assert connection.execute("SELECT n FROM counted ORDER BY n").fetchall() == [(1,), (2,)]


def test_cached_cases_are_copies_and_never_stale(db_path: Path) -> None:
    with SqliteCaseStore(db_path) as store, SqliteCaseStore(db_path) as other:
        store.add(a_case("R-1"))
        first = store.get("R-1")
        assert first is not None
        first.problems.append("changed in memory, never saved")
        first.timeline[0].evidence["run"] = "changed too"
        again = store.get("R-1")
        assert again is not None and again is not first
        assert again.problems == [] and again.timeline[0].evidence == {"run": "run-1"}

        seen_by_other = other.get("R-1")
        assert seen_by_other is not None
        seen_by_other.move_to(CaseState.AWAITING_CPL, at=T0, cause="saved by another store")
        other.save(seen_by_other)
        fresh = store.get("R-1")  # the document changed under the cache: parsed again
        assert fresh is not None and fresh.state is CaseState.AWAITING_CPL and fresh.version == 1


def test_a_cached_case_s_nested_evidence_is_each_reader_s_own(db_path: Path) -> None:
    """Evidence is copied deep (lists and objects inside it too), whoever changes it afterwards: the
    writer of the case, a reader, or the caller of a save."""
    nested = {"combination": {"model_id": "F4000001"}, "accepted_differences": ["s1sp"]}
    with SqliteCaseStore(db_path) as store:
        case = a_case("R-1")
        case.record(at=T0, cause="noted", evidence=json.loads(json.dumps(nested)))
        store.add(case)
        case.timeline[-1].evidence["combination"]["model_id"] = "changed after the add"
        read = store.get("R-1")
        assert read is not None and read.timeline[-1].evidence == nested
        read.timeline[-1].evidence["accepted_differences"].append("changed by a reader")
        again = store.get("R-1")
        assert again is not None and again.timeline[-1].evidence == nested
        saved = store.save(again)
        saved.timeline[-1].evidence["combination"]["model_id"] = "changed after the save"
        again.timeline[-1].evidence["accepted_differences"].clear()
        last = store.get("R-1")
        assert last is not None and last.version == 1 and last.timeline[-1].evidence == nested


def test_a_case_written_is_read_back_without_a_parse_and_equal_to_one(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses: list[str] = []
    real = Case.model_validate_json

    def counted(document: str) -> Case:
        parses.append(document)
        return real(document)

    monkeypatch.setattr(Case, "model_validate_json", counted)
    with SqliteCaseStore(db_path) as store, SqliteCaseStore(db_path) as other:
        case = a_case("R-1")
        store.add(case)
        case.problems.append("changed after the add, never saved")
        added = store.get("R-1")
        moved = store.get("R-1")
        assert moved is not None
        moved.move_to(CaseState.AWAITING_CPL, at=T0, cause="saved")
        saved = store.save(moved)
        moved.problems.append("changed after the save, never saved")
        read = store.get("R-1")
        assert parses == []
        assert added is not None and added.problems == [] and added.version == 0
        assert read == saved and read.version == 1 and read.problems == []
        assert read == other.get("R-1")  # a store that did not write it parses the stored document
        assert len(parses) == 1


def test_the_demo_cases_json_round_trip_is_exact(tmp_path: Path) -> None:
    """What lets a store keep the case it wrote instead of parsing its document again."""
    home = demo_home(tmp_path / "home")
    with SqliteCaseStore(home / "bridge.sqlite3") as store:
        cases = store.list()
    assert len(cases) == 8
    for case in cases:
        assert Case.model_validate_json(case.model_dump_json()) == case

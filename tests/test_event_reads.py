"""Events about a few cases read those cases, not the history: counted on a real embedded home
(SQLite's virtual machine steps, the same with 60 and with 360 unrelated cases: with none, an index
range would end without looking at a row past it, a few steps less), and on Azurite (the entities
the service sends). The results are those of reading every case and sorting
them out, as the operations did before. ``bench/event_reads.py`` times the same events."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient, TableServiceClient

from adapters.azure_storage import TableCaseStore
from adapters.embedded.cases import SqliteCaseStore
from adapters.embedded.inventory import SqliteInventory
from adapters.embedded.sqlite import BridgeDatabase
from bench.event_reads import ENTRY, NOW, OVERDUE, PAIRED, Events, combination, database, home, steps
from flows.bootstrap import BridgeApp
from flows.domain.case import Case, CaseState
from flows.engine.registry import ActionContext
from flows.ports import InventoryRecord, InventoryStatus
from tests.support.store_builders import T0, a_case

pytest_plugins = ["tests.azurite"]

FEW, MANY = 60, 360  # unrelated cases: reading them again would multiply the steps


@pytest.fixture(scope="module")
def few(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeApp]:
    with home(tmp_path_factory.mktemp("few"), FEW, withdrawals=2) as app:
        yield app


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeApp]:
    with home(tmp_path_factory.mktemp("many"), MANY, withdrawals=2) as app:
        yield app


def call(app: BridgeApp, name: str, **inputs: Any) -> Any:
    context = ActionContext("case-lifecycle", "test-run", name, f"test/{name}", NOW)
    return app.registry.get(name).call(context, inputs)


def same_work(few: BridgeApp, many: BridgeApp, name: str, **inputs: Any) -> Any:
    """What the event returns in the home with many unrelated cases, having checked that it made
    the same SQLite steps there as in the home with few (and returned the same)."""
    counted_few, result_few = steps(few, lambda: call(few, name, **inputs))
    counted_many, result_many = steps(many, lambda: call(many, name, **inputs))
    assert counted_many == counted_few, (
        f"{name} read the unrelated cases ({counted_few} steps with {FEW}, {counted_many} with {MANY})"
    )
    assert result_many == result_few
    return result_many


def test_the_cases_of_one_entry_are_found_without_reading_the_others(few: BridgeApp, many: BridgeApp) -> None:
    found = same_work(few, many, "cases.for_entry", entry_id=ENTRY, states=["loaded", "closed"])
    assert found == {"response_ids": [*PAIRED, "K-0"]}
    # What reading every case found: unrelated cases are paired with other entries only.
    every = [
        c.response_id
        for c in many.cases.list([CaseState.LOADED, CaseState.CLOSED])
        if c.cpl_entry_id == ENTRY
    ]
    assert found["response_ids"] == every
    assert same_work(few, many, "cases.for_entry", entry_id=ENTRY, states=[]) == {"response_ids": []}
    closed = same_work(few, many, "cases.closed_loaded_for_entry", entry_id=ENTRY)
    assert closed == {"response_ids": ["K-0"]}


def test_a_change_to_one_entry_is_noted_in_its_cases_alone(few: BridgeApp, many: BridgeApp) -> None:
    changes = [{"field": "firmware_version", "old": "0001", "new": "0002"}]
    noted = same_work(few, many, "cases.note_entry_change", entry_id=ENTRY, publication="p1", changes=changes)
    assert noted == {"response_ids": list(PAIRED)}
    for response_id in PAIRED:
        case = many.cases.get(response_id)
        assert case is not None and case.timeline[-1].cause.startswith(f"SECAS changed CPL entry {ENTRY}:")


def test_the_escalation_tick_reads_the_overdue_cases_alone(few: BridgeApp, many: BridgeApp) -> None:
    first = same_work(few, many, "cases.escalate_overdue", limit_hours=72.0)
    assert [item["response_id"] for item in first["escalated"]] == list(OVERDUE)
    assert same_work(few, many, "cases.escalate_overdue", limit_hours=72.0)["escalated"] == []  # once a wait
    # Nothing else waited past the limit: the unrelated cases waiting entered their state within the day.
    waiting = many.cases.list([CaseState.RECEIVED, CaseState.AWAITING_CPL, CaseState.NEEDS_ATTENTION])
    overdue = [
        c.response_id
        for c in waiting
        if (since := c.waiting_for_cpl_since()) and NOW - since > timedelta(hours=72)
    ]
    assert overdue == list(OVERDUE)


def test_a_withdrawal_reads_the_smi_records_of_its_case_alone(few: BridgeApp, many: BridgeApp) -> None:
    withdrawn = same_work(few, many, "smi.withdraw", response_id="W-0")
    assert withdrawn == {"withdrawn": True, "dmcs": [combination("W-0").key], "cpl_entry_id": "S1-800000"}
    records = {record.response_id: record.status for record in many.inventory.all()}
    assert records.pop("W-0") is InventoryStatus.WITHDRAWN
    assert records["W-1"] is InventoryStatus.ACTIVE and records["P-0"] is InventoryStatus.ACTIVE
    # The unrelated records are as they were: a third active (loaded), a third withdrawn, a third closed.
    assert sum(status is InventoryStatus.WITHDRAWN for status in records.values()) == MANY // 6


def test_the_bench_events_make_the_same_steps_with_many_unrelated_cases(tmp_path: Path) -> None:
    """The bench's own measure, on its own homes (its timings are not a test's business)."""
    counted = []
    for unrelated in (FEW, MANY):
        with home(tmp_path / str(unrelated), unrelated, withdrawals=1) as app:
            events = Events(app)
            counted.append(
                [steps(app, getattr(events, name))[0] for name in ("for_entry", "escalation", "withdraw")]
            )
            assert database(app).path.parent == tmp_path / str(unrelated)
    assert counted[0] == counted[1]


# --- the stores ------------------------------------------------------------------------------------


def test_the_inventory_finds_the_active_records_of_some_entries(tmp_path: Path) -> None:
    with SqliteInventory(tmp_path / "bridge.sqlite3") as inventory:
        for number, entry in enumerate(["S1-1", "S1-2", "S1-1", "S1-3"]):
            record = InventoryRecord(**combination(f"M{number}")._asdict(), cpl_entry_id=entry, s1sp="FOC",
                                     response_id=f"R{number}")  # fmt: skip
            inventory.upsert(record, idempotency_key=f"load/{number}")
        inventory.withdraw(combination("M2"), idempotency_key="withdraw/2")
        found = inventory.active_from({"S1-1", "S1-3", "S1-9"})
        assert found == [
            r for r in inventory.all() if r.cpl_entry_id in {"S1-1", "S1-3"} and r.status == "active"
        ]
        assert [record.response_id for record in found] == ["R0", "R3"]
        assert inventory.active_from([]) == []


def test_files_from_before_the_indexes_get_them_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "bridge.sqlite3"
    SqliteCaseStore(path).close()
    SqliteInventory(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("DROP INDEX cases_by_state_since")
        connection.execute("DROP INDEX inventory_by_entry")
    with BridgeDatabase(path) as opened:
        SqliteCaseStore(opened)
        SqliteInventory(opened)
        with opened.read() as connection:
            names = {
                row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
            }
    assert {"cases_by_state_since", "inventory_by_entry"} <= names


def waiting_cases() -> list[Case]:
    """Cases that entered their state at known instants, one written at +01:00."""
    plus_one = timezone(timedelta(hours=1))
    cases = []
    for number, entered in enumerate(
        [T0 + timedelta(hours=1), datetime(2026, 11, 20, 11, 0, tzinfo=plus_one), T0 + timedelta(hours=3)]
    ):
        case = a_case(f"R-{number}")
        case.move_to(CaseState.AWAITING_CPL, at=entered, cause="waiting")
        case.cpl_entry_id = "S1-1" if number != 1 else "S1-2"
        cases.append(case)
    loaded = a_case("R-loaded")
    loaded.move_to(CaseState.LOADED, at=T0, cause="loaded")
    loaded.cpl_entry_id = "S1-1"
    return [*cases, loaded]


MOMENTS = [
    T0,
    T0 + timedelta(hours=1),
    T0 + timedelta(hours=1, microseconds=500_000),
    T0 + timedelta(hours=4),
]
"""R-0 and R-1 entered waiting at T0 + 1 hour, R-2 at T0 + 3 hours."""


def test_cases_entered_before_a_moment_even_in_the_text_a_version_1_file_kept(tmp_path: Path) -> None:
    """Version 1 files were given ``state_since`` as pydantic wrote the timeline: at +01:00, or without
    a fraction of a second, such a text does not sort as its instant does; the store still answers
    exactly (``entered_before`` asks the index for a day more)."""
    with SqliteCaseStore(tmp_path / "bridge.sqlite3") as store:
        for case in waiting_cases():
            store.add(case)
        with store.database.write() as connection:  # as the migration from version 1 left them
            connection.execute(
                "UPDATE cases SET state_since = '2026-11-20T11:00:00+01:00' WHERE response_id = 'R-1'"
            )
            connection.execute(
                "UPDATE cases SET state_since = '2026-11-20T12:00:00Z' WHERE response_id = 'R-2'"
            )
        states = [CaseState.AWAITING_CPL, CaseState.RECEIVED]
        for moment in [*MOMENTS, T0 + timedelta(hours=3, microseconds=1)]:
            expected = [c.response_id for c in store.list(states) if c.waited_since() < moment]
            assert [c.response_id for c in store.entered_before(states, moment)] == expected, moment
        # Compared as text, R-1's "11:00:00+01:00" sorts after "10:00:00.500000Z", R-2's "12:00:00Z" after
        # "12:00:00.000001Z": both are found all the same.
        late = store.entered_before(states, T0 + timedelta(hours=3, microseconds=1))
        assert [c.response_id for c in late] == ["R-0", "R-1", "R-2"]
        assert [c.response_id for c in store.paired_with("S1-1", states)] == ["R-0", "R-2"]
        assert [c.response_id for c in store.paired_with("S1-1", [CaseState.LOADED])] == ["R-loaded"]


# --- on Azurite ----------------------------------------------------------------------------------


class CountingTable(TableClient):
    """A real table client that counts the entities the service sends to queries."""

    sent = 0

    def query_entities(self, *args: Any, **kwargs: Any) -> Any:
        for entity in super().query_entities(*args, **kwargs):
            self.sent += 1
            yield entity


@pytest.fixture
def table(azurite: str) -> Iterator[CountingTable]:
    name = f"cases{uuid.uuid4().hex[:12]}"
    TableServiceClient.from_connection_string(azurite).create_table(name)
    client = CountingTable.from_connection_string(azurite, name)
    assert isinstance(client, CountingTable)  # the SDK's constructor builds the class it is called on
    with client:
        yield client


def test_the_table_store_is_sent_the_cases_it_asked_for_alone(table: CountingTable) -> None:
    store = TableCaseStore(table)
    for case in waiting_cases():
        store.add(case)
    for number in range(20):  # history: loaded from other entries, long ago
        old = a_case(f"U-{number:02d}", at=T0 - timedelta(days=400))
        old.move_to(CaseState.LOADED, at=T0 - timedelta(days=399), cause="loaded")
        old.cpl_entry_id = f"S1-9{number:02d}"
        store.add(old)
    for number in range(5):  # opened days later: waiting, but not for as long as asked about
        recent = a_case(f"N-{number}", at=T0 + timedelta(days=10))
        recent.move_to(CaseState.AWAITING_CPL, at=T0 + timedelta(days=10, hours=1), cause="waiting")
        store.add(recent)
    states = [CaseState.AWAITING_CPL, CaseState.LOADED]
    for entry in ("S1-1", "S1-2", "S1-900", "S1-404"):
        expected = [c.response_id for c in store.list(states) if c.cpl_entry_id == entry]
        table.sent = 0
        assert [c.response_id for c in store.paired_with(entry, states)] == expected
        assert table.sent == len(expected)
    waiting = [CaseState.AWAITING_CPL, CaseState.RECEIVED]
    for moment in MOMENTS:
        expected = [c.response_id for c in store.list(waiting) if c.waited_since() < moment]
        table.sent = 0
        assert [c.response_id for c in store.entered_before(waiting, moment)] == expected, moment
        # Only the cases opened before the moment (and a day more) came, neither N-* nor the history.
        assert table.sent == 3
    assert store.entered_before([], NOW) == [] and store.paired_with("S1-1", []) == []

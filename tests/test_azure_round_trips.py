"""The Azure stores' saved round trips, against Azurite: what each call costs in requests, and that
what a store remembers to save them (an ETag, a run's header, a kept result) never changes an outcome.

Requests are counted by azure-core's ``raw_request_hook`` on real clients: nothing is mocked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from azure.core.pipeline import PipelineRequest
from azure.data.tables import TableClient, TableServiceClient

from adapters.azure_storage import TableCaseStore, TableIdempotencyStore, TableRunStore
from adapters.recent import Recent
from flows.domain.case import CaseState
from flows.engine.runs import RunRecord, RunStatus
from flows.ports import ConcurrencyConflict
from tests.support.store_builders import T0, a_case

pytest_plugins = ["tests.azurite"]  # Azurite, installed and started once per session


class Requests:
    """Counts the HTTP requests made through the clients it is hooked into."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def hook(self, request: PipelineRequest[Any]) -> None:
        self.made.append(f"{request.http_request.method} {request.http_request.url}")

    @contextmanager
    def counting(self) -> Iterator[list[str]]:
        """The requests made inside the block."""
        before = len(self.made)
        seen: list[str] = []
        yield seen
        seen += self.made[before:]


@pytest.fixture
def requests() -> Requests:
    return Requests()


@pytest.fixture
def table(azurite: str, requests: Requests) -> Iterator[TableClient]:
    """A fresh table, with a client whose requests are counted."""
    name = f"trips{uuid.uuid4().hex[:12]}"
    with TableServiceClient.from_connection_string(azurite) as service:
        service.create_table(name)
    with TableClient.from_connection_string(azurite, name, raw_request_hook=requests.hook) as client:
        yield client


def another_client(azurite: str, table: TableClient) -> TableClient:
    """A second client on the same table: another worker's."""
    return TableClient.from_connection_string(azurite, table.table_name)


# --- cases: the ETag a store saw saves the version read ------------------------------------------


def test_a_save_after_a_read_is_one_request(table: TableClient, requests: Requests) -> None:
    store = TableCaseStore(table)
    store.add(a_case())
    case = store.get("R-0001")
    assert case is not None
    case.move_to(CaseState.AWAITING_CPL, at=T0, cause="waiting")
    with requests.counting() as made:
        case = store.save(case)
    assert [request.split()[0] for request in made] == ["PUT"]
    case.move_to(CaseState.LOADED, at=T0 + timedelta(minutes=1), cause="on the CPL")
    with requests.counting() as made:  # the ETag of its own save is remembered too
        assert store.save(case).version == 2
    assert len(made) == 1
    fresh = TableCaseStore(table).get("R-0001")
    assert fresh is not None and (fresh.state, fresh.version) == (CaseState.LOADED, 2)


def test_a_remembered_etag_another_worker_made_stale_is_still_a_conflict(
    azurite: str, table: TableClient
) -> None:
    mine, theirs = TableCaseStore(table), TableCaseStore(another_client(azurite, table))
    mine.add(a_case())
    read_by_me, read_by_them = mine.get("R-0001"), theirs.get("R-0001")
    assert read_by_me is not None and read_by_them is not None
    read_by_them.move_to(CaseState.REJECTED, at=T0, cause="theirs first")
    theirs.save(read_by_them)
    read_by_me.move_to(CaseState.AWAITING_CPL, at=T0, cause="mine second")
    with pytest.raises(ConcurrencyConflict, match="read at version 0, but version 1 is stored"):
        mine.save(read_by_me)
    stored = theirs.get("R-0001")
    assert stored is not None and (stored.state, stored.version) == (CaseState.REJECTED, 1)


def test_a_case_read_elsewhere_at_a_newer_version_saves_through_a_store_that_remembers_an_older_one(
    azurite: str, table: TableClient
) -> None:
    """The remembered entry is only a shortcut: one that does not match sends the save to the check."""
    mine, theirs = TableCaseStore(table), TableCaseStore(another_client(azurite, table))
    mine.add(a_case())  # remembers version 0
    case = theirs.get("R-0001")
    assert case is not None
    case.move_to(CaseState.AWAITING_CPL, at=T0, cause="theirs")
    newer = theirs.save(case)  # version 1, which ``mine`` never saw
    newer.move_to(CaseState.LOADED, at=T0, cause="saved through mine")
    assert mine.save(newer).version == 2
    with pytest.raises(ConcurrencyConflict, match="read at version 1, but version 2 is stored"):
        theirs.save(newer)  # ``theirs`` remembers version 1's ETag, now stale


# --- runs: finish reads no header it wrote, and writes no key twice ------------------------------


def a_run(run_id: str, keys: list[str]) -> RunRecord:
    return RunRecord(run_id=run_id, flow="intake", flow_version="v1", trigger={}, keys=keys, started_at=T0)


def test_finish_after_start_writes_only_the_new_keys_and_the_header(
    table: TableClient, requests: Requests
) -> None:
    runs = TableRunStore(table)
    assert runs.start(a_run("run-1", ["R-0001"]))
    with requests.counting() as made:
        runs.finish("run-1", RunStatus.SUCCEEDED, ended_at=T0, error=None, keys=["R-0001", "S1-9"])
    assert len(made) == 2  # the key S1-9, then header and index in one transaction
    assert "$batch" in made[-1]
    for key in ("R-0001", "S1-9"):
        assert [run.run_id for run in TableRunStore(table).find(key=key)] == ["run-1"]
    finished = TableRunStore(table).get("run-1")
    assert finished is not None
    assert (finished.status, finished.keys) == (RunStatus.SUCCEEDED, ["R-0001", "S1-9"])
    assert finished.ended_at == T0


class CutOff(BaseException):
    """The worker died: not an Exception, so nothing catches it on the way."""


def test_a_start_cut_off_before_its_keys_gets_them_from_finish(table: TableClient) -> None:
    """The header names the key, but its index entity was never written: ``finish`` writes it."""

    class DiesBeforeItsKeys(TableRunStore):
        dead = False

        def _index_keys(self, run: RunRecord, order: str, keys: list[str]) -> None:
            if not self.dead:
                self.dead = True
                raise CutOff
            super()._index_keys(run, order, keys)

    runs = DiesBeforeItsKeys(table)
    with pytest.raises(CutOff):
        runs.start(a_run("run-1", ["R-0001"]))
    assert TableRunStore(table).find(key="R-0001") == []
    assert not runs.start(a_run("run-1", ["R-0001"]))  # delivered again: the run exists
    resumed = runs.get("run-1")
    assert resumed is not None and resumed.keys == ["R-0001"]
    runs.finish("run-1", RunStatus.SUCCEEDED, ended_at=T0, error=None, keys=resumed.keys)
    assert [run.run_id for run in TableRunStore(table).find(key="R-0001")] == ["run-1"]


def test_finish_by_a_worker_that_never_saw_the_run_reads_its_header(azurite: str, table: TableClient) -> None:
    TableRunStore(table).start(a_run("run-1", ["R-0001"]))
    other = TableRunStore(another_client(azurite, table))
    other.finish("run-1", RunStatus.FAILED, ended_at=T0, error="boom", keys=["R-0001"])
    finished = TableRunStore(table).get("run-1")
    assert finished is not None and (finished.status, finished.error) == (RunStatus.FAILED, "boom")
    with pytest.raises(KeyError, match="no run 'run-404'"):
        other.finish("run-404", RunStatus.SUCCEEDED, ended_at=T0, error=None, keys=[])


# --- idempotency: a kept result is answered from memory, a missing one never is ------------------


def test_a_kept_result_is_read_once_and_a_missing_key_is_asked_each_time(
    azurite: str, table: TableClient, requests: Requests
) -> None:
    mine, theirs = TableIdempotencyStore(table), TableIdempotencyStore(another_client(azurite, table))
    assert mine.get("mail/R-1") is None
    assert theirs.put("mail/R-1", {"outputs": {"id": "theirs"}})
    with requests.counting() as made:
        assert mine.get("mail/R-1") == {"outputs": {"id": "theirs"}}  # not remembered as missing
    assert len(made) == 1
    with requests.counting() as made:
        kept = mine.get("mail/R-1")
        assert kept == {"outputs": {"id": "theirs"}}
        kept["outputs"] = "changed by the caller"
        assert mine.get("mail/R-1") == {"outputs": {"id": "theirs"}}
    assert made == []
    assert not mine.put("mail/R-1", {"outputs": {"id": "mine"}})  # the first put still wins
    assert mine.get("mail/R-1") == {"outputs": {"id": "theirs"}}


def test_what_the_stores_remember_is_bounded_and_forgets_the_oldest() -> None:
    recent: Recent[str, int] = Recent(2)
    recent.put("a", 1)
    recent.put("b", 2)
    recent.put("a", 3)  # put again: now the newest
    recent.put("c", 4)
    assert (recent.get("a"), recent.get("b"), recent.get("c"), len(recent)) == (3, None, 4, 2)
    recent.forget("a")
    assert recent.get("a") is None and len(recent) == 1

"""The Azure Storage stores and work queue against Azurite (no mocks): the behaviours the embedded
stores are held to, plus what is Azure's own: ETag conflicts between instances, entity size limits,
key characters, the queue's encoding, visibility timeout and poison queue."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient
from pydantic import ValidationError

from adapters.azure_storage import (
    AzureStores,
    DocumentTooLarge,
    StorageSettings,
    TableCaseStore,
    TableRunStore,
    connect,
)
from adapters.azure_storage._keys import key_text, shard
from flows.domain.case import Case, CaseReport, CaseState, CaseSummary
from flows.domain.cpl import CplPublication
from flows.engine.definition import ActionStatus
from flows.engine.loader import load_flow
from flows.engine.registry import ActionContext, ConnectorRegistry
from flows.engine.runner import Engine
from flows.engine.runs import REDACTED, ActionRecord, RunRecord, RunStatus
from flows.errors import BadInput, PermanentError, TransientError
from flows.ports import ConcurrencyConflict
from flows.queue_message import Message
from tests.support.store_builders import (
    T0,
    a_case,
    a_notification,
    a_notified_case,
    a_publication,
    an_entry,
    race_to_save,
)

if TYPE_CHECKING:
    from tests.azurite import AzuriteServer

pytest_plugins = ["tests.azurite"]  # Azurite, installed and started once per session


class WorkerCrash(BaseException):
    """Stands in for the process dying: not an Exception, so nothing in the engine catches it."""


# --- builders and fixtures -------------------------------------------------------------------------


def a_run(
    run_id: str, *, flow: str = "intake", keys: list[str] | None = None, at: datetime = T0
) -> RunRecord:
    return RunRecord(
        run_id=run_id, flow=flow, flow_version="v1", trigger={"case": run_id}, keys=keys or [], started_at=at
    )


def an_action(
    path: str, *, outputs: Any = None, status: ActionStatus = ActionStatus.SUCCEEDED
) -> ActionRecord:
    return ActionRecord(path=path, status=status, attempts=1, outputs=outputs, started_at=T0, ended_at=T0)


@pytest.fixture
def settings(azurite: str) -> StorageSettings:
    """Names of its own for each test: one Azurite serves the whole session."""
    suffix = uuid.uuid4().hex[:12]
    return StorageSettings(
        connection_string=azurite,
        cases_table=f"cases{suffix}",
        runs_table=f"runs{suffix}",
        idempotency_table=f"idem{suffix}",
        publications_container=f"pub-{suffix}",
        work_queue=f"work-{suffix}",
    )


@pytest.fixture
def stores(settings: StorageSettings) -> Iterator[AzureStores]:
    with connect(settings) as stores:
        yield stores


def azurite_of(settings: StorageSettings) -> str:
    """The connection string, for a look at the raw tables, blobs and queues."""
    assert settings.connection_string is not None
    return settings.connection_string.get_secret_value()


def queue_settings(settings: StorageSettings, **changes: Any) -> StorageSettings:
    return settings.model_copy(update={"visibility_timeout": 1, "max_dequeue_count": 2, **changes})


# --- cases ---------------------------------------------------------------------------------------


def test_case_round_trip_keeps_the_timeline(stores: AzureStores) -> None:
    store = stores.cases
    case = a_case()
    assert store.add(case)
    read = store.get("R-0001")
    assert read == case
    assert read is not None
    read.move_to(CaseState.AWAITING_CPL, at=T0 + timedelta(minutes=1), cause="not on the CPL yet")
    read.cpl_entry_id = "S1-000123"
    saved = store.save(read)
    assert saved.version == 1
    assert store.get("R-0001") == saved
    assert [entry.to_state for entry in saved.timeline] == [CaseState.RECEIVED, CaseState.AWAITING_CPL]
    assert saved.timeline[0].evidence == {"run": "run-1"}


def test_adding_a_case_twice_keeps_the_first_and_unknown_is_none(stores: AzureStores) -> None:
    assert stores.cases.add(a_case(supplier="First"))
    assert not stores.cases.add(a_case(supplier="Second"))
    stored = stores.cases.get("R-0001")
    assert stored is not None and stored.supplier == "First"
    assert stores.cases.get("R-404") is None


def test_the_queryable_properties_sit_beside_the_document(
    stores: AzureStores, settings: StorageSettings
) -> None:
    case = a_case()
    stores.cases.add(case)
    case.move_to(CaseState.AWAITING_CPL, at=T0, cause="waiting")
    case.cpl_entry_id = "S1-000123"
    stores.cases.save(case)
    with TableClient.from_connection_string(azurite_of(settings), settings.cases_table) as table:
        entity = table.get_entity(f"case|{shard('R-0001')}", "R-0001")
        found = list(table.query_entities("cpl_entry_id eq @id", parameters={"id": "S1-000123"}))
    assert (entity["state"], entity["supplier"], entity["version"]) == ("awaiting_cpl", case.supplier, 1)
    assert [item["response_id"] for item in found] == ["R-0001"]


def test_two_instances_read_the_same_version_and_the_first_save_wins(settings: StorageSettings) -> None:
    with connect(settings) as first, connect(settings) as second:
        assert first.cases.add(a_case())
        mine, theirs = first.cases.get("R-0001"), second.cases.get("R-0001")
        assert mine is not None and theirs is not None
        assert mine.version == theirs.version == 0
        mine.move_to(CaseState.AWAITING_CPL, at=T0, cause="waiting")
        theirs.move_to(CaseState.REJECTED, at=T0, cause="unknown supplier")
        assert first.cases.save(mine).version == 1
        with pytest.raises(ConcurrencyConflict, match=r"case R-0001: read at version 0, but version 1"):
            second.cases.save(theirs)
        stored = second.cases.get("R-0001")
        assert stored is not None
        assert (stored.state, stored.version) == (CaseState.AWAITING_CPL, 1)


def test_saving_a_case_never_added_is_a_conflict(stores: AzureStores) -> None:
    with pytest.raises(ConcurrencyConflict, match="not stored"):
        stores.cases.save(a_case("R-9999"))


@pytest.mark.parametrize("instances", ["one shared store", "a store per thread"])
def test_threads_racing_to_save_a_case_exactly_one_wins(settings: StorageSettings, instances: str) -> None:
    """Both threads pass the version check before either writes: the ETag decides."""
    with connect(settings) as one, connect(settings) as other:
        stores = [one.cases] if instances == "one shared store" else [one.cases, other.cases]
        for number in range(8):
            outcomes, stored = race_to_save(stores, f"R-{number:04d}")
            assert outcomes.count("conflict") == 1
            assert stored.version == 1 and len(stored.timeline) == 2
            assert [stored.state.value] == [outcome for outcome in outcomes if outcome != "conflict"]


def test_the_etag_catches_a_write_between_the_version_check_and_the_save(settings: StorageSettings) -> None:
    """A store whose read is overtaken: its check passes, the service refuses the write (412)."""
    with connect(settings) as stores:
        stores.cases.add(a_case())
        slow, read = stores.cases.get("R-0001"), stores.cases.get("R-0001")
        assert slow is not None and read is not None
        fast: Case = read

        class Overtaken(TableCaseStore):
            def _stored_version(self, row: str) -> Any:
                seen = super()._stored_version(row)
                if fast.version == 0:  # someone saves right after this store read the version
                    fast.move_to(CaseState.REJECTED, at=T0, cause="faster")
                    stores.cases.save(fast)
                    fast.version = 1
                return seen

        overtaken = Overtaken(TableClient.from_connection_string(azurite_of(settings), settings.cases_table))
        slow.move_to(CaseState.AWAITING_CPL, at=T0, cause="slower")
        with pytest.raises(ConcurrencyConflict, match="read at version 0, but version 1 is stored"):
            overtaken.save(slow)
        stored = stores.cases.get("R-0001")
        assert stored is not None and stored.state is CaseState.REJECTED


def test_list_by_state_in_opening_order(stores: AzureStores) -> None:
    store = stores.cases
    plus_one = timezone(timedelta(hours=1))
    store.add(a_case("R-late", at=T0 + timedelta(hours=2)))
    store.add(a_case("R-early", at=datetime(2026, 11, 20, 9, 30, tzinfo=plus_one)))  # 08:30 UTC
    store.add(a_notified_case("R-middle", at=T0 + timedelta(minutes=30)))
    store.add(a_case("R-a-tie", at=T0 + timedelta(hours=2)))  # same time as R-late, added after it
    middle = store.get("R-middle")
    assert middle is not None
    middle.move_to(CaseState.AWAITING_CPL, at=T0 + timedelta(hours=3), cause="waiting")
    store.save(middle)

    assert [case.response_id for case in store.list()] == ["R-early", "R-middle", "R-late", "R-a-tie"]
    assert [summary.notified for summary in store.summaries()] == [False, True, False, False]
    assert [case.response_id for case in store.list([CaseState.RECEIVED])] == ["R-early", "R-late", "R-a-tie"]
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


def test_a_case_with_a_very_long_timeline_round_trips(stores: AzureStores, settings: StorageSettings) -> None:
    case = a_case("R-long")
    for number in range(2_000):
        case.record(
            at=T0 + timedelta(minutes=number),
            cause=f"reminder {number}: still waiting for SECAS",
            evidence={
                "run": f"run-{number:05d}",
                "publication": hashlib.sha256(str(number).encode()).hexdigest(),
            },
        )
    assert len(case.model_dump_json()) > 300_000  # far over one string property (64 KiB)
    assert stores.cases.add(case)
    read = stores.cases.get("R-long")
    assert read == case
    assert read is not None
    read.move_to(CaseState.AWAITING_CPL, at=T0, cause="waiting")
    saved = stores.cases.save(read)
    assert stores.cases.get("R-long") == saved
    assert len(saved.timeline) == 2_002
    with TableClient.from_connection_string(azurite_of(settings), settings.cases_table) as table:
        entity = table.get_entity(f"case|{shard('R-long')}", "R-long")
    assert "doc" not in entity and entity["doc_parts"] >= 1  # compressed, in binary parts


def test_a_case_too_big_for_an_entity_is_refused_and_nothing_is_written(stores: AzureStores) -> None:
    case = a_case("R-huge")
    case.record(at=T0, cause="an attachment pasted in", evidence={"blob": os.urandom(1_000_000).hex()})
    with pytest.raises(DocumentTooLarge, match="case R-huge"):
        stores.cases.add(case)
    assert stores.cases.get("R-huge") is None


@pytest.mark.parametrize("response_id", ["R/1", "R#1?x", "R\\1", "ré 1", "R~2F", "R'1", "R\t1"])
def test_response_ids_with_characters_keys_may_not_hold(stores: AzureStores, response_id: str) -> None:
    assert stores.cases.add(a_case(response_id))
    assert not stores.cases.add(a_case(response_id))
    read = stores.cases.get(response_id)
    assert read is not None and read.response_id == response_id
    assert stores.cases.save(read).version == 1


def test_key_text_is_one_to_one_and_bounded() -> None:
    assert key_text("R-0001") == "R-0001"
    assert key_text("each[R-1].load") == "each[R-1].load"
    assert key_text("a/b") == "a~2Fb" != key_text("a~2Fb") == "a~7E2Fb"
    assert key_text("é") == "~C3~A9"
    long = key_text("x/" * 300)
    assert long.startswith("~sha256~") and len(long) == 72 and long != key_text("x/" * 301)


# --- runs ----------------------------------------------------------------------------------------


def test_run_start_record_finish_get(stores: AzureStores) -> None:
    runs = stores.runs
    assert runs.get("run-1") is None
    assert runs.start(a_run("run-1", keys=["R-0001"]))
    assert not runs.start(a_run("run-1", flow="other"))
    runs.record_action("run-1", an_action("normalise", outputs={"ok": True}))
    runs.record_action("run-1", an_action("each[R/1?].load", outputs=[1, 2]))
    runs.record_action("run-1", an_action("acknowledge", status=ActionStatus.FAILED))
    runs.record_action("run-1", an_action("normalise", outputs={"ok": "again"}))  # overwrite keeps its place
    runs.finish(
        "run-1", RunStatus.FAILED, ended_at=T0 + timedelta(seconds=5), error="boom", keys=["R-0001", "S1-9"]
    )

    run = runs.get("run-1")
    assert run is not None
    assert (run.flow, run.status, run.error, run.keys) == (
        "intake",
        RunStatus.FAILED,
        "boom",
        ["R-0001", "S1-9"],
    )
    assert run.ended_at == T0 + timedelta(seconds=5)
    assert list(run.actions) == ["normalise", "each[R/1?].load", "acknowledge"]
    assert run.actions["normalise"].outputs == {"ok": "again"}
    assert run.failed_actions() == [run.actions["acknowledge"]]
    with pytest.raises(KeyError, match="no run 'run-404'"):
        runs.finish("run-404", RunStatus.SUCCEEDED, ended_at=T0, error=None, keys=[])


def test_find_by_key_flow_and_status_newest_first(stores: AzureStores) -> None:
    runs = stores.runs
    runs.start(a_run("old", keys=["R-1"], at=T0))
    runs.start(a_run("new", keys=["R-1"], at=T0 + timedelta(hours=1)))
    runs.start(a_run("tie-first", flow="sync", at=T0 + timedelta(minutes=30)))
    runs.start(
        a_run("tie-second", flow="sync", at=T0 + timedelta(minutes=30))
    )  # same start: later write first
    runs.start(a_run("other", keys=["R-2"], at=T0 + timedelta(hours=2)))
    runs.finish("old", RunStatus.FAILED, ended_at=T0, error="x", keys=["R-1", "S1-000123"])
    runs.finish("new", RunStatus.SUCCEEDED, ended_at=T0, error=None, keys=["R-1"])

    def ids(found: list[RunRecord]) -> list[str]:
        return [run.run_id for run in found]

    assert ids(runs.find()) == ["other", "new", "tie-second", "tie-first", "old"]
    assert ids(runs.find(limit=2)) == ["other", "new"]
    assert ids(runs.find(key="R-1")) == ["new", "old"]
    assert ids(runs.find(key="S1-000123")) == ["old"]  # a key learnt while it ran
    assert ids(runs.find(key="R-1", status=RunStatus.FAILED)) == ["old"]
    assert ids(runs.find(key="R-1", flow="sync")) == []
    assert ids(runs.find(flow="sync")) == ["tie-second", "tie-first"]
    assert ids(runs.find(status=RunStatus.RUNNING)) == ["other", "tie-second", "tie-first"]
    assert ids(runs.find(flow="intake", status=RunStatus.SUCCEEDED)) == ["new"]
    assert runs.find(key="nobody") == [] and runs.find(limit=0) == []


def test_runs_and_cases_spread_over_partitions_still_come_back_in_order(
    stores: AzureStores, settings: StorageSettings
) -> None:
    """Headers, index and key entries spread over 16 partitions (one would hold the whole history);
    ``find`` merges them newest first, and ``list`` reads every case partition in one query."""
    starts = random.Random(5).sample(range(600), 60)  # minutes, shuffled: no shard is written in order
    for number, minutes in enumerate(starts):
        at = T0 + timedelta(minutes=minutes)
        stores.runs.start(a_run(f"run-{number}", keys=["S-all", f"R-{number % 3}"], at=at))
        stores.cases.add(a_case(f"R-{number:03d}", at=at))
    by_start = [f"run-{number}" for number, _ in sorted(enumerate(starts), key=lambda pair: -pair[1])]

    assert [run.run_id for run in stores.runs.find(limit=60)] == by_start
    assert [run.run_id for run in stores.runs.find(limit=7)] == by_start[:7]
    assert [run.run_id for run in stores.runs.find(key="S-all", limit=60)] == by_start
    r1 = [run_id for run_id in by_start if int(run_id.split("-")[1]) % 3 == 1]
    assert [run.run_id for run in stores.runs.find(key="R-1", limit=60)] == r1
    # every fifth run failed: a status the service cannot filter key entities by, so ``find`` reads on
    # past its first pages (a page holds ``limit`` entities)
    failed = by_start[::5]
    for run_id in failed:
        stores.runs.finish(run_id, RunStatus.FAILED, ended_at=T0, error="x", keys=["S-all"])
    assert [run.run_id for run in stores.runs.find(status=RunStatus.FAILED, limit=2)] == failed[:2]
    assert [run.run_id for run in stores.runs.find(key="S-all", status=RunStatus.FAILED, limit=3)] == failed[
        :3
    ]
    opened = [f"R-{number:03d}" for number, _ in sorted(enumerate(starts), key=lambda pair: pair[1])]
    assert [case.response_id for case in stores.cases.list()] == opened

    service = TableServiceClient.from_connection_string(azurite_of(settings))
    with service:
        runs = service.get_table_client(settings.runs_table)
        cases = service.get_table_client(settings.cases_table)
        headers = {e["PartitionKey"] for e in runs.query_entities("RowKey ge 'id|' and RowKey lt 'id}'")}
        supplier = {
            e["PartitionKey"]
            for e in runs.query_entities("PartitionKey ge 'key|S-all|' and PartitionKey lt 'key|S-all}'")
        }
        case_partitions = {entity["PartitionKey"] for entity in cases.list_entities(select=["PartitionKey"])}
    assert len(headers) > 8 and all(partition.startswith("runs|") for partition in headers)
    assert len(supplier) > 8 and len(case_partitions) > 8


def test_a_run_with_a_big_trigger_and_big_outputs_round_trips(stores: AzureStores) -> None:
    run = a_run("big").model_copy(update={"trigger": {"payload": ["answer " * 20 for _ in range(2_000)]}})
    assert stores.runs.start(run)
    stores.runs.record_action("big", an_action("parse", outputs={"rows": list(range(30_000))}))
    stored = stores.runs.get("big")
    assert stored is not None
    assert stored.trigger == run.trigger
    assert stored.actions["parse"].outputs == {"rows": list(range(30_000))}


def test_the_engine_on_table_storage_resumes_a_run_and_keeps_secrets_out(
    stores: AzureStores, settings: StorageSettings, tmp_path: Path
) -> None:
    """The flow engine with the Table run store and idempotency store: a run cut off after a side
    effect resumes without repeating it, a foreach runs in threads, secure values stay out."""
    effects: list[str] = []
    made: set[str] = set()
    crash = [True]

    def effect(context: ActionContext, value: str = "") -> dict[str, Any]:
        """Idempotent by key, as every real adapter is."""
        if context.idempotency_key not in made:
            made.add(context.idempotency_key)
            effects.append(value)
        if crash and value == "load":
            crash.clear()
            raise WorkerCrash
        return {"done": value}

    def echo(context: ActionContext, **inputs: Any) -> dict[str, Any]:
        return dict(inputs)

    registry = ConnectorRegistry()
    registry.register("test.effect", effect, side_effect=True)
    registry.register("test.echo", echo, side_effect=False)
    engine = Engine(registry, stores.runs, stores.idempotency, clock=lambda: T0)
    path = tmp_path / "flow.yaml"
    path.write_text(
        textwrap.dedent(
            """
            name: resume
            triggers: [{type: http}]
            key: ${trigger.case}
            actions:
              token:
                use: test.echo
                inputs: {secret: "${trigger.password}"}
                secure: {inputs: true, outputs: true}
              each:
                foreach: ${trigger.items}
                concurrency: 4
                actions:
                  note: {use: test.echo, inputs: {item: "${item}"}}
              load: {use: test.effect, inputs: {value: load}}
              mail: {use: test.effect, inputs: {value: mail}}
            """
        )
    )
    source = load_flow(path)
    trigger = {"case": "R-7", "password": "s3cr3t-Value", "items": ["a", "b", "c", "d", "e"]}
    with pytest.raises(WorkerCrash):
        engine.run(source, trigger, run_id="delivery-1")
    half = stores.runs.get("delivery-1")
    assert half is not None and half.status is RunStatus.RUNNING
    run = engine.run(source, trigger, run_id="delivery-1")
    assert run.status is RunStatus.SUCCEEDED
    assert effects == ["load", "mail"]  # 'load' was called again on resume, and made once by its key
    assert [item["note"]["item"] for item in run.actions["each"].outputs] == ["a", "b", "c", "d", "e"]
    assert run.actions["token"].inputs == REDACTED and run.actions["token"].outputs == REDACTED
    assert "s3cr3t-Value" not in run.model_dump_json(exclude={"trigger"})
    assert [found.run_id for found in stores.runs.find(key="R-7")] == ["delivery-1"]
    with TableClient.from_connection_string(azurite_of(settings), settings.runs_table) as table:
        stored = list(table.query_entities("PartitionKey eq @pk", parameters={"pk": "act|delivery-1"}))
    assert {entity["path"] for entity in stored} == set(run.actions)
    assert stored and all("s3cr3t-Value" not in entity["doc"] for entity in stored)


# --- idempotency ---------------------------------------------------------------------------------


def test_idempotency_first_put_wins(stores: AzureStores) -> None:
    store = stores.idempotency
    key = "emergency-load/R-0001/each[S1/000123].mail"  # '/' may not be in a table key: escaped
    assert store.get(key) is None
    assert store.put(key, {"message_id": "<1@x>", "to": ["a@b.example"], "n": 1.5, "name": "Zoë"})
    assert not store.put(key, {"message_id": "<2@x>"})
    assert store.get(key) == {"message_id": "<1@x>", "to": ["a@b.example"], "n": 1.5, "name": "Zoë"}
    long_key = "mail/" + "x" * 600  # over the key length: kept under its hash
    assert store.put(long_key, {"big": "y" * 100_000})  # over one string property: compressed
    assert store.get(long_key) == {"big": "y" * 100_000}
    assert store.get(long_key + "z") is None


def test_idempotency_refuses_what_json_cannot_keep(stores: AzureStores) -> None:
    with pytest.raises(TypeError):
        stores.idempotency.put("key", {"at": T0})
    with pytest.raises(ValueError, match="JSON"):
        stores.idempotency.put("key", {"n": float("nan")})
    assert stores.idempotency.get("key") is None


# --- publications --------------------------------------------------------------------------------


def test_publications_add_get_latest_and_duplicates(stores: AzureStores) -> None:
    store = stores.publications
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
    assert store.get("not a hash") is None

    latest = store.latest()  # 09:45 UTC is later than 10:30+01:00 (09:30 UTC)
    assert latest is not None
    assert latest.publication.source_sha256 == "a" * 64
    assert latest.fetched_at.utcoffset() == timedelta(0)
    other = store.get("b" * 64)
    assert other is not None and other.fetched_at.utcoffset() == timedelta(hours=1)  # kept as given


def test_latest_publication_on_a_tie_is_the_one_added_last(stores: AzureStores) -> None:
    for sha256 in ("b" * 64, "a" * 64, "c" * 64):
        stores.publications.add(a_publication(sha256), fetched_at=T0, source="file")
    latest = stores.publications.latest()
    assert latest is not None and latest.publication.source_sha256 == "c" * 64


def test_publication_without_a_date_and_a_bad_hash(stores: AzureStores) -> None:
    bare = CplPublication(source_sha256="d" * 64, entries=())
    assert stores.publications.add(bare, fetched_at=T0, source="file")
    kept = stores.publications.get("d" * 64)
    assert kept is not None and kept.publication == bare
    with pytest.raises(BadInput, match="not a SHA-256"):
        stores.publications.add(CplPublication(source_sha256="../x", entries=()), fetched_at=T0, source="f")


def test_a_lost_latest_marker_is_put_back_by_adding_again(
    stores: AzureStores, settings: StorageSettings
) -> None:
    """As if the process died between writing the publication and its marker."""
    store = stores.publications
    store.add(a_publication("a" * 64), fetched_at=T0, source="file")
    store.add(a_publication("b" * 64), fetched_at=T0 + timedelta(hours=1), source="file")
    with ContainerClient.from_connection_string(
        azurite_of(settings), settings.publications_container
    ) as blobs:
        (marker,) = [
            blob.name for blob in blobs.list_blobs(name_starts_with="latest/") if blob.name.endswith("b" * 64)
        ]
        blobs.delete_blob(marker)
        latest = store.latest()
        assert latest is not None and latest.publication.source_sha256 == "a" * 64
        assert not store.add(a_publication("b" * 64), fetched_at=T0 + timedelta(days=1), source="again")
        assert next(blob.name for blob in blobs.list_blobs(name_starts_with="latest/")) == marker
    latest = store.latest()
    assert latest is not None and latest.publication.source_sha256 == "b" * 64


def test_raw_publication_files_are_kept_by_their_hash(stores: AzureStores) -> None:
    data = b"PK\x03\x04 a workbook"
    sha256 = hashlib.sha256(data).hexdigest()
    assert stores.publications.get_raw(sha256) is None
    assert stores.publications.add_raw(sha256, data)
    assert not stores.publications.add_raw(sha256, data)
    assert stores.publications.get_raw(sha256) == data
    with pytest.raises(BadInput, match="SHA-256"):
        stores.publications.add_raw("e" * 64, data)


# --- the work queue ------------------------------------------------------------------------------


def a_message(number: int = 1) -> Message:
    return Message(type="event", event="case.opened", body={"response_id": f"R-{number:04d}", "n": number})


def test_queue_put_get_done(stores: AzureStores) -> None:
    queue = stores.queue
    assert queue.get() is None
    first, second = a_message(1), a_message(2)
    queue.put(first)
    queue.put(second)
    assert queue.get() == first
    queue.done(first)
    assert queue.get() == second
    queue.done(second)
    assert queue.get() is None
    with pytest.raises(KeyError, match="not taken from this queue"):
        queue.done(first)


def test_a_message_not_acknowledged_is_delivered_again_after_its_visibility_timeout(
    settings: StorageSettings,
) -> None:
    with connect(queue_settings(settings, max_dequeue_count=5)) as stores:
        message = a_message()
        stores.queue.put(message)
        assert stores.queue.get() == message
        assert stores.queue.get() is None  # hidden while it is worked on
        time.sleep(1.5)
        assert stores.queue.get() == message  # the first worker is presumed dead
        stores.queue.done(message)  # with the latest delivery's receipt
        time.sleep(1.5)
        assert stores.queue.get() is None


def test_a_message_dequeued_too_often_goes_to_the_poison_queue(settings: StorageSettings) -> None:
    tuned = queue_settings(settings)
    with connect(tuned) as stores:
        message = a_message()
        stores.queue.put(message)
        for _ in range(tuned.max_dequeue_count):
            assert stores.queue.get() == message  # taken, and never acknowledged
            time.sleep(1.5)
        assert stores.queue.get() is None  # the third delivery went to poison instead
        poison = QueueClient.from_connection_string(azurite_of(settings), tuned.poison_queue)
        with poison:
            (parked,) = poison.peek_messages(max_messages=5)
        assert Message.model_validate_json(base64.b64decode(parked.content)) == message


def test_an_unreadable_message_goes_to_the_poison_queue_at_once(
    stores: AzureStores, settings: StorageSettings
) -> None:
    with QueueClient.from_connection_string(azurite_of(settings), settings.work_queue) as raw:
        raw.send_message("not base64 at all!")
        raw.send_message(base64.b64encode(b'{"type": "nonsense"}').decode())
    message = a_message(3)
    stores.queue.put(message)
    assert stores.queue.get() == message
    with QueueClient.from_connection_string(azurite_of(settings), settings.poison_queue) as poison:
        parked = [message.content for message in poison.peek_messages(max_messages=5)]
    assert parked == ["not base64 at all!", base64.b64encode(b'{"type": "nonsense"}').decode()]


@pytest.mark.parametrize("encoding", ["base64", "text"])
def test_the_queue_text_is_what_the_functions_host_reads(settings: StorageSettings, encoding: str) -> None:
    """base64 of the JSON by default, as the Functions queue trigger expects; JSON as it is with "text"."""
    message = a_message()
    with connect(settings.model_copy(update={"message_encoding": encoding})) as stores:
        stores.queue.put(message)
        with QueueClient.from_connection_string(azurite_of(settings), settings.work_queue) as raw:
            (queued,) = raw.peek_messages()
        text = base64.b64decode(queued.content).decode() if encoding == "base64" else queued.content
        assert Message.model_validate_json(text) == message
        assert stores.queue.get() == message


def test_a_message_over_the_queue_limit_is_refused(stores: AzureStores) -> None:
    big = Message(type="event", event="x", body={"blob": "x" * 60_000})  # 80 KB once in base64
    with pytest.raises(BadInput, match="over the queue's limit"):
        stores.queue.put(big)
    assert stores.queue.get() is None


# --- settings, connecting, errors ----------------------------------------------------------------


def test_settings_need_one_way_in_and_hide_the_connection_string(azurite_server: AzuriteServer) -> None:
    azurite, key = azurite_server.connection_string, azurite_server.account_key
    with pytest.raises(ValidationError, match="needs a connection_string"):
        StorageSettings()
    with pytest.raises(ValidationError, match="not both"):
        StorageSettings(connection_string=azurite, account_name="acct")
    with pytest.raises(ValidationError, match="table name"):
        StorageSettings(account_name="acct", cases_table="cases-1")
    with pytest.raises(ValidationError, match="poison queue"):
        StorageSettings(account_name="acct", work_queue="q" * 60)
    with pytest.raises(ValidationError, match="dash"):
        StorageSettings(account_name="acct", work_queue="work--queue")
    settings = StorageSettings(connection_string=azurite)
    assert key not in repr(settings) and key not in str(settings)
    assert key not in settings.model_dump_json()
    by_name = StorageSettings(account_name="acct")
    assert by_name.service_url("queue") == "https://acct.queue.core.windows.net"
    assert by_name.poison_queue == "bridge-work-poison"


def test_connect_with_service_urls_and_a_credential(
    azurite_server: AzuriteServer, settings: StorageSettings
) -> None:
    """The path managed identity takes in Azure (here with Azurite's shared key as the credential)."""
    by_url = StorageSettings.model_validate(
        {
            **settings.model_dump(exclude={"connection_string"}),
            "table_url": azurite_server.url("table"),
            "queue_url": azurite_server.url("queue"),
            "blob_url": azurite_server.url("blob"),
        }
    )
    message = a_message()
    with connect(
        by_url, credential=AzureNamedKeyCredential(azurite_server.account, azurite_server.account_key)
    ) as stores:
        assert stores.cases.add(a_case())
        stores.queue.put(message)
    with connect(settings) as same:
        assert same.cases.get("R-0001") is not None
        assert same.queue.get() == message


def test_connect_creates_what_is_missing_once(settings: StorageSettings) -> None:
    for _ in range(2):
        with connect(settings) as stores:
            stores.cases.add(a_case())
    with (
        connect(
            settings.model_copy(update={"create_missing": False, "cases_table": "nosuchtable"})
        ) as stores,
        pytest.raises(PermanentError, match="404"),
    ):
        stores.cases.add(a_case())


def test_storage_that_does_not_answer_is_a_transient_error(azurite_server: AzuriteServer) -> None:
    dead = azurite_server.connection_string.replace(str(azurite_server.ports["table"]), "1")
    table = TableClient.from_connection_string(dead, "cases", retry_total=0)
    with table, pytest.raises(TransientError, match="no answer from Azure Storage") as raised:
        TableCaseStore(table).get("R-0001")
    assert azurite_server.account_key not in str(raised.value)


def test_a_wrong_key_is_a_permanent_error(azurite_server: AzuriteServer) -> None:
    wrong = base64.b64encode(b"not the key").decode()
    table = TableClient.from_connection_string(
        azurite_server.connection_string.replace(azurite_server.account_key, wrong), "cases", retry_total=0
    )
    with table, pytest.raises(PermanentError, match="403") as raised:
        TableRunStore(table).get("run-1")
    assert wrong not in str(raised.value)

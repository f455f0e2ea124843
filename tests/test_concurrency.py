"""Two workers at once, on one SQLite home and on one set of Azure Storage tables (Azurite).

Two bridges are built on the same state, a case waits for its CPL entry, and both workers handle the
same ``cpl.entry_added`` message at the same moment (threads released by a barrier): one inventory
load, one confirmation e-mail, and the case moved to ``loaded`` once. Then the same form responses
delivered many times, out of order and interleaved, by two workers: one case per response id.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from pydantic import SecretStr

from adapters.azure_storage import StorageSettings
from adapters.secas import read_cpl
from flows.bootstrap import BridgeApp, bootstrap
from flows.domain.case import CaseState
from flows.queue_message import Message, form_response_message
from flows.settings import SAMPLES, Settings
from tests.support.faults import FaultPlan, Wrapped, install, no_sleep

pytest_plugins = ["tests.azurite"]

NOW = datetime.fromisoformat("2026-11-24T09:05:00+00:00")
RESPONSES: list[dict[str, Any]] = json.loads((SAMPLES / "forms" / "responses.json").read_text())
WORKERS = 2


def wipe_storage(connection: str) -> None:
    """Drop the bridge's tables and publication container (Azurite only: they are re-created)."""
    defaults = StorageSettings(connection_string=SecretStr(connection))
    with TableServiceClient.from_connection_string(connection) as tables:
        for name in (defaults.cases_table, defaults.runs_table, defaults.idempotency_table):
            tables.delete_table(name)
    with BlobServiceClient.from_connection_string(connection) as blobs, suppress(ResourceNotFoundError):
        blobs.delete_container(defaults.publications_container)


def response(response_id: str) -> dict[str, Any]:
    return next(r for r in RESPONSES if str(r["responseId"]) == response_id)


class Workers:
    """Bridges sharing one state, each with its inventory counted."""

    def __init__(self, make_settings: Callable[[], Settings], count: int = WORKERS) -> None:
        self.plan = FaultPlan()  # no faults: the wrappers only count the loads
        self.wrapped = [Wrapped() for _ in range(count)]
        self._stack = ExitStack()
        self.apps: list[BridgeApp] = [
            self._stack.enter_context(
                bootstrap(make_settings(), clock=lambda: NOW, sleep=no_sleep, adjust=install(self.plan, w))
            )
            for w in self.wrapped
        ]

    def loads(self) -> list[str]:
        return [load for w in self.wrapped if w.inventory is not None for load in w.inventory.loads]

    def at_once(self, work: Callable[[int, BridgeApp], object]) -> None:
        """Run ``work`` on every worker at the same moment; re-raise the first error."""
        barrier = threading.Barrier(len(self.apps))
        errors: list[BaseException] = []

        def worker(index: int, app: BridgeApp) -> None:
            try:
                barrier.wait(timeout=30)
                work(index, app)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(i, app)) for i, app in enumerate(self.apps)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)
        if errors:
            raise errors[0]

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(params=["sqlite", "azurite"])
def workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workers]:
    if request.param == "sqlite":

        def make_settings() -> Settings:
            return Settings(home=tmp_path)
    else:
        connection = request.getfixturevalue("azurite")
        queue = f"work-{uuid.uuid4().hex[:12]}"
        wipe_storage(connection)  # the session's Azurite is shared: start from empty tables

        def make_settings() -> Settings:
            return Settings(
                home=tmp_path,
                backend="azure",
                storage_connection=SecretStr(connection),
                work_queue=queue,
                allow_stand_ins=True,  # storage is what is shared; the SMI and outboxes are read back
            )

    built = Workers(make_settings)
    try:
        yield built
    finally:
        built.close()
        if request.param == "azurite":
            wipe_storage(request.getfixturevalue("azurite"))


def test_two_workers_given_the_same_entry_event_load_the_case_once(workers: Workers, tmp_path: Path) -> None:
    first = workers.apps[0]
    first.bridge.handle(form_response_message(response("2")))
    first.bridge.drain()
    assert first.cases.get("2") is not None
    assert first.cases.get("2").state is CaseState.AWAITING_CPL  # type: ignore[union-attr]
    data = (SAMPLES / "cpl" / "cpl-2026-11-24.xlsx").read_bytes()
    first.publications.add(read_cpl(data, name="cpl-2026-11-24.xlsx"), fetched_at=NOW, source="test")

    event = Message(type="event", event="cpl.entry_added", body={"entry_id": "S1-000318"})
    workers.at_once(lambda _, app: app.bridge.handle(event))

    case = first.cases.get("2")
    assert case is not None
    assert case.state is CaseState.LOADED
    assert [t.to_state for t in case.timeline].count(CaseState.LOADED) == 1
    assert len(workers.loads()) == 1
    assert [r.cpl_entry_id for r in first.inventory.all()] == ["S1-000318"]
    assert len(list((tmp_path / "outbox" / "mail").glob("mail_loaded_2_*.eml"))) == 1
    assert len(list((tmp_path / "outbox" / "teams").glob("teams_loaded_2_*.json"))) == 1


def test_responses_delivered_many_times_out_of_order_open_one_case_each(
    workers: Workers, tmp_path: Path
) -> None:
    copies = 4
    messages = [form_response_message(r) for r in RESPONSES for _ in range(copies)]
    again = random.Random(7).sample(messages, 6)  # some queue messages delivered twice, same id
    deliveries = messages + again
    random.Random(11).shuffle(deliveries)

    def share(index: int, app: BridgeApp) -> None:
        for message in deliveries[index :: len(workers.apps)]:
            app.bridge.handle(message)

    workers.at_once(share)
    for app in workers.apps:
        app.bridge.drain()  # the events the intakes emitted (case.opened)
    first = workers.apps[0]

    cases = first.cases.list()
    ids = {str(r["responseId"]) for r in RESPONSES}
    assert sorted(c.response_id for c in cases) == sorted(ids)
    for case in cases:
        opened = [t for t in case.timeline if t.from_state is None]
        assert len(opened) == 1, case.response_id
    acknowledgements = [p.name.split("-")[0] for p in (tmp_path / "outbox" / "mail").glob("mail_ack*.eml")]
    assert len(acknowledgements) == len(set(acknowledgements))
    assert {f"mail_acknowledge_{i}" for i in ("1", "2", "3")} <= set(acknowledgements)
    opened_cards = [p.name for p in (tmp_path / "outbox" / "teams").glob("notification-intake_*")]
    assert len(opened_cards) == len(ids)  # one card per case, opened or rejected

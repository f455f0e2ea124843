"""The sample scenario on the Azure Storage backends: cases, runs, publications, idempotency keys
and the work queue in Azurite (real tables, blobs and queues on loopback). Mail, Teams and the SMI
stay on their embedded stand-ins, since those systems are not configured here."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from flows.bootstrap import bootstrap
from flows.queue_message import Message, form_response_message
from flows.settings import SAMPLES, Settings
from tests.expected import FINAL_STATES, LOADED_ENTRIES, STATES_AFTER_FIRST_SYNC

pytest_plugins = ["tests.azurite"]  # Azurite, installed and started once per session

MOMENTS = iter(["2026-11-23T14:00:00+00:00", "2026-11-23T14:05:00+00:00", "2026-11-24T09:05:00+00:00"])


def test_the_scenario_on_azure_storage(azurite: str, tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        backend="azure",
        storage_connection=SecretStr(azurite),
        work_queue=f"work-{uuid.uuid4().hex[:12]}",
        allow_stand_ins=True,  # the scenario's SMI, mail and Teams are its stand-ins, read back below
    )
    now = datetime.fromisoformat(next(MOMENTS))
    with bootstrap(settings, clock=lambda: now) as app:
        assert type(app.cases).__name__ == "TableCaseStore"
        assert type(app.bridge.queue).__name__ == "StorageWorkQueue"
        for response in json.loads((SAMPLES / "forms" / "responses.json").read_text()):
            app.bridge.submit(form_response_message(response))
        app.bridge.drain()
        for name, expected in (
            ("cpl-2026-11-20.xlsx", STATES_AFTER_FIRST_SYNC),
            ("cpl-2026-11-24.xlsx", FINAL_STATES),
        ):
            now = datetime.fromisoformat(next(MOMENTS))
            app.bridge.submit(
                Message(type="http", flow="secas-sync", body={"location": str(SAMPLES / "cpl" / name)})
            )
            app.bridge.drain()
            assert {case.response_id: case.state.value for case in app.cases.list()} == expected
        loaded = {c.response_id: c.cpl_entry_id for c in app.cases.list() if c.response_id in LOADED_ENTRIES}
        assert loaded == LOADED_ENTRIES
        assert sorted(r.cpl_entry_id for r in app.inventory.all()) == sorted(LOADED_ENTRIES.values())
        latest = app.publications.latest()
        assert latest is not None
        assert latest.publication.published_at is not None
        assert latest.publication.published_at == datetime(
            2026, 11, 24, 9, 0, tzinfo=UTC
        )  # GMT: UK time in November
        raw = app.publications.get_raw(latest.publication.source_sha256)
        assert raw == (SAMPLES / "cpl" / "cpl-2026-11-24.xlsx").read_bytes()  # kept as a blob
        assert app.bridge.engine.runs.find(key="S1-000318")
    mails = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "outbox" / "mail").glob("mail_loaded_*.eml"))
    assert mails == sorted(
        f"mail_loaded_{response_id}_{entry}" for response_id, entry in LOADED_ENTRIES.items()
    )
    assert len(list((tmp_path / "outbox" / "mail").glob("mail_acknowledge_2-*.eml"))) == 1

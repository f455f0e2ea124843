"""Small domain objects that the store tests (SQLite and Azure) both round-trip."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from functools import cache

from adapters.forms import load_form_definition, notification_from_response
from flows.domain.case import Case, CaseState
from flows.domain.cpl import CplEntry, CplPublication, CplStatus, EpclStatus
from flows.domain.notification import EmergencyNotification
from flows.ports import CaseStore, ConcurrencyConflict
from flows.settings import SAMPLES

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def a_case(
    response_id: str = "R-0001", *, at: datetime = T0, supplier: str = "Northern Lights Energy"
) -> Case:
    return Case.open(response_id, at=at, supplier=supplier, evidence={"run": "run-1"})


def a_notified_case(response_id: str = "R-0002", *, at: datetime = T0) -> Case:
    """A case opened from the first sample form response (``a_case`` has no notification)."""
    notification = a_notification().model_copy(update={"response_id": response_id})
    return Case.open(response_id, at=at, supplier=notification.supplier, notification=notification)


def race_to_save(stores: Sequence[CaseStore], response_id: str) -> tuple[list[str], Case]:
    """Add a case, then let two threads each read it, move it (one to awaiting the CPL, one to
    rejected) and save it once both have read it: the states the threads saved ("conflict" for the
    one refused), and the case as ``stores[-1]`` reads it after. Thread n uses ``stores[n % len]``."""
    targets = (CaseState.AWAITING_CPL, CaseState.REJECTED)
    stores[0].add(a_case(response_id))
    start = threading.Barrier(len(targets))

    def race(thread: int) -> str:
        store = stores[thread % len(stores)]
        case = store.get(response_id)
        assert case is not None
        case.move_to(targets[thread], at=T0, cause=f"thread {thread}")
        start.wait(timeout=10)
        try:
            store.save(case)
        except ConcurrencyConflict:
            return "conflict"
        return targets[thread].value

    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        outcomes = list(pool.map(race, range(len(targets))))
    stored = stores[-1].get(response_id)
    assert stored is not None
    return outcomes, stored


@cache
def a_notification() -> EmergencyNotification:
    form = load_form_definition(SAMPLES / "forms" / "form-definition.json")
    (first, *_) = json.loads((SAMPLES / "forms" / "responses.json").read_text())
    return notification_from_response(first, form)


def an_entry(entry_id: str = "S1-000123", *, firmware: str = "0203") -> CplEntry:
    return CplEntry(
        entry_id=entry_id,
        device_type="ESME",
        manufacturer_name="Meters & Co",
        manufacturer_id="1234",
        model_name="Volta 3",
        model_id="ab 12",
        hardware_version="0102",
        firmware_version=firmware,
        smets_version="SMETS1 v1.2",
        s1sp="FOC",
        epcl_status=EpclStatus.NON_EPCL,
        cpl_status=CplStatus.ACTIVE,
        date_added=date(2026, 11, 19),
        previous_entry_ids=("S1-000110", "S1-000111"),
        image_hash="AB" * 32,
        secas_reference="SECAS-2026-042",
    )


def a_publication(sha256: str = "a" * 64, *entries: CplEntry) -> CplPublication:
    return CplPublication(
        source_sha256=sha256,
        source_name="cpl-2026-11-20.xlsx",
        published_at=datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
        entries=entries or (an_entry(), an_entry("S1-000124", firmware="0204")),
    )

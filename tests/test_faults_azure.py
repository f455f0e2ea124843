"""The fault walk of ``test_faults`` on the Azure Storage backends (tables, blobs and the work queue in
Azurite): the worker crashes right after the first call of each kind of side effect, before its
checkpoint, and the message is delivered again. A sample, not the whole walk: each scenario on
Azurite costs seconds (every store call is an HTTP round trip), and the engine's logic is the same;
what differs is how each Azure store keeps what was written before the crash."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from flows.settings import Settings
from tests.support.faults import Call, FaultPlan, side_effecting
from tests.test_concurrency import wipe_storage
from tests.test_faults import SEED, check, clean_run, run_scenario

pytest_plugins = ["tests.azurite"]  # Azurite, installed and started once per session


def first_calls() -> list[Call]:
    """The first call of each side-effecting port method in the clean run."""
    firsts: dict[str, Call] = {}
    for call in side_effecting(clean_run().plan.calls):
        firsts.setdefault(call.name, call)
    return sorted(firsts.values(), key=lambda call: call.name)


@pytest.fixture
def azure(azurite: str, tmp_path: Path) -> Iterator[Settings]:
    wipe_storage(azurite)  # the session's Azurite is shared: start from empty tables
    yield Settings(
        home=tmp_path,
        backend="azure",
        storage_connection=SecretStr(azurite),
        work_queue=f"work-{uuid.uuid4().hex[:12]}",
        allow_stand_ins=True,  # the faults are storage's; the SMI and the outboxes are read back
    )
    wipe_storage(azurite)


@pytest.mark.parametrize("crash_point", first_calls(), ids=lambda call: f"{call.name}#{call.number}")
def test_on_azure_storage_a_crash_after_each_kind_of_effect_changes_nothing(
    tmp_path: Path, azure: Settings, crash_point: Call
) -> None:
    plan = FaultPlan(seed=SEED).at(crash_point.name, [crash_point.number], "crash_after")
    outcome = run_scenario(tmp_path, plan, azure)
    assert [injected.call for injected in plan.injected] == [crash_point]
    check(outcome)
    clean = clean_run()
    assert outcome.mails == clean.mails  # every e-mail once: none missing, none under a second key
    assert outcome.cards == clean.cards

"""The sample scenario under injected faults: a crash of the worker right after each kind of side
effect, before its checkpoint, then the interrupted message delivered again; and a run that exhausts
its retries, resubmitted once the fault clears.

The clean run (once, at collection) lists the port calls the scenario makes; each case below crashes
the worker right after one of them. Whatever happens, every case must end in its expected state, the
inventory must hold one row per loaded device model (loaded once), and the outboxes must hold exactly
the e-mails and cards of the clean run: none missing, none twice under another key.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

import pytest

from adapters.cpl_source import CplFileOrUrl
from flows.bootstrap import BridgeApp, bootstrap
from flows.engine.runs import RunStatus
from flows.queue_message import Message, form_response_message
from flows.settings import SAMPLES, Settings
from tests.expected import FINAL_STATES, LOADED_ENTRIES
from tests.support.faults import (
    Call,
    FaultPlan,
    FaultyCplSource,
    Wrapped,
    drain_redelivering,
    install,
    no_sleep,
    side_effecting,
)

MOMENTS = ("2026-11-23T14:00:00+00:00", "2026-11-23T14:05:00+00:00", "2026-11-24T09:05:00+00:00")
CPLS = ("cpl-2026-11-20.xlsx", "cpl-2026-11-24.xlsx")
SAMPLE_SIZE = 40
SEED = 20261124

# Bugs these tests found and that are now fixed: crash after cases.add (created was not idempotent).
KNOWN_BUGS: dict[str, pytest.MarkDecorator] = {}


@dataclass
class Outcome:
    states: dict[str, str]
    inventory: list[tuple[str, str]]  # (cpl entry id, dmc key) per row
    loads: list[str]
    mails: list[str]
    cards: list[str]
    plan: FaultPlan


@dataclass
class Scenario:
    app: BridgeApp
    plan: FaultPlan
    wrapped: Wrapped
    home: Path
    moment: list[datetime]

    def at(self, index: int) -> None:
        self.moment[0] = datetime.fromisoformat(MOMENTS[index])

    def deliver(self) -> list[Message]:
        return drain_redelivering(self.app.bridge.queue, self.app.bridge.handle)

    def intake(self) -> None:
        self.at(0)
        for response in json.loads((SAMPLES / "forms" / "responses.json").read_text()):
            self.wrapped.submit(form_response_message(response))
        self.deliver()

    def sync(self, index: int) -> None:
        self.at(index + 1)
        location = str(SAMPLES / "cpl" / CPLS[index])
        self.wrapped.submit(Message(type="http", flow="secas-sync", body={"location": location}))
        self.deliver()

    def outcome(self) -> Outcome:
        assert self.wrapped.inventory is not None
        self.plan.enabled = False  # reading the result is not part of the scenario
        return Outcome(
            states={case.response_id: case.state.value for case in self.app.cases.list()},
            inventory=sorted((r.cpl_entry_id, r.dmc.key) for r in self.app.inventory.all()),
            loads=list(self.wrapped.inventory.loads),
            mails=sorted(p.name for p in (self.home / "outbox" / "mail").glob("*.eml")),
            cards=sorted(p.name for p in (self.home / "outbox" / "teams").glob("*.json")),
            plan=self.plan,
        )


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    with open_scenario(tmp_path, FaultPlan(seed=SEED)) as opened:
        yield opened


class open_scenario:
    def __init__(self, home: Path, plan: FaultPlan, settings: Settings | None = None) -> None:
        moment = [datetime.fromisoformat(MOMENTS[0])]
        wrapped = Wrapped()
        app = bootstrap(
            settings or Settings(home=home),
            clock=lambda: moment[0],
            sleep=no_sleep,
            adjust=install(plan, wrapped),
            cpl_source=FaultyCplSource(CplFileOrUrl(), plan),
        )
        self.scenario = Scenario(app, plan, wrapped, home, moment)

    def __enter__(self) -> Scenario:
        return self.scenario

    def __exit__(self, *exc_info: object) -> None:
        self.scenario.app.close()


def run_scenario(home: Path, plan: FaultPlan, settings: Settings | None = None) -> Outcome:
    """The sample scenario on the embedded store in ``home``, or on the backends ``settings`` name."""
    with open_scenario(home, plan, settings) as scenario:
        scenario.intake()
        scenario.sync(0)
        scenario.sync(1)
        return scenario.outcome()


@cache
def clean_run() -> Outcome:
    with tempfile.TemporaryDirectory(prefix="faults-clean-") as folder:
        return run_scenario(Path(folder), FaultPlan(seed=SEED))


def crash_points() -> list[Call]:
    """Every call of the rarer side effects, and a seeded sample of the rest, ``SAMPLE_SIZE`` in all."""
    calls = side_effecting(clean_run().plan.calls)
    by_method: dict[str, list[Call]] = {}
    for call in calls:
        by_method.setdefault(call.name, []).append(call)
    chosen: list[Call] = []
    for group in by_method.values():  # each method: its first and last call, and a middle one
        chosen += list(dict.fromkeys([group[0], group[len(group) // 2], group[-1]]))
    rest = [call for call in calls if call not in chosen]
    chosen += random.Random(SEED).sample(rest, max(0, min(len(rest), SAMPLE_SIZE - len(chosen))))
    return sorted(chosen, key=lambda call: (call.name, call.number))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "crash_point" in metafunc.fixturenames:
        points = crash_points()
        metafunc.parametrize(
            "crash_point",
            [pytest.param(c, id=f"{c.name}#{c.number}", marks=KNOWN_BUGS.get(c.name, ())) for c in points],
        )


def test_the_clean_run_reaches_every_expected_outcome() -> None:
    clean = clean_run()
    check(clean)
    assert clean.plan.injected == []
    assert len(side_effecting(clean.plan.calls)) >= SAMPLE_SIZE


def check(outcome: Outcome) -> None:
    assert outcome.states == FINAL_STATES
    assert [entry for entry, _ in outcome.inventory] == sorted(LOADED_ENTRIES.values())
    assert len({dmc for _, dmc in outcome.inventory}) == len(outcome.inventory)
    assert sorted(outcome.loads) == sorted(dmc for _, dmc in outcome.inventory)  # each loaded once
    loaded = [name for name in outcome.mails if name.startswith("mail_loaded_")]
    expected = sorted(f"mail_loaded_{r}_{entry}" for r, entry in LOADED_ENTRIES.items())
    assert sorted(name.rsplit("-", 1)[0] for name in loaded) == expected
    acknowledged = [name.split("-")[0] for name in outcome.mails if name.startswith("mail_acknowledge_")]
    assert len(acknowledged) == len(set(acknowledged))


def test_a_worker_crash_after_an_effect_then_redelivery_changes_nothing(
    tmp_path: Path, crash_point: Call
) -> None:
    plan = FaultPlan(seed=SEED).at(crash_point.name, [crash_point.number], "crash_after")
    outcome = run_scenario(tmp_path, plan)
    assert [i.call for i in plan.injected] == [crash_point]
    check(outcome)
    clean = clean_run()
    assert outcome.mails == clean.mails  # every e-mail once: none missing, none under a second key
    assert outcome.cards == clean.cards


@pytest.mark.parametrize("kind", ["transient", "throttled", "transient_after"])
def test_transient_faults_in_every_adapter_call_are_retried_away(tmp_path: Path, kind: str) -> None:
    """Each adapter an operation calls fails its first call of every method, then works."""
    plan = FaultPlan(seed=SEED)
    for name in ("inventory.upsert", "mailer.send", "channel.post", "cpl.fetch", "cases.save"):
        plan.at(name, [1], kind)  # type: ignore[arg-type]
    outcome = run_scenario(tmp_path, plan)
    assert len(plan.injected) == 5
    check(outcome)
    clean = clean_run()
    assert outcome.mails == clean.mails
    assert outcome.cards == clean.cards


def test_a_run_that_exhausts_its_retries_fails_and_is_resubmitted_once_the_fault_clears(
    scenario: Scenario,
) -> None:
    scenario.plan.at("inventory.upsert", None, "transient")  # a permanent 503 from the SMI
    scenario.intake()
    scenario.sync(0)
    failed = scenario.app.bridge.engine.runs.find(status=RunStatus.FAILED)
    assert failed
    assert {run.flow for run in failed} == {"emergency-load"}
    failed_loads = [a for run in failed for a in run.failed_actions() if a.path.endswith(".load")]
    assert failed_loads
    assert all("503" in (a.error or "") and a.attempts == 6 for a in failed_loads)  # 1 + 5 retries
    assert scenario.plan.count("inventory.upsert") == 6 * len(failed_loads)
    assert scenario.app.inventory.all() == []

    scenario.plan.clear()
    for run in failed:
        first_failed = next(a.path for a in run.failed_actions() if a.path.endswith(".load"))
        replay = scenario.app.bridge.resubmit(run.run_id, from_action=first_failed)
        assert replay.status is RunStatus.SUCCEEDED, replay.error
    scenario.deliver()
    assert scenario.wrapped.inventory is not None
    rows = scenario.app.inventory.all()
    assert sorted(r.cpl_entry_id for r in rows) == ["S1-000316", "S1-000317"]
    assert sorted(scenario.wrapped.inventory.loads) == sorted(r.dmc.key for r in rows)  # each once
    states = {c.response_id: c.state.value for c in scenario.app.cases.list()}
    assert states["1"] == states["8"] == "loaded"
    scenario.sync(1)
    check(scenario.outcome())

"""What one event about a few cases costs with 200 unrelated cases, and with 5,000: the same, or it
reads the history a live bridge only accumulates.

    .venv/bin/python bench/event_reads.py [--small 200] [--large 5000] [--repeats 25]

Two embedded homes are filled, in the same run, with the same few cases the events concern and
``--small`` or ``--large`` unrelated ones (closed, withdrawn and rejected cases, loaded cases of other
CPL entries and their SMI records, cases that entered waiting within the day: each opened from a sample
form response, as intake leaves them). In each home, through the operations the flows call, best of
``--repeats`` (time.perf_counter):

- ``for_entry``: ``cases.for_entry`` for the entry two loaded cases are paired with (what a withdrawn
  or changed CPL entry starts);
- ``escalation``: ``cases.escalate_overdue``, the hourly tick, with two cases overdue (escalated at
  the first tick, found again at each);
- ``withdraw``: ``smi.withdraw`` of a loaded case whose entry SECAS withdrew (a case of its own each
  time, so that each call withdraws its record).

Each event's SQLite work is also counted (virtual machine steps, ``sqlite3``'s progress handler):
noise-free, and what ``tests/test_event_reads.py`` holds equal for a few and for many unrelated cases.

Prints a line per event, then last exactly one JSON line: ``{"bench": "event_reads", "small": 200,
"large": 5000, "target_ratio": 2.0, "<event>_s": [small, large], "<event>_ratio": ..., "<event>_steps":
[small, large], "ratio": <the worst>}``. Exits 1 if an event's ratio (large over small) is over 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.embedded.cases import SqliteCaseStore
from adapters.embedded.sqlite import BridgeDatabase
from adapters.forms import load_form_definition, notification_from_any
from flows.bootstrap import BridgeApp, bootstrap
from flows.domain.case import NOT_LOADABLE, Case, CaseState
from flows.domain.cpl import DeviceModelCombination
from flows.domain.notification import EmergencyNotification
from flows.engine.registry import ActionContext
from flows.ports import InventoryRecord
from flows.settings import SAMPLES, Settings

TARGET_RATIO = 2.0
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
LIMIT_HOURS = 72.0
ENTRY = "S1-900000"  # the entry the for-entry events are about
PAIRED = ("P-0", "P-1")  # loaded from ENTRY
OVERDUE = ("O-0", "O-1")  # waiting for SECAS past the limit
EVENTS = ("for_entry", "escalation", "withdraw")


def notifications() -> list[EmergencyNotification]:
    form = load_form_definition(SAMPLES / "forms" / "form-definition.json")
    found = []
    for response in json.loads((SAMPLES / "forms" / "responses.json").read_text()):
        try:
            found.append(notification_from_any(response, form))
        except ValueError:
            continue
    return found


class Filler:
    """Cases and SMI records as the flows leave them, each opened from a sample notification."""

    def __init__(self, app: BridgeApp) -> None:
        self.app = app
        self._notifications = notifications()
        self._count = 0

    def case(self, response_id: str, at: datetime) -> Case:
        notification = self._notifications[self._count % len(self._notifications)]
        self._count += 1
        notified = notification.model_copy(update={"response_id": response_id})
        return Case.open(response_id, at=at, supplier=notification.supplier, notification=notified)

    def loaded(self, response_id: str, entry_id: str, at: datetime) -> Case:
        """A case loaded from ``entry_id`` (a combination of its own), and its record in the SMI."""
        case = self.case(response_id, at)
        case.move_to(CaseState.AWAITING_CPL, at=at + timedelta(minutes=1), cause="waiting")
        case.cpl_entry_id = entry_id
        dmc = combination(response_id)
        evidence = {"run": "bench", "cpl_entry_id": entry_id, "combination": dmc._asdict()}
        case.move_to(CaseState.LOADED, at=at + timedelta(hours=1), cause="loaded", evidence=evidence)
        record = InventoryRecord(**dmc._asdict(), cpl_entry_id=entry_id, s1sp="FOC", response_id=response_id)
        self.app.inventory.upsert(record, idempotency_key=f"bench/load/{response_id}")
        return case

    def unrelated(self, number: int) -> Case:
        """The history: none of the events is about these cases or their entries."""
        response_id = f"U-{number:06d}"
        at = NOW - timedelta(days=400) + timedelta(minutes=37 * number)
        kind = number % 6
        if kind < 3:
            case = self.loaded(response_id, f"S1-{number:06d}", at)
            if kind == 0:
                case.move_to(CaseState.CLOSED, at=at + timedelta(days=20), cause="on the EPCL")
            elif kind == 1:
                case.move_to(CaseState.WITHDRAWN, at=at + timedelta(days=9), cause="withdrawn")
                self.app.inventory.withdraw(
                    combination(response_id), idempotency_key=f"bench/withdraw/{response_id}"
                )
        elif kind == 3:
            case = self.case(response_id, at)
            case.move_to(CaseState.REJECTED, at=at, cause="invalid notification", problems=["bench"])
        else:  # opened within the day, waiting for SECAS or in front of an operator: not overdue
            case = self.case(response_id, NOW - timedelta(hours=10))
            case.move_to(CaseState.AWAITING_CPL, at=NOW - timedelta(hours=9), cause="waiting")
            if kind == 5:
                problems = ["firmware_version: notified '0102', CPL has '0103'"]
                case.move_to(CaseState.NEEDS_ATTENTION, at=NOW - timedelta(hours=8), cause="differs",
                             problems=problems)  # fmt: skip
        return case

    def concerned(self, withdrawals: int) -> list[Case]:
        """The cases the events are about: ``PAIRED``, ``K-0`` (closed, loaded from ``ENTRY`` too),
        ``OVERDUE``, and ``withdrawals`` loaded cases (``W-<n>``), each from an entry of its own."""
        at = NOW - timedelta(days=30)
        cases = [self.loaded(response_id, ENTRY, at) for response_id in PAIRED]
        waiting = self.case(OVERDUE[0], NOW - timedelta(hours=100))
        waiting.move_to(CaseState.AWAITING_CPL, at=NOW - timedelta(hours=99), cause="waiting")
        stuck = self.case(OVERDUE[1], NOW - timedelta(hours=100))
        stuck.move_to(CaseState.NEEDS_ATTENTION, at=NOW - timedelta(hours=99), cause=NOT_LOADABLE,
                      problems=["CPL entry S1-899999 is Withdrawn"])  # fmt: skip
        closed = self.loaded("K-0", ENTRY, at)  # its combination listed on the EPCL since
        closed.move_to(CaseState.CLOSED, at=at + timedelta(days=2), cause="on the EPCL")
        cases += [closed, waiting, stuck]
        return cases + [self.loaded(f"W-{n}", f"S1-8{n:05d}", at) for n in range(withdrawals)]


def combination(response_id: str) -> DeviceModelCombination:
    return DeviceModelCombination("ESME", "1234", response_id, "0102", "0001")


@contextmanager
def home(folder: Path, unrelated: int, withdrawals: int) -> Iterator[BridgeApp]:
    """A bridge on an embedded home holding the concerned cases and ``unrelated`` others, opened
    afresh after filling it: nothing of the filling is left in its caches (parsed cases, pages)."""
    with bootstrap(Settings(home=folder), clock=lambda: NOW) as app:
        cases = app.cases
        assert isinstance(cases, SqliteCaseStore), "the bench measures the embedded store"
        filler = Filler(app)
        with cases.transaction():  # one commit for the lot: the filling is not measured
            for case in [*filler.concerned(withdrawals), *map(filler.unrelated, range(unrelated))]:
                cases.add(case)
    with bootstrap(Settings(home=folder), clock=lambda: NOW) as app:
        yield app


class Events:
    """The three events, through the operations the flows call (the registry's connectors)."""

    def __init__(self, app: BridgeApp) -> None:
        self.app = app
        self._withdrawn = 0

    def _call(self, name: str, **inputs: Any) -> Any:
        context = ActionContext("case-lifecycle", "bench-run", name, f"bench/{name}/{self._withdrawn}", NOW)
        return self.app.registry.get(name).call(context, inputs)

    def for_entry(self) -> Any:
        return self._call("cases.for_entry", entry_id=ENTRY, states=[CaseState.LOADED.value])

    def escalation(self) -> Any:
        return self._call("cases.escalate_overdue", limit_hours=LIMIT_HOURS)

    def withdraw(self) -> Any:
        """Withdraws the next ``W-<n>`` case's record (a case of its own each call)."""
        response_id = f"W-{self._withdrawn}"
        self._withdrawn += 1
        return self._call("smi.withdraw", response_id=response_id)


def database(app: BridgeApp) -> BridgeDatabase:
    cases = app.cases
    assert isinstance(cases, SqliteCaseStore)
    return cases.database


def steps(app: BridgeApp, event: Callable[[], Any]) -> tuple[int, Any]:
    """SQLite virtual machine steps ``event`` runs on the home's file (every statement of every
    store, all on one connection), and what it returned."""
    counted = [0]

    def count() -> int:
        counted[0] += 1
        return 0  # go on

    with database(app).read() as connection:
        connection.set_progress_handler(count, 1)
    try:
        result = event()
    finally:
        with database(app).read() as connection:
            connection.set_progress_handler(None, 0)
    return counted[0], result


def measure(small: int, large: int, repeats: int) -> dict[str, tuple[tuple[float, int], ...]]:
    """Each event's best time and its steps in a home with ``small`` unrelated cases and in one with
    ``large``, the two taken in turn (a machine that slows down meanwhile slows both)."""
    with tempfile.TemporaryDirectory(prefix="bench-event-reads-") as folder, ExitStack() as stack:
        apps = [
            stack.enter_context(home(Path(folder) / str(size), size, repeats + 1)) for size in (small, large)
        ]
        found: dict[str, tuple[tuple[float, int], ...]] = {}
        for name in EVENTS:
            events = [getattr(Events(app), name) for app in apps]
            # The first call is counted, not timed: it warms the imports and escalates the overdue.
            counted = [steps(app, event)[0] for app, event in zip(apps, events, strict=True)]
            best = [float("inf")] * len(apps)
            for _ in range(repeats):
                for number, event in enumerate(events):
                    started = time.perf_counter()
                    event()
                    best[number] = min(best[number], time.perf_counter() - started)
            found[name] = tuple(zip(best, counted, strict=True))
        return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args(argv)
    found = measure(args.small, args.large, args.repeats)
    summary: dict[str, Any] = {"bench": "event_reads", "small": args.small, "large": args.large,
                               "target_ratio": TARGET_RATIO}  # fmt: skip
    worst = 0.0
    for name in EVENTS:
        small, large = found[name]
        ratio = large[0] / small[0]
        worst = max(worst, ratio)
        print(
            f"{name}: {small[0] * 1000:.2f} ms with {args.small} unrelated cases, "
            f"{large[0] * 1000:.2f} ms with {args.large}: x{ratio:.2f}; "
            f"SQLite steps {small[1]:,} and {large[1]:,}"
        )
        summary |= {
            f"{name}_s": [round(small[0], 6), round(large[0], 6)],
            f"{name}_ratio": round(ratio, 2),
            f"{name}_steps": [small[1], large[1]],
        }
    summary["ratio"] = round(worst, 2)
    print(json.dumps(summary))
    return 0 if worst <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())

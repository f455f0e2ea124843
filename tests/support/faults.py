"""A fault injector for the bridge's ports: wrappers that fail calls by a schedule.

Each wrapper counts the calls to each of its port's methods (1-based, per port and method) and asks
the ``FaultPlan`` whether this call fails and how:

- ``transient``: a ``TransientError`` (timeout, reset connection, 5xx) before the call: nothing done;
- ``throttled``: a ``TransientError`` with ``retry_after`` (a 429) before the call;
- ``transient_after``: the call is made, then a ``TransientError``: the far side did it but the
  answer was lost (a time-out on the response);
- ``crash_after``: the call is made, then ``WorkerCrash``, a ``BaseException`` nothing in the engine
  catches: the worker died between a side effect and its checkpoint.

Faults come from explicit rules (which call numbers of which method, or every call) and, optionally,
a seeded probability. Every injected fault is recorded, and every call is logged, so a clean run lists
the calls a faulted run can be aimed at. ``install(plan)`` gives the ``adjust`` hook for ``bootstrap``.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from flows.domain.case import Case, CaseReport, CaseState, CaseSummary
from flows.domain.cpl import CplPublication, DeviceModelCombination
from flows.engine.runs import ActionRecord, RunRecord, RunStatus, RunStore
from flows.errors import TransientError
from flows.operations.secas import CplSource
from flows.ports import (
    CaseStore,
    IdempotencyStore,
    Inventory,
    InventoryRecord,
    Mailer,
    OperatorCard,
    OperatorChannel,
    OutgoingEmail,
    PublicationStore,
    StoredPublication,
    UpsertOutcome,
)
from flows.queue_message import Message
from flows.service import WorkQueue
from flows.wiring import Parts

T = TypeVar("T")
FaultKind = Literal["transient", "throttled", "transient_after", "crash_after"]
BEFORE: frozenset[FaultKind] = frozenset({"transient", "throttled"})

# Methods that change something on the far side: the ones a crash-after-effect is aimed at.
SIDE_EFFECTS: dict[str, frozenset[str]] = {
    "cases": frozenset({"add", "save"}),
    "publications": frozenset({"add", "add_raw"}),
    "idempotency": frozenset({"put"}),
    "runs": frozenset({"start", "record_action", "finish"}),
    "inventory": frozenset({"upsert", "withdraw"}),
    "mailer": frozenset({"send"}),
    "channel": frozenset({"post"}),
    "queue": frozenset({"put"}),
}


class WorkerCrash(BaseException):
    """The worker died: raised after a real call, caught by nothing in the engine."""


@dataclass(frozen=True)
class Call:
    port: str
    method: str
    number: int  # 1-based, per port and method

    @property
    def name(self) -> str:
        return f"{self.port}.{self.method}"


@dataclass(frozen=True)
class Injected:
    call: Call
    kind: FaultKind


@dataclass(frozen=True)
class Rule:
    port: str
    method: str
    kind: FaultKind
    calls: frozenset[int] | None  # None: every call

    def applies(self, call: Call) -> bool:
        return (
            call.port == self.port
            and call.method == self.method
            and (self.calls is None or call.number in self.calls)
        )


@dataclass
class FaultPlan:
    """Which calls fail, and the record of what was called and what was injected.

    ``rate`` faults that share of the calls to ``only`` (port.method names; all wrapped calls when
    empty), drawing the kind from ``kinds``, with a generator seeded by ``seed``.
    """

    seed: int = 0
    rate: float = 0.0
    kinds: Sequence[FaultKind] = ("transient", "throttled")
    only: Collection[str] = ()
    rules: list[Rule] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    injected: list[Injected] = field(default_factory=list)
    enabled: bool = True
    retry_after: float = 7.0
    _counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def at(self, name: str, calls: Iterable[int] | None, kind: FaultKind) -> FaultPlan:
        """Fail ``port.method`` at these call numbers (every call when None)."""
        port, method = name.split(".", 1)
        self.rules.append(Rule(port, method, kind, None if calls is None else frozenset(calls)))
        return self

    def clear(self) -> None:
        """The fault passes: no more rules, no more random faults."""
        self.rules.clear()
        self.rate = 0.0

    def count(self, name: str) -> int:
        port, method = name.split(".", 1)
        return self._counts[(port, method)]

    def faults(self, kind: FaultKind | None = None) -> list[Injected]:
        return [i for i in self.injected if kind is None or i.kind == kind]

    def _decide(self, port: str, method: str) -> tuple[Call, FaultKind | None]:
        with self._lock:
            self._counts[(port, method)] += 1
            call = Call(port, method, self._counts[(port, method)])
            self.calls.append(call)
            if not self.enabled:
                return call, None
            kind = next((rule.kind for rule in self.rules if rule.applies(call)), None)
            eligible = kind is None and self.rate and (not self.only or call.name in self.only)
            if eligible and self._random.random() < self.rate:
                kind = self._random.choice(list(self.kinds))
            if kind is not None:
                self.injected.append(Injected(call, kind))
            return call, kind

    def call(self, port: str, method: str, function: Callable[[], T]) -> T:
        call, kind = self._decide(port, method)
        if kind == "transient":
            raise TransientError(f"injected: {call.name} #{call.number}: connection reset (503)")
        if kind == "throttled":
            raise TransientError(
                f"injected: {call.name} #{call.number}: 429 too many requests", retry_after=self.retry_after
            )
        result = function()
        if kind == "transient_after":
            raise TransientError(f"injected: {call.name} #{call.number}: timed out reading the answer")
        if kind == "crash_after":
            raise WorkerCrash(f"injected: the worker died after {call.name} #{call.number}")
        return result


class _Wrapper:
    port = ""

    def __init__(self, plan: FaultPlan) -> None:
        self._plan = plan

    def _call(self, method: str, function: Callable[[], T]) -> T:
        return self._plan.call(self.port, method, function)


class FaultyCases(_Wrapper):
    port = "cases"

    def __init__(self, inner: CaseStore, plan: FaultPlan) -> None:
        super().__init__(plan)
        self.inner = inner

    def get(self, response_id: str) -> Case | None:
        return self._call("get", lambda: self.inner.get(response_id))

    def add(self, case: Case) -> bool:
        return self._call("add", lambda: self.inner.add(case))

    def save(self, case: Case) -> Case:
        return self._call("save", lambda: self.inner.save(case))

    def list(self, states: Iterable[CaseState] | None = None) -> list[Case]:
        return self._call("list", lambda: self.inner.list(states))

    def paired_with(self, entry_id: str, states: Iterable[CaseState]) -> Sequence[Case]:
        return self._call("paired_with", lambda: self.inner.paired_with(entry_id, states))

    def entered_before(self, states: Iterable[CaseState], moment: datetime) -> Sequence[Case]:
        return self._call("entered_before", lambda: self.inner.entered_before(states, moment))

    def summaries(self, states: Iterable[CaseState] | None = None) -> Sequence[CaseSummary]:
        return self._call("summaries", lambda: self.inner.summaries(states))

    def reports(self, states: Iterable[CaseState] | None = None) -> Sequence[CaseReport]:
        return self._call("reports", lambda: self.inner.reports(states))


class FaultyPublications(_Wrapper):
    port = "publications"

    def __init__(self, inner: PublicationStore, plan: FaultPlan) -> None:
        super().__init__(plan)
        self.inner = inner

    def add(self, publication: CplPublication, *, fetched_at: datetime, source: str) -> bool:
        return self._call("add", lambda: self.inner.add(publication, fetched_at=fetched_at, source=source))

    def add_raw(self, sha256: str, data: bytes) -> bool:
        return self._call("add_raw", lambda: self.inner.add_raw(sha256, data))

    def get_raw(self, sha256: str) -> bytes | None:
        return self._call("get_raw", lambda: self.inner.get_raw(sha256))

    def latest(self) -> StoredPublication | None:
        return self._call("latest", self.inner.latest)

    def get(self, source_sha256: str) -> StoredPublication | None:
        return self._call("get", lambda: self.inner.get(source_sha256))


class FaultyIdempotency(_Wrapper):
    port = "idempotency"

    def __init__(self, inner: IdempotencyStore, plan: FaultPlan) -> None:
        super().__init__(plan)
        self.inner = inner

    def get(self, key: str) -> dict[str, Any] | None:
        return self._call("get", lambda: self.inner.get(key))

    def put(self, key: str, result: dict[str, Any]) -> bool:
        return self._call("put", lambda: self.inner.put(key, result))


class FaultyRuns(_Wrapper):
    port = "runs"

    def __init__(self, inner: RunStore, plan: FaultPlan) -> None:
        super().__init__(plan)
        self.inner = inner

    def start(self, run: RunRecord) -> bool:
        return self._call("start", lambda: self.inner.start(run))

    def get(self, run_id: str) -> RunRecord | None:
        return self._call("get", lambda: self.inner.get(run_id))

    def record_action(self, run_id: str, record: ActionRecord) -> None:
        self._call("record_action", lambda: self.inner.record_action(run_id, record))

    def finish(
        self, run_id: str, status: RunStatus, *, ended_at: datetime, error: str | None, keys: list[str]
    ) -> None:
        self._call(
            "finish", lambda: self.inner.finish(run_id, status, ended_at=ended_at, error=error, keys=keys)
        )

    def find(
        self,
        *,
        key: str | None = None,
        flow: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        return self._call("find", lambda: self.inner.find(key=key, flow=flow, status=status, limit=limit))


class FaultyInventory(_Wrapper):
    """Also counts the upserts that changed the inventory (``loads``)."""

    port = "inventory"

    def __init__(self, inner: Inventory, plan: FaultPlan) -> None:
        super().__init__(plan)
        self.inner = inner
        self.loads: list[str] = []  # the DMC key of each upsert that created or updated a row
        self._loaded_by: set[str] = set()

    def upsert(self, record: InventoryRecord, *, idempotency_key: str, attempt: int = 1) -> UpsertOutcome:
        def upsert() -> UpsertOutcome:
            outcome = self.inner.upsert(record, idempotency_key=idempotency_key, attempt=attempt)
            if outcome is not UpsertOutcome.UNCHANGED and idempotency_key not in self._loaded_by:
                self.loads.append(record.dmc.key)  # a later attempt's replay reports the same load again
                self._loaded_by.add(idempotency_key)
            return outcome

        return self._call("upsert", upsert)

    def withdraw(self, dmc: DeviceModelCombination, *, idempotency_key: str, attempt: int = 1) -> bool:
        return self._call(
            "withdraw", lambda: self.inner.withdraw(dmc, idempotency_key=idempotency_key, attempt=attempt)
        )

    def get(self, dmc: DeviceModelCombination) -> InventoryRecord | None:
        return self._call("get", lambda: self.inner.get(dmc))

    def all(self) -> list[InventoryRecord]:
        return self._call("all", self.inner.all)


class FaultyMailer(_Wrapper):
    port = "mailer"

    def __init__(self, inner: Mailer, plan: FaultPlan) -> None:
        super().__init__(plan)
        self.inner = inner

    def send(self, email: OutgoingEmail) -> str:
        return self._call("send", lambda: self.inner.send(email))


class FaultyChannel(_Wrapper):
    port = "channel"

    def __init__(self, inner: OperatorChannel, plan: FaultPlan) -> None:
        super().__init__(plan)
        self.inner = inner

    def post(self, card: OperatorCard) -> str:
        return self._call("post", lambda: self.inner.post(card))


class FaultyQueue(_Wrapper):
    """The work queue: ``put`` is the effect of ``events.emit``."""

    port = "queue"

    def __init__(self, inner: WorkQueue, plan: FaultPlan) -> None:
        super().__init__(plan)
        self.inner = inner

    def put(self, message: Message) -> None:
        self._call("put", lambda: self.inner.put(message))

    def get(self) -> Message | None:
        return self.inner.get()  # taking work is not faulted: a lost get is a later redelivery

    def done(self, message: Message) -> None:
        self.inner.done(message)


class FaultyCplSource(_Wrapper):
    """The CPL download; pass it to ``bootstrap(cpl_source=...)`` (it is not one of ``Parts``)."""

    port = "cpl"

    def __init__(self, inner: CplSource, plan: FaultPlan) -> None:
        super().__init__(plan)
        self.inner = inner

    def fetch(self, location: str) -> bytes | None:
        return self._call("fetch", lambda: self.inner.fetch(location))


@dataclass
class Wrapped:
    """The wrappers ``install`` put in place, filled in when bootstrap calls ``adjust``."""

    inventory: FaultyInventory | None = None
    queue: FaultyQueue | None = None

    def submit(self, message: Message) -> None:
        """Put work on the queue as a trigger does: outside any worker, so not faulted."""
        assert self.queue is not None
        self.queue.inner.put(message)


def install(plan: FaultPlan, wrapped: Wrapped | None = None) -> Callable[[Parts], None]:
    """The ``adjust`` hook for ``bootstrap``: wraps every port of the built parts with ``plan``."""

    def adjust(parts: Parts) -> None:
        parts.cases = FaultyCases(parts.cases, plan)
        parts.publications = FaultyPublications(parts.publications, plan)
        parts.idempotency = FaultyIdempotency(parts.idempotency, plan)
        parts.runs = FaultyRuns(parts.runs, plan)
        inventory = FaultyInventory(parts.inventory, plan)
        parts.inventory = inventory
        parts.mailer = FaultyMailer(parts.mailer, plan)
        parts.channel = FaultyChannel(parts.channel, plan)
        queue = FaultyQueue(parts.queue, plan)
        parts.queue = queue
        if wrapped is not None:
            wrapped.inventory, wrapped.queue = inventory, queue

    return adjust


def no_sleep(seconds: float) -> None:
    """For ``bootstrap(sleep=...)``: retries do not wait."""


def side_effecting(calls: Iterable[Call]) -> list[Call]:
    return [call for call in calls if call.method in SIDE_EFFECTS.get(call.port, frozenset())]


def drain_redelivering(
    queue: WorkQueue, handle: Callable[[Message], object], *, redeliveries: int = 20
) -> list[Message]:
    """Take and handle every queued message; one the worker crashed on is delivered again, as the
    Storage queue does once its visibility timeout passes. Returns the messages redelivered."""
    redelivered: list[Message] = []
    while (message := queue.get()) is not None:
        for _ in range(redeliveries):
            try:
                handle(message)
                break
            except (WorkerCrash, TransientError):
                redelivered.append(message)
        else:
            raise RuntimeError(f"message {message.message_id} crashed the worker {redeliveries} times")
        queue.done(message)
    return redelivered

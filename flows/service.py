"""The bridge as its callers see it: submit a trigger, let the queued work run, read the results.

Triggers (a form response, a sync request, a timer tick) become messages on the work queue; each
message runs every flow whose trigger matches it, under a run id derived from the message, so a
message delivered twice resumes the same runs instead of starting new ones. Flows talk to each
other only through events put on the same queue.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol, runtime_checkable

from flows.engine.definition import Trigger
from flows.engine.loader import FlowSource
from flows.engine.runner import Engine, with_the_record
from flows.engine.runs import RunRecord, shares_transactions
from flows.queue_message import Message, TriggerType

__all__ = [
    "Bridge",
    "HoldsPoisoned",
    "KeepsPoison",
    "LooksAhead",
    "Message",
    "PoisonedMessage",
    "ReportsPoison",
    "TriggerType",
    "UnknownPoisoned",
    "WorkQueue",
]


_EVENT_IDS = uuid.UUID("8f6b2f0e-5d1c-4f1e-9a44-3c2f6d1b7a10")  # namespace of events' message ids


class WorkQueue(Protocol):
    """In-process locally, an Azure Storage queue (with its poison queue) in Azure."""

    def put(self, message: Message) -> None: ...

    def get(self) -> Message | None:
        """The next message, or None when the queue is empty."""
        ...

    def done(self, message: Message) -> None:
        """Acknowledge: the message's runs are recorded and it will not be delivered again."""
        ...


@runtime_checkable
class AcknowledgesAndTakes(Protocol):
    """A queue that can acknowledge one message and lease the next in one step (the embedded one:
    one SQLite transaction instead of two, which every other worker would wait for)."""

    def done_then_get(self, message: Message, *, first: Callable[[], object] | None = None) -> Message | None:
        """``first``: writes made in the acknowledgement's transaction, before it (the end of the
        message's last run): all or none. Given only by one whose writes share that transaction
        (``shares_transactions``); others write first, then acknowledge."""
        ...


@runtime_checkable
class LooksAhead(Protocol):
    """A queue that can tell, without taking anything, whether ``get`` would find a message now
    (both queues: the embedded one counts visible rows, the Storage queue peeks). A drain that reached
    its limit asks it: taking the next message would hide it from the next drain for a lease."""

    def waiting(self) -> bool: ...


@runtime_checkable
class ReportsPoison(Protocol):
    """A queue that moves messages to poison itself (the embedded one) and says so through
    ``on_poison``; in Azure the Functions host moves them and a poison-queue trigger reports."""

    on_poison: Callable[[dict[str, Any]], None] | None


@dataclass(frozen=True)
class PoisonedMessage:
    """A message given up on and kept for an operator: what it was, never its body (which may hold
    personal data, a supplier's contact)."""

    message_id: str  # what ``requeue_poisoned`` takes
    type: str  # the trigger type, or "unreadable"
    flow: str | None
    reason: str
    poisoned_at: datetime
    dequeue_count: int | None = None  # None: not known (the Functions host moved it)


@runtime_checkable
class HoldsPoisoned(Protocol):
    """A queue that keeps what it gave up on until an operator puts it back (both queues: the embedded
    one in its poison table, the Storage queue in a table its poison trigger fills)."""

    def poisoned_messages(self) -> list[PoisonedMessage]:
        """What is kept, oldest first."""
        ...

    def requeue_poisoned(self, message_ids: Collection[str] | None = None) -> int:
        """Put these kept messages (every one when None) back on the work queue, then forget them;
        how many were put back. An id not kept raises ``UnknownPoisoned`` before any is put back."""
        ...

    def forget_poisoned(self, message_ids: Collection[str]) -> int:
        """Delete these kept messages without putting them back (they hold a supplier's contact, and one
        an operator has dealt with by other means need not be kept); how many copies were deleted. An id
        not kept raises ``UnknownPoisoned`` before any is deleted."""
        ...


class UnknownPoisoned(KeyError):
    """``requeue_poisoned`` or ``forget_poisoned`` was given ids of no kept message (the first argument
    says which)."""

    def __init__(self, message_ids: Collection[str]) -> None:
        listed = ", ".join(sorted(message_ids))
        super().__init__(f"no poisoned message kept under {listed} (list them with 'poisoned')")


@runtime_checkable
class KeepsPoison(Protocol):
    """The Storage queue, whose poison queue a Functions trigger watches (and empties): what keeps a
    poisoned message from vanishing when its alert cannot be posted, or once it was posted."""

    def keep_poisoned(self, body: bytes) -> PoisonedMessage:
        """Keep a poisoned message's ``body`` (as the poison trigger got it) until an operator puts it
        back; once per body, however often the trigger runs on it. What was kept is returned."""
        ...

    def poison_again(self, body: bytes, *, hidden_for: int) -> None:
        """Put a poisoned message's ``body`` (as the trigger got it) back on the poison queue, hidden
        for ``hidden_for`` seconds, without expiry."""
        ...

    def bring_back_poison_poison(self) -> list[str]:
        """Move what the host moved on to ``<queue>-poison-poison`` (its alert's trigger failed every
        delivery) back to the poison queue; the queue message ids moved."""
        ...


class Bridge:
    """Flows, the engine that runs them and the queue between them."""

    def __init__(
        self,
        flows: Mapping[str, FlowSource],
        engine: Engine,
        queue: WorkQueue,
        *,
        clock: Callable[[], datetime],
        on_progress: Callable[[Message, RunRecord], None] | None = None,
    ) -> None:
        self.flows = dict(flows)
        self.engine = engine
        self.queue = queue
        self._clock = clock
        self._on_progress = on_progress
        # The queue and the run history in one SQLite file: a run's end goes in the transaction that
        # acknowledges its message, an emitted event in its action's record's (a commit less each),
        # and still neither without the other.
        self._shares_with_runs = shares_transactions(engine.runs, queue)

    def now(self) -> datetime:
        """The bridge's clock (the ``--now`` of a replay, real time otherwise)."""
        return self._clock()

    def submit(self, message: Message) -> Message:
        self.queue.put(message)
        return message

    def emit(self, event: str, body: Mapping[str, Any], *, once_per: str | None = None) -> Message:
        """Put an event for other flows on the queue (the ``events.emit`` connector calls this).

        ``once_per``: a key (an action's idempotency key, a decision's id) the event's message id is
        made from. Queued again for the same key (after a crash, a form posted twice), the copy has the
        same id, so the flows it triggers find their runs (ids derived from it) already done.
        """
        if once_per is None:
            message = Message(type="event", event=event, body=dict(body))
        else:
            message_id = uuid.uuid5(_EVENT_IDS, once_per).hex
            message = Message(message_id=message_id, type="event", event=event, body=dict(body))
        # From an action, on one SQLite file: the event is written with the action's record and key,
        # in one commit, so it is never queued without them (nor queued again on redelivery).
        if self._shares_with_runs and with_the_record(partial(self.queue.put, message)):
            return message
        return self.submit(message)

    def handle(self, message: Message) -> list[RunRecord]:
        """Run every flow the message triggers; safe to call again with the same message."""
        runs, end = self._handle(message)
        end()
        self._progress(message, runs[-1:])
        return runs

    def _handle(self, message: Message) -> tuple[list[RunRecord], Callable[[], None]]:
        """``handle`` but for the write of the last run's end, returned to be made with the message's
        acknowledgement (a run's end is written before the next run starts). ``on_progress`` hears
        of each run once its end is written: the last one's is the caller's to tell."""
        runs: list[RunRecord] = []
        end = _written
        for source in self.flows_for(message):
            end()
            self._progress(message, runs[-1:])
            trigger = {"type": message.type, "event": message.event, **message.body, "body": message.body}
            run_id = f"{message.message_id}-{source.definition.name}"
            ending = self.engine.run_to_end(source, trigger, run_id=run_id)
            runs.append(ending.record)
            end = ending.write
        return runs, end

    def _progress(self, message: Message, runs: list[RunRecord]) -> None:
        if self._on_progress is not None:
            for run in runs:
                self._on_progress(message, run)

    def drain(self, *, limit: int = 100_000) -> list[RunRecord]:
        """Process queued messages until none is left.

        ``limit`` guards against a runaway loop (a flow that emits for ever): after handling ``limit``
        messages the drain ends normally if the queue is empty, and otherwise raises ``RuntimeError``
        with the rest still queued, none of it taken. A queue that cannot look ahead (``LooksAhead``)
        is taken to be not empty.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        runs: list[RunRecord] = []
        message = self.queue.get()
        for handled in range(1, limit + 1):
            if message is None:
                return runs
            handled_runs, end = self._handle(message)
            runs += handled_runs
            if handled == limit:  # acknowledged without taking the next: it stays for the next drain
                end()
                self.queue.done(message)
                self._progress(message, handled_runs[-1:])
                if isinstance(self.queue, LooksAhead) and not self.queue.waiting():
                    return runs
                break
            done, message = message, self._done_then_get(message, end)
            self._progress(done, handled_runs[-1:])
        raise RuntimeError(f"the work queue was not empty after {limit} messages: a flow may loop")

    def _done_then_get(self, message: Message, end: Callable[[], None]) -> Message | None:
        """Write the end of the message's last run, acknowledge the message and take the next: in one
        transaction where the run history and the queue share one (the embedded stores' file), else
        one after the other, the end first. Nothing is acknowledged before the end is written."""
        if isinstance(self.queue, AcknowledgesAndTakes):
            if self._shares_with_runs:
                return self.queue.done_then_get(message, first=end)
            end()
            return self.queue.done_then_get(message)
        end()
        self.queue.done(message)
        return self.queue.get()

    def flows_for(self, message: Message) -> Iterable[FlowSource]:
        for source in self.flows.values():
            if message.flow is not None and source.definition.name != message.flow:
                continue
            if any(_matches(trigger, message) for trigger in source.definition.triggers):
                yield source

    def resubmit(self, run_id: str, *, from_action: str | None = None) -> RunRecord:
        """Run a finished run's flow again on its trigger, whole or from one action."""
        previous = self.engine.runs.get(run_id)
        if previous is None:
            raise KeyError(f"no run {run_id!r}")
        source = self.flows.get(previous.flow)
        if source is None:
            raise KeyError(f"run {run_id} is of flow {previous.flow!r}, which is not loaded")
        trigger = self.engine.trigger_of(previous)
        return self.engine.run(source, trigger, replay_of=previous, replay_from=from_action)


def _written() -> None:
    """The end of no run: nothing to write."""


def _matches(trigger: Trigger, message: Message) -> bool:
    if trigger.type != message.type:
        return False
    return trigger.type != "event" or trigger.event == message.event

"""The engine: runs a flow's actions in ``runAfter`` order and keeps the history as it goes.

Guarantees, each one tested:
- an action's result is durable before the next action starts; a run delivered again (same run id)
  reuses what was recorded and carries on from there;
- every side-effecting call gets an idempotency key (by default flow / business key / action path) and
  its result is remembered under that key, so a duplicate delivery or a resubmit makes no effect twice;
- only transient errors are retried, by the action's policy, honouring the far side's Retry-After;
  a later action reads whether a failure was transient as ``actions.<name>.transient``;
- secure inputs and outputs never reach the history, nor does a secure value quoted in an error text or
  built into an idempotency key (replaced there by ``REDACTED``), while later actions of the same
  execution still see secure outputs;
- a dry run calls nothing that has side effects.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from pydantic_core import to_jsonable_python

from flows.engine.definition import (
    Action,
    ActionStatus,
    CallAction,
    FlowDefinition,
    ForEachAction,
    RetryPolicy,
    RunAfter,
)
from flows.engine.expressions import Evaluator, ExpressionError
from flows.engine.loader import FlowSource
from flows.engine.ordering import effective_run_after, topological_order
from flows.engine.registry import ActionContext, Connector, ConnectorRegistry
from flows.engine.retrying import call_with_retry
from flows.engine.runs import (
    REDACTED,
    ActionRecord,
    RunRecord,
    RunStatus,
    RunStore,
    SharedTransactions,
    shares_transactions,
)
from flows.errors import TransientError
from flows.ports import IdempotencyStore

_log = logging.getLogger(__name__)
FAILURES = frozenset({ActionStatus.FAILED, ActionStatus.TIMED_OUT})


@dataclass(frozen=True)
class _WithRecord:
    """What is written in the transaction of an action's record besides the record: the idempotency
    key of its side effect and the result to keep under it (None when there is none to keep), and
    the writes its call left for that transaction (``with_the_record``)."""

    key: str | None = None
    result: dict[str, Any] | None = None
    writes: tuple[Callable[[], object], ...] = ()


# The writes the action whose call runs in this context leaves for its record's transaction; None
# outside a call (and in the thread a call with a time-out runs in: contexts do not follow it there).
_LEFT_FOR_THE_RECORD: ContextVar[list[Callable[[], object]] | None] = ContextVar(
    "left_for_the_record", default=None
)


def with_the_record(write: Callable[[], object]) -> bool:
    """Leave ``write`` to be made in the transaction of the record of the action whose call is running
    here, once the call has returned, rather than now; False (nothing left) outside an action's call,
    and where the call has a time-out (abandoned, it could go on after its record was written): the
    caller writes now.

    For an effect that is itself a write to the run history's database (an event on the embedded work
    queue): the effect, the action's key and its record are then written together or not at all, in
    one commit. It is made whatever the call's outcome, as it would have been made during the call."""
    left = _LEFT_FOR_THE_RECORD.get()
    if left is None:
        return False
    left.append(write)
    return True


@dataclass
class _Run:
    """What one execution of a run carries from action to action."""

    record: RunRecord
    flow: FlowDefinition
    key: str
    trigger: Mapping[str, Any]
    recorded: dict[str, ActionRecord]
    dry_run: bool
    settings: Mapping[str, Any] = field(default_factory=dict)
    # Secure outputs as they came back, by action path: later actions of this execution read them
    # from here, the history keeps them redacted. A redelivery calls those actions again.
    live: dict[str, Any] = field(default_factory=dict)
    # The texts of a secure trigger (its string and number values), found once per execution.
    secure_trigger_texts: frozenset[str] = frozenset()
    # Each secure text's written forms, case-folded, worked out once per execution: ``redact`` runs
    # for every side effect's key, and a secure trigger holds tens of texts.
    _forms: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # The forms of the secure trigger's and the secure outputs' texts, with how many secure outputs
    # they cover: worked out again only when an action adds one (``live`` only grows).
    _standing: tuple[int, tuple[tuple[str, str], ...]] = (-1, ())
    # The run's start while it is not written yet (``Engine._keep`` writes it with the first record),
    # and the lock for-each threads take to write it once.
    unstarted: _Start | None = None
    starting: threading.Lock = field(default_factory=threading.Lock)
    # The record of the run's last action (and what goes with it), left for the run's end to write.
    last: tuple[ActionRecord, _WithRecord | None] | None = None

    @property
    def common(self) -> dict[str, Any]:
        """What every expression of the run sees besides ``actions`` (and ``item`` in a for-each)."""
        run = {"id": self.record.run_id, "key": self.key, "flow": self.flow.name}
        return {"trigger": self.trigger, "settings": self.settings, "run": run}

    def redact(self, text: str, secure_inputs: Any = None) -> str:
        """``text`` with every secure value in it replaced, as written, JSON- or URL-escaped, in any
        case: a far side's error quotes what it was sent, and keys are often built from an address.
        The rest stays for operators. The business key is left: the run's ``keys`` show it anyway."""
        forms = self._standing_forms()
        if secure_inputs is not None:
            forms += self._forms_of(_texts(secure_inputs))
        if not forms:
            return text
        folded = text.casefold()
        present = {form for form, low in forms if low in folded}
        if not present:
            return text
        longest_first = sorted(present, key=len, reverse=True)
        return re.sub("|".join(map(re.escape, longest_first)), REDACTED, text, flags=re.IGNORECASE)

    def _standing_forms(self) -> tuple[tuple[str, str], ...]:
        outputs = len(self.live)  # counted before they are read: a for-each thread may add one
        counted, forms = self._standing
        if counted != outputs:
            forms = self._forms_of(self.secure_trigger_texts | _texts(self.live))
            self._standing = (outputs, forms)
        return forms

    def _forms_of(self, secrets: frozenset[str]) -> tuple[tuple[str, str], ...]:
        return tuple(form for secret in secrets - {self.key} for form in self._folded_forms(secret))

    def _folded_forms(self, secret: str) -> tuple[tuple[str, str], ...]:
        forms = self._forms.get(secret)
        if forms is None:
            forms = self._forms[secret] = tuple((form, form.casefold()) for form in _written_forms(secret))
        return forms


class Engine:
    def __init__(
        self,
        registry: ConnectorRegistry,
        runs: RunStore,
        idempotency: IdempotencyStore,
        *,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None] = time.sleep,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self._registry = registry
        self._runs = runs
        self._idempotency = idempotency
        self._clock = clock
        self._sleep = sleep
        self._settings = dict(settings or {})
        self._evaluator = Evaluator(clock)
        self._together = _joint_transaction(runs, idempotency)
        # Per block of actions of the flows run: their order and run-after, worked out once.
        self._blocks: dict[int, _Block] = {}

    # --- public -----------------------------------------------------------------------------------

    @property
    def runs(self) -> RunStore:
        """The run history this engine writes to."""
        return self._runs

    def trigger_of(self, run: RunRecord) -> dict[str, Any]:
        """The trigger a run started from, also when the history keeps it redacted (resubmit)."""
        if run.trigger != {"secure": REDACTED}:
            return run.trigger
        kept = self._idempotency.get(_trigger_key(run.run_id))
        if kept is None:
            raise KeyError(f"run {run.run_id}: its secure trigger was not kept, so it cannot be resubmitted")
        trigger: dict[str, Any] = kept["trigger"]
        return trigger

    def run(
        self,
        source: FlowSource,
        trigger: Mapping[str, Any],
        *,
        run_id: str | None = None,
        dry_run: bool = False,
        replay_of: RunRecord | None = None,
        replay_from: str | None = None,
    ) -> RunRecord:
        """Run a flow on a trigger, or resume the run with this id; returns the stored record."""
        ending = self.run_to_end(
            source, trigger, run_id=run_id, dry_run=dry_run, replay_of=replay_of, replay_from=replay_from
        )
        ending.write()
        return ending.record

    def run_to_end(
        self,
        source: FlowSource,
        trigger: Mapping[str, Any],
        *,
        run_id: str | None = None,
        dry_run: bool = False,
        replay_of: RunRecord | None = None,
        replay_from: str | None = None,
    ) -> RunEnding:
        """``run``, but the write of the run's end is left to the caller (``RunEnding.write``), who
        makes it before anything says the run ended: the bridge writes it with the queue's
        acknowledgement of the message that carried the run, in one transaction where it can.

        Every action's record is written before the next action starts, as ``run`` does; the last
        one's goes with the end, as nothing follows it. A crash before the end is written leaves a run
        that a delivery again resumes and ends, running only that last action again (an effect it
        made is found by its key)."""
        flow = source.definition
        run_id = run_id or uuid.uuid4().hex
        trigger = to_jsonable_python(trigger)
        existing = self._runs.get(run_id)
        if existing is not None and existing.status is not RunStatus.RUNNING:
            return RunEnding(existing, _NOTHING)  # delivered again after it finished: nothing to do
        base = {"trigger": trigger, "settings": self._settings}
        business = self._business_key(flow, base)
        unstarted: _Start | None = None
        if existing is None:
            seeded = _seed_from(replay_of, replay_from)
            record = RunRecord(
                run_id=run_id,
                flow=flow.name,
                flow_version=flow_version(source),
                trigger={"secure": REDACTED} if flow.secure_trigger else trigger,
                keys=[business] if business else [],
                started_at=self._clock(),
                replay_of=replay_of.run_id if replay_of else None,
                replay_root=(replay_of.replay_root or replay_of.run_id) if replay_of else None,
                replay_from=replay_from,
                dry_run=dry_run,
            )
            # Not written yet: the run's start goes in the transaction of its first action's record
            # (``_keep``), a commit less a run. Until that commit the run has recorded nothing, so a
            # crash leaves nothing of it, and the delivery again starts it afresh under the same id:
            # an effect its first action made meanwhile is found by its key, which is the same (made
            # from the business key, else from this run id), as after a crash before any record.
            unstarted = _Start(record, {"trigger": trigger} if flow.secure_trigger else None, seeded)
            existing = record.model_copy(update={"actions": seeded}) if seeded else record
        # Side effects are keyed by the business key; without one, by the run, and a replay by the
        # run it replays (else a resubmit would make every effect of a flow without a key again).
        key = business or existing.replay_root or run_id
        run = _Run(existing, flow, key, trigger, dict(existing.actions), existing.dry_run, self._settings)
        run.unstarted = unstarted
        if flow.secure_trigger:
            run.secure_trigger_texts = _texts(trigger)
        failed, results = self._run_block(run, flow.actions, "", run.common, last_with_end=True)
        keys = [*existing.keys, *self._extra_keys(run, results)]
        # ``run.recorded`` holds every record of the run, the earlier deliveries' and this one's, in
        # the order they were first written (as the store keeps them).
        failures = [r for r in run.recorded.values() if r.status in FAILURES]
        errors = [f"{r.path}: {r.error}" for r in failures]
        status = RunStatus.FAILED if failed else RunStatus.SUCCEEDED
        ended_at, error = self._clock(), "; ".join(errors) if failed else None
        unique_keys = list(dict.fromkeys(keys))

        def write() -> None:
            last = run.last
            with self._together() if run.unstarted is not None or last is not None else nullcontext():
                self._start(run)  # the last action was the first this delivery recorded
                if last is not None:
                    self._record(run, *last)
                self._runs.finish(run_id, status, ended_at=ended_at, error=error, keys=unique_keys)
            run.unstarted = run.last = None

        # The record as it ends, from memory: reading it back cost a query per run (on Azure
        # Tables a scan of the run's actions, which grows with the history). Only a second delivery
        # running this run at the same moment could have written more; the store has that.
        update = {"status": status, "ended_at": ended_at, "error": error, "keys": unique_keys}
        return RunEnding(existing.model_copy(update={**update, "actions": dict(run.recorded)}), write)

    # --- blocks and actions -----------------------------------------------------------------------

    def _run_block(
        self,
        run: _Run,
        actions: Mapping[str, Action],
        prefix: str,
        outer: dict[str, Any],
        *,
        last_with_end: bool = False,
    ) -> tuple[bool, dict[str, ActionRecord]]:
        """Run sibling actions; True when a failure among them was left unhandled. ``outer`` is what
        the block's container could see (``run.common`` at the top). ``last_with_end`` (the run's
        own actions): the last one's record is left in ``run.last``, for the run's end to write."""
        block = self._block(actions)
        run_after = block.run_after
        # What each action sees: ``outer`` with the siblings that ended so far in ``actions``. Each
        # sibling's view is added once, as it ends; rebuilding all of them for every action cost
        # the square of the block's length.
        visible = dict(outer.get("actions", {}))
        results: dict[str, ActionRecord] = {}
        for name in block.order:
            path = f"{prefix}{name}"
            record = run.recorded.get(path)
            if record is None or record.redacted:
                record, with_record = self._run_action(
                    run, actions[name], path, run_after[name], results, {**outer, "actions": visible}
                )
                if last_with_end and name == block.order[-1]:
                    # No action follows: its record is written with the run's end (one commit less a
                    # run), before anything else starts (the queue acknowledges with that end).
                    run.last = (record, with_record)
                else:
                    self._keep(run, record, with_record)
                run.recorded[path] = record
            results[name] = record
            visible = {**visible, name: _view(record, run.live)}  # a new dict: contexts given out keep theirs
        return _unhandled_failure(run_after, results), results

    def _keep(self, run: _Run, record: ActionRecord, with_record: _WithRecord | None) -> None:
        """Write an action's record, with its side effect's key when it made one (both or neither),
        and with the run's start when it is the run's first: durable when this returns."""
        if run.unstarted is not None:
            with run.starting:  # for-each threads: one of them writes the start, the others wait for it
                if run.unstarted is not None:
                    with self._together():
                        self._start(run)
                        self._record(run, record, with_record)
                    run.unstarted = None  # only now: until it is written, the others wait above
                    return
        if with_record is None:
            self._runs.record_action(run.record.run_id, record)
        else:
            with self._together():  # the side effect's key and the action's record: both or neither
                self._record(run, record, with_record)

    def _record(self, run: _Run, record: ActionRecord, with_record: _WithRecord | None) -> None:
        if with_record is not None:
            for write in with_record.writes:  # first: the effect, then what says it was made
                write()
            if with_record.key is not None and with_record.result is not None:
                self._idempotency.put(with_record.key, with_record.result)
        self._runs.record_action(run.record.run_id, record)

    def _start(self, run: _Run) -> None:
        """Write the run's start (its header, a secure trigger kept for resubmit, a resubmit's kept
        records) if it is not written yet: in the caller's transaction, before anything of the run."""
        start = run.unstarted
        if start is None:
            return
        run_id = start.record.run_id
        if start.secure_trigger is not None:
            self._idempotency.put(_trigger_key(run_id), start.secure_trigger)
        # False: another delivery of the same message started it meanwhile. Its records and ours are
        # of the same actions, their effects keyed alike; each delivery writes its own over the other's.
        if self._runs.start(start.record):
            for action_record in start.seeded.values():
                self._runs.record_action(run_id, action_record)

    def _block(self, actions: Mapping[str, Action]) -> _Block:
        """The order a block's actions run in, worked out once per block of a loaded flow: a flow's
        definition is frozen, and the cache keeps the block itself, so its id is not reused."""
        block = self._blocks.get(id(actions))
        if block is None or block.actions is not actions:
            if len(self._blocks) >= CACHED_BLOCKS:  # flows loaded again and again (tests): start over
                self._blocks.clear()
            run_after = effective_run_after(actions)
            block = self._blocks[id(actions)] = _Block(
                actions, run_after, tuple(topological_order(run_after))
            )
        return block

    def _run_action(
        self,
        run: _Run,
        action: Action,
        path: str,
        run_after: Mapping[str, list[ActionStatus]],
        siblings: dict[str, ActionRecord],
        context: dict[str, Any],
    ) -> tuple[ActionRecord, _WithRecord | None]:
        started = self._clock()
        for dependency, wanted in run_after.items():
            if siblings[dependency].status not in wanted:
                return _record(path, ActionStatus.SKIPPED, started, self._clock(), error=None), None
        try:
            if action.condition is not None and not self._evaluator.evaluate(action.condition, context):
                return _record(path, ActionStatus.SKIPPED, started, self._clock(), error=None), None
            if isinstance(action, CallAction):
                return self._call(run, action, path, context, started)
            if isinstance(action, ForEachAction):
                return self._foreach(run, action, path, context, started), None
            failed, results = self._run_block(run, action.actions, f"{path}.", context)
            outputs = {child: result.outputs for child, result in results.items()}
            status = ActionStatus.FAILED if failed else ActionStatus.SUCCEEDED
            return _record(path, status, started, self._clock(), outputs=outputs, error=None), None
        except ExpressionError as error:
            wiped = isinstance(action, CallAction) and action.secure.inputs  # its inputs may be in any form
            text = f"{type(error).__name__}: {REDACTED}" if wiped else run.redact(str(error))
            return _record(path, ActionStatus.FAILED, started, self._clock(), error=text), None

    def _call(
        self, run: _Run, action: CallAction, path: str, context: dict[str, Any], started: datetime
    ) -> tuple[ActionRecord, _WithRecord | None]:
        """Call an operation; a side effect's result comes back to be remembered under its key, which
        ``_run_block`` writes with the action's record."""
        connector = self._registry.get(action.use)
        inputs = self._evaluator.evaluate(action.inputs, context)
        if action.idempotency_key is not None:
            key = str(self._evaluator.evaluate(action.idempotency_key, context))
        else:
            key = f"{run.flow.name}/{run.key}/{path}"
        shown_inputs = REDACTED if action.secure.inputs else inputs
        secure_inputs = inputs if action.secure.inputs else None
        shown_key = run.redact(key, secure_inputs)
        if connector.side_effect and run.dry_run:
            would = {
                "dry_run": True,
                "would_call": action.use,
                "inputs": shown_inputs,
                "idempotency_key": shown_key,
            }
            return _record(
                path,
                ActionStatus.SUCCEEDED,
                started,
                self._clock(),
                inputs=shown_inputs,
                outputs=would,
                error=None,
            ), None
        if connector.side_effect:
            remembered = self._idempotency.get(key)
            if remembered is not None and not remembered.get("redacted"):
                return ActionRecord(
                    path=path, status=ActionStatus.SUCCEEDED, attempts=0, inputs=shown_inputs,
                    outputs=REDACTED if action.secure.outputs else remembered.get("outputs"),
                    redacted=action.secure.outputs, idempotency_key=shown_key, deduplicated=True,
                    started_at=started, ended_at=self._clock(),
                ), None  # fmt: skip
        context_for_call = ActionContext(run.flow.name, run.record.run_id, path, key, self._clock())
        policy = action.retry or run.flow.retry
        # An action with secure inputs keeps only its error's type: what it sent could come back in
        # any form. Others keep their error with the secure values taken out.
        redact: Callable[[str], str] = (lambda text: REDACTED) if action.secure.inputs else run.redact
        left: list[Callable[[], object]] = []
        leaving = _LEFT_FOR_THE_RECORD.set(left)
        try:
            outcome = self._invoke(connector, action, policy, context_for_call, inputs, redact=redact)
        finally:
            _LEFT_FOR_THE_RECORD.reset(leaving)
        outputs = _json_safe(to_jsonable_python(outcome.outputs))
        if action.secure.outputs and outcome.status is ActionStatus.SUCCEEDED:
            run.live[path] = outputs
        with_record: _WithRecord | None = None
        if outcome.status is ActionStatus.SUCCEEDED and connector.side_effect:
            kept = {"redacted": True} if action.secure.outputs else {"outputs": outputs}
            with_record = _WithRecord(key, kept, tuple(left))
        elif left:
            with_record = _WithRecord(writes=tuple(left))
        return ActionRecord(
            path=path, status=outcome.status, attempts=outcome.attempts, inputs=shown_inputs,
            outputs=REDACTED if action.secure.outputs else outputs, redacted=action.secure.outputs,
            error=outcome.error, transient=outcome.transient,
            idempotency_key=shown_key if connector.side_effect else None,
            started_at=started, ended_at=self._clock(),
        ), with_record  # fmt: skip

    def _invoke(
        self,
        connector: Connector,
        action: CallAction,
        policy: RetryPolicy,
        context: ActionContext,
        inputs: dict[str, Any],
        *,
        redact: Callable[[str], str],
    ) -> _Outcome:
        attempts = 0
        # Set on time-out: the thread left behind makes no more attempts. A plain flag (one thread
        # sets it, the other reads it) rather than a ``threading.Event`` made for every call.
        abandoned = False

        def attempt() -> Any:
            nonlocal attempts
            if abandoned:
                raise _Abandoned
            attempts += 1
            # ``context`` says attempt 1: only a retry needs a copy (``replace`` costs microseconds).
            return connector.call(context if attempts == 1 else replace(context, attempt=attempts), inputs)

        def sleep(seconds: float) -> None:
            self._sleep(seconds)
            if abandoned:
                raise _Abandoned

        def retrying(failed: int, error: BaseException, delay: float) -> None:
            # Told as it happens: a far side answering 500 kept a command silent for minutes, and
            # the run's record says only how many attempts it took, once it is over.
            _log.warning(
                "%s %s: attempt %d of %d failed: %s: %s; trying again in %.0f s",
                context.flow, context.action, failed, policy.attempts, type(error).__name__,
                redact(str(error)), delay,
            )  # fmt: skip

        def with_retry() -> Any:
            return call_with_retry(attempt, policy, sleep=sleep, on_retry=retrying)

        try:
            if action.timeout is None:
                return _Outcome(ActionStatus.SUCCEEDED, with_retry(), attempts, None)
            # A thread cannot be stopped: on time-out the call is abandoned, not cancelled. Side
            # effects stay safe because the idempotency key makes a later attempt a no-op.
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"action-{context.action}")
            try:
                value = pool.submit(with_retry).result(timeout=action.timeout.total_seconds())
            finally:
                pool.shutdown(wait=False)
            return _Outcome(ActionStatus.SUCCEEDED, value, attempts, None)
        except FutureTimeout:
            abandoned = True
            late = f"timed out after {action.timeout}"
            return _Outcome(ActionStatus.TIMED_OUT, None, attempts, late, transient=True)
        except Exception as error:  # recorded for operators; the run fails, the engine does not
            text = f"{type(error).__name__}: {redact(str(error))}"
            # The same test the retries make (``call_with_retry``): any TransientError, by any name.
            return _Outcome(ActionStatus.FAILED, None, attempts, text, isinstance(error, TransientError))

    def _foreach(
        self, run: _Run, action: ForEachAction, path: str, context: dict[str, Any], started: datetime
    ) -> ActionRecord:
        items = self._evaluator.evaluate(action.foreach, context)
        if items is None:
            items = []
        if not isinstance(items, list):
            error = f"foreach needs a list, got {type(items).__name__}"
            return _record(path, ActionStatus.FAILED, started, self._clock(), error=error)
        item_contexts = [{**context, "item": item, "index": index} for index, item in enumerate(items)]
        keys = [
            str(self._evaluator.evaluate(action.item_key, item_context)) if action.item_key else str(index)
            for index, item_context in enumerate(item_contexts)
        ]
        repeated = sorted(key for key, times in Counter(keys).items() if times > 1)
        if repeated:  # items sharing a key would share their records: all but the first would be skipped
            shown = run.redact(", ".join(repeated))
            error = f"itemKey gives several items the same key ({shown}); each item needs its own"
            return _record(path, ActionStatus.FAILED, started, self._clock(), error=error)

        def iteration(index: int) -> tuple[bool, dict[str, Any]]:
            outer = item_contexts[index]
            failed, results = self._run_block(run, action.actions, f"{path}[{keys[index]}].", outer)
            return failed, {name: result.outputs for name, result in results.items()}

        if action.concurrency == 1 or len(items) < 2:
            outcomes = [iteration(index) for index in range(len(items))]
        else:
            with ThreadPoolExecutor(max_workers=action.concurrency) as pool:
                outcomes = list(pool.map(iteration, range(len(items))))
        failed = any(failure for failure, _ in outcomes)
        status = ActionStatus.FAILED if failed else ActionStatus.SUCCEEDED
        outputs = [outputs for _, outputs in outcomes]
        return _record(
            path,
            status,
            started,
            self._clock(),
            outputs=outputs,
            error="an iteration failed" if failed else None,
        )

    # --- helpers ----------------------------------------------------------------------------------

    def _business_key(self, flow: FlowDefinition, context: Mapping[str, Any]) -> str:
        if flow.key is None:
            return ""
        value = self._evaluator.evaluate(flow.key, context)
        return "" if value is None else str(value)

    def _extra_keys(self, run: _Run, results: Mapping[str, ActionRecord]) -> list[str]:
        if not run.flow.keys:
            return []
        # The keys are kept in history: they see the outputs as the history keeps them, redacted.
        context = {**run.common, "actions": {name: _view(r, {}) for name, r in results.items()}}
        keys: list[str] = []
        for template in run.flow.keys:
            try:
                value = self._evaluator.evaluate(template, context)
            except ExpressionError:
                continue
            values = value if isinstance(value, list) else [value]
            keys += [str(v) for v in values if v not in (None, "", [])]
        return keys


@dataclass(frozen=True)
class _Start:
    """What starting a run writes: its header, its secure trigger (kept for resubmit) and the
    records a resubmit from an action keeps from the run it replays."""

    record: RunRecord
    secure_trigger: dict[str, Any] | None
    seeded: dict[str, ActionRecord]


@dataclass(frozen=True)
class RunEnding:
    """A run that ended (``record``, as it ended) and the write that says so in the history, which the
    caller of ``Engine.run_to_end`` makes (a no-op for a run that had ended before)."""

    record: RunRecord
    write: Callable[[], None]


def _nothing() -> None:
    """The write of a run that ended before: it is written already."""


_NOTHING = _nothing


class _Abandoned(Exception):
    """Raised in a timed-out action's thread instead of its next attempt."""


SHORTEST_SECRET = 4  # characters: shorter values ("Yes", "1") are not searched for in texts


def _texts(value: Any) -> frozenset[str]:
    """The string and number values inside ``value``, as they would be written in a text."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):  # the most frequent, tested first
            text = str(item)  # a subclass (an enum's member) as written
        elif isinstance(item, dict):
            stack += item.values()
            continue
        elif isinstance(item, list | tuple):
            stack += item
            continue
        elif isinstance(item, int | float) and not isinstance(item, bool):
            text = str(item)
        else:
            continue
        if len(text) >= SHORTEST_SECRET:
            found.add(text)
    return frozenset(found)


# Characters that JSON, ``repr`` and URL encoding all leave as they are.
_WRITTEN_ALIKE = re.compile(r"[A-Za-z0-9_.~-]*")


def _written_forms(secret: str) -> set[str]:
    """How a value may appear in a text: as it is, JSON- or repr-escaped, URL-encoded."""
    if _WRITTEN_ALIKE.fullmatch(secret):  # an id, a number, a hash: one form (three encodings spared)
        return {secret} if secret else set()
    return {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], quote(secret, safe="")} - {""}


def _json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity as ``None``, as JSON has no such numbers: the result of a
    side effect already made must be kept, not refused (a far side's JSON may hold ``NaN``).

    ``value`` comes from ``to_jsonable_python``, which gives plain ``dict``, ``list`` and ``float``
    (never subclasses): the exact types are tested, and only they are visited (a call per string
    or integer in every action's outputs was most of the cost)."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {key: _json_safe(item) if type(item) in _MAY_HOLD_NAN else item for key, item in value.items()}
    if kind is list:
        return [_json_safe(item) if type(item) in _MAY_HOLD_NAN else item for item in value]
    return value


_MAY_HOLD_NAN = frozenset({dict, list, float})


@dataclass(frozen=True)
class _Outcome:
    status: ActionStatus
    outputs: Any
    attempts: int
    error: str | None
    transient: bool = False


def _record(
    path: str,
    status: ActionStatus,
    started: datetime,
    ended: datetime,
    *,
    error: str | None,
    inputs: Any = None,
    outputs: Any = None,
) -> ActionRecord:
    return ActionRecord(
        path=path,
        status=status,
        inputs=inputs,
        outputs=outputs,
        error=error,
        started_at=started,
        ended_at=ended,
    )


def _view(record: ActionRecord, live: Mapping[str, Any]) -> dict[str, Any]:
    """What expressions read of an action that ended, as ``actions.<name>``: its secure outputs as
    they came back when ``live`` has them (this execution), else as the history keeps them."""
    outputs = live.get(record.path, record.outputs)
    return {
        "status": record.status.value,
        "outputs": outputs,
        "error": record.error,
        "transient": record.transient,
    }


@dataclass(frozen=True)
class _Block:
    """Sibling actions with their ``runAfter`` made explicit and the order they run in."""

    actions: Mapping[str, Action]
    run_after: dict[str, RunAfter]
    order: tuple[str, ...]


CACHED_BLOCKS = 256


def _unhandled_failure(
    run_after: Mapping[str, Mapping[str, list[ActionStatus]]], results: Mapping[str, ActionRecord]
) -> bool:
    """A failure counts against the block unless a sibling that runs after that failure ran."""
    for name, result in results.items():
        if result.status not in FAILURES:
            continue
        handled = any(
            name in dependencies
            and result.status in dependencies[name]
            and results[other].status is not ActionStatus.SKIPPED
            for other, dependencies in run_after.items()
            if other in results
        )
        if not handled:
            return True
    return False


def _seed_from(previous: RunRecord | None, replay_from: str | None) -> dict[str, ActionRecord]:
    """For a resubmit from one action: the earlier run's successes recorded before that action are
    kept (records are kept in the order they ran, so no clock is trusted for this). The named
    action, everything inside it and everything recorded after it runs again."""
    if previous is None or replay_from is None:
        return {}
    if previous.dry_run:
        raise ValueError(
            f"run {previous.run_id} was a dry run: none of its actions made its effect, so resubmit "
            "it whole, without an action to start from"
        )
    if replay_from not in previous.actions:
        known = ", ".join(previous.actions)
        raise ValueError(f"run {previous.run_id} has no action {replay_from!r}; it has: {known}")
    kept: dict[str, ActionRecord] = {}
    for path, record in previous.actions.items():
        if path == replay_from:
            break
        inside = path.startswith((f"{replay_from}.", f"{replay_from}["))
        container = replay_from.startswith((f"{path}.", f"{path}["))
        if record.status is ActionStatus.SUCCEEDED and not record.redacted and not inside and not container:
            kept[path] = record
    return kept


def _joint_transaction(
    runs: RunStore, idempotency: IdempotencyStore
) -> Callable[[], AbstractContextManager[object]]:
    """A transaction both stores' writes can share, or a no-op when they cannot share one."""
    if shares_transactions(runs, idempotency):
        assert isinstance(runs, SharedTransactions)
        return runs.transaction
    return nullcontext


def _trigger_key(run_id: str) -> str:
    return f"secure-trigger/{run_id}"


def flow_version(source: FlowSource) -> str:
    """The flow's version as kept in each run: a hash of its file, so history says what ran."""
    return _digest(source.text or source.definition.model_dump_json())


@lru_cache(maxsize=64)
def _digest(text: str) -> str:
    """Hashed once per flow file loaded, not once per run (the same text object comes each time)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]

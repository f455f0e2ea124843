"""The flow engine against real SQLite stores: order, failure handling, retries, time-outs, foreach,
secure values, resume after a crash, resubmit, dry run and finding runs by business key."""

from __future__ import annotations

import logging
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.embedded.idempotency import SqliteIdempotencyStore
from adapters.embedded.runs import SqliteRunStore
from adapters.embedded.sqlite import BridgeDatabase
from flows.engine.definition import ActionStatus
from flows.engine.loader import FlowSource, load_flow
from flows.engine.registry import ActionContext, ConnectorRegistry
from flows.engine.runner import Engine
from flows.engine.runs import REDACTED, ActionRecord, RunStatus
from flows.errors import PermanentError, TransientError

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


class WorkerCrash(BaseException):
    """Stands in for the process dying: not an Exception, so nothing in the engine catches it."""


@dataclass
class World:
    """Connectors that record what they were asked to do, and the faults to inject."""

    effects: list[tuple[str, Any]] = field(default_factory=list)
    effect_keys: set[str] = field(default_factory=set)
    failures: dict[str, list[BaseException]] = field(default_factory=dict)
    crash_after_effect_once: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _fault(self, name: str) -> None:
        queue = self.failures.get(name)
        if queue:
            raise queue.pop(0)

    def echo(self, context: ActionContext, **inputs: Any) -> dict[str, Any]:
        self._fault("echo")
        return dict(inputs)

    def effect(self, context: ActionContext, value: Any = None) -> dict[str, Any]:
        """A side effect that is idempotent by key, as every real adapter is."""
        self._fault("effect")
        with self.lock:
            if context.idempotency_key not in self.effect_keys:
                self.effect_keys.add(context.idempotency_key)
                self.effects.append((context.action, value))
        if self.crash_after_effect_once:
            self.crash_after_effect_once = False
            raise WorkerCrash
        return {"done": value}

    def registry(self) -> ConnectorRegistry:
        registry = ConnectorRegistry()
        registry.register("test.echo", self.echo, side_effect=False)
        registry.register("test.effect", self.effect, side_effect=True)
        return registry


@pytest.fixture
def database(tmp_path: Path) -> Iterator[BridgeDatabase]:
    with BridgeDatabase(tmp_path / "bridge.sqlite3") as db:
        yield db


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def engine(database: BridgeDatabase, world: World, sleeps: list[float]) -> Engine:
    return Engine(
        world.registry(),
        SqliteRunStore(database),
        SqliteIdempotencyStore(database),
        clock=lambda: NOW,
        sleep=sleeps.append,
    )


def flow(tmp_path: Path, text: str, name: str = "flow.yaml") -> FlowSource:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_flow(path)


def test_actions_run_in_order_and_read_earlier_outputs(tmp_path: Path, engine: Engine) -> None:
    source = flow(
        tmp_path,
        """
        name: greet
        triggers: [{type: http}]
        key: ${trigger.id}
        actions:
          first:
            use: test.echo
            inputs: {word: "${trigger.word}"}
          second:
            use: test.echo
            inputs: {text: "hello ${actions.first.outputs.word}", n: "${length(trigger.word)}"}
        """,
    )
    run = engine.run(source, {"id": "r1", "word": "world"})
    assert run.status is RunStatus.SUCCEEDED
    assert list(run.actions) == ["first", "second"]
    assert run.actions["second"].outputs == {"text": "hello world", "n": 5}
    assert run.keys == ["r1"]


def test_a_failure_skips_what_follows_and_a_handler_runs(
    tmp_path: Path, engine: Engine, world: World
) -> None:
    world.failures["echo"] = [PermanentError("SMI refused the record")]
    source = flow(
        tmp_path,
        """
        name: handled
        triggers: [{type: http}]
        actions:
          load: {use: test.echo}
          confirm: {use: test.effect, inputs: {value: confirm}}
          alert:
            use: test.effect
            inputs: {value: "${actions.load.status}"}
            runAfter: {load: [Failed, TimedOut]}
        """,
    )
    run = engine.run(source, {})
    statuses = {path: record.status for path, record in run.actions.items()}
    assert statuses == {
        "load": ActionStatus.FAILED,
        "confirm": ActionStatus.SKIPPED,
        "alert": ActionStatus.SUCCEEDED,
    }
    assert "SMI refused the record" in (run.actions["load"].error or "")
    assert world.effects == [("alert", "Failed")]
    # The failure was handled by 'alert', so the run itself succeeded.
    assert run.status is RunStatus.SUCCEEDED


def test_a_handler_reads_the_failure_and_may_leave_a_transient_one_unhandled(
    tmp_path: Path, engine: Engine, world: World
) -> None:
    """``actions.<name>.error`` is the failure as the history keeps it; a handler whose condition
    leaves the failure alone (skipped) does not handle it."""
    source = flow(
        tmp_path,
        """
        name: handled-by-kind
        triggers: [{type: http}]
        actions:
          load: {use: test.echo, retry: {type: none}}
          refused:
            use: test.effect
            runAfter: {load: [Failed]}
            if: ${!starts_with(actions.load.error, 'TransientError:')}
            inputs: {value: "${actions.load.error}"}
        """,
    )
    world.failures["echo"] = [PermanentError("SMI refused the record")]
    run = engine.run(source, {})
    assert world.effects == [("refused", "PermanentError: SMI refused the record")]
    assert run.status is RunStatus.SUCCEEDED
    world.failures["echo"] = [TransientError("SMI unavailable")]
    run = engine.run(source, {})
    assert run.actions["refused"].status is ActionStatus.SKIPPED
    assert run.status is RunStatus.FAILED


def test_an_unhandled_failure_fails_the_run_and_is_findable(
    tmp_path: Path, engine: Engine, world: World
) -> None:
    world.failures["echo"] = [PermanentError("bad")]
    source = flow(
        tmp_path, "name: f\ntriggers: [{type: http}]\nkey: ${trigger.k}\nactions: {a: {use: test.echo}}\n"
    )
    run = engine.run(source, {"k": "case-9"})
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "a: PermanentError: bad" in run.error
    assert [r.run_id for r in engine.runs.find(key="case-9")] == [run.run_id]
    assert [r.run_id for r in engine.runs.find(status=RunStatus.FAILED)] == [run.run_id]


def test_transient_errors_are_retried_honouring_retry_after(
    tmp_path: Path, engine: Engine, world: World, sleeps: list[float]
) -> None:
    world.failures["effect"] = [TransientError("429", retry_after=7), TransientError("503")]
    source = flow(
        tmp_path,
        """
        name: retried
        triggers: [{type: http}]
        actions:
          send:
            use: test.effect
            retry: {type: exponential, count: 3, interval: PT2S, maximumInterval: PT1M}
        """,
    )
    run = engine.run(source, {})
    assert run.actions["send"].status is ActionStatus.SUCCEEDED
    assert run.actions["send"].attempts == 3
    assert sleeps == [7, 4]  # Retry-After wins; then 2 s doubled for the second retry


def test_each_retry_is_logged_as_it_happens_without_secure_values(
    tmp_path: Path, engine: Engine, world: World, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    """A far side answering 500 kept a command silent for the minutes its retries took."""
    world.failures["effect"] = [
        TransientError("503 from smi.example"),
        TransientError("503 for s3cr3t-Value"),
    ]
    world.failures["echo"] = [TransientError("502 from teams.example")]
    source = flow(
        tmp_path,
        """
        name: logged
        triggers: [{type: http}]
        actions:
          send:
            use: test.effect
            inputs: {value: "${trigger.password}"}
            secure: {inputs: true}
            retry: {type: exponential, count: 3, interval: PT2S}
          tell:
            use: test.echo
            retry: {type: fixed, count: 1, interval: PT5S}
        """,
    )
    with caplog.at_level(logging.WARNING, logger="flows.engine.runner"):
        run = engine.run(source, {"password": "s3cr3t-Value"})
    assert run.actions["send"].attempts == 3
    assert [record.getMessage() for record in caplog.records] == [
        f"logged send: attempt 1 of 4 failed: TransientError: {REDACTED}; trying again in 2 s",
        f"logged send: attempt 2 of 4 failed: TransientError: {REDACTED}; trying again in 4 s",
        "logged tell: attempt 1 of 2 failed: TransientError: 502 from teams.example; trying again in 5 s",
    ]
    assert sleeps == [2, 4, 5]


def test_retries_stop_at_the_count_and_bad_input_is_not_retried(
    tmp_path: Path, engine: Engine, world: World, sleeps: list[float]
) -> None:
    world.failures["effect"] = [TransientError("reset")] * 5
    world.failures["echo"] = [PermanentError("no")]
    source = flow(
        tmp_path,
        """
        name: exhausted
        triggers: [{type: http}]
        actions:
          send: {use: test.effect, retry: {type: fixed, count: 2, interval: PT1S}}
          check: {use: test.echo, runAfter: {}}
        """,
    )
    run = engine.run(source, {})
    assert run.actions["send"].attempts == 3
    assert run.actions["send"].status is ActionStatus.FAILED
    assert run.actions["check"].attempts == 1
    assert sleeps == [1, 1]


def test_a_slow_action_times_out(tmp_path: Path, database: BridgeDatabase) -> None:
    release = threading.Event()

    def slow(context: ActionContext) -> None:
        release.wait(5)

    registry = ConnectorRegistry()
    registry.register("test.slow", slow, side_effect=False)
    engine = Engine(registry, SqliteRunStore(database), SqliteIdempotencyStore(database), clock=lambda: NOW)
    source = flow(
        tmp_path,
        "name: slow\ntriggers: [{type: http}]\nactions: {wait: {use: test.slow, timeout: PT0.05S}}\n",
    )
    try:
        run = engine.run(source, {})
    finally:
        release.set()
    assert run.actions["wait"].status is ActionStatus.TIMED_OUT
    assert run.status is RunStatus.FAILED


def test_foreach_runs_each_item_with_a_condition_and_concurrency(
    tmp_path: Path, engine: Engine, world: World
) -> None:
    source = flow(
        tmp_path,
        """
        name: each
        triggers: [{type: http}]
        actions:
          each_case:
            foreach: ${trigger.cases}
            itemKey: ${item.id}
            concurrency: 3
            actions:
              load:
                use: test.effect
                if: ${item.ready}
                inputs: {value: "${item.id}"}
        """,
    )
    cases = [{"id": f"c{i}", "ready": i % 2 == 0} for i in range(6)]
    run = engine.run(source, {"cases": cases})
    assert run.status is RunStatus.SUCCEEDED
    assert sorted(value for _, value in world.effects) == ["c0", "c2", "c4"]
    assert run.actions["each_case[c1].load"].status is ActionStatus.SKIPPED
    assert run.actions["each_case"].outputs[2] == {"load": {"done": "c2"}}


def test_secure_values_never_reach_the_stored_history(
    tmp_path: Path, engine: Engine, database: BridgeDatabase
) -> None:
    source = flow(
        tmp_path,
        """
        name: secret
        triggers: [{type: http}]
        actions:
          token:
            use: test.echo
            inputs: {secret: "${trigger.password}"}
            secure: {inputs: true, outputs: true}
          use_it:
            use: test.echo
            inputs: {length: "${length(actions.token.outputs.secret)}"}
            secure: {inputs: false, outputs: false}
        """,
    )
    run = engine.run(source, {"password": "s3cr3t-Value"}, run_id="r-secure")
    # the next action reads the secure output as it came back; only the history has it redacted
    assert (run.actions["use_it"].status, run.actions["use_it"].outputs) == (
        ActionStatus.SUCCEEDED,
        {"length": 12},
    )
    assert run.actions["token"].inputs == REDACTED
    assert run.actions["token"].outputs == REDACTED
    stored = engine.runs.get("r-secure")
    assert stored is not None and "s3cr3t-Value" not in stored.model_dump_json(exclude={"trigger"})
    with database.read() as connection:
        rows = connection.execute("SELECT record FROM run_actions").fetchall()
    assert rows and all("s3cr3t-Value" not in row[0] for row in rows)


def test_a_run_cut_off_after_a_side_effect_resumes_and_makes_it_once(
    tmp_path: Path, engine: Engine, world: World
) -> None:
    source = flow(
        tmp_path,
        """
        name: crash
        triggers: [{type: http}]
        key: ${trigger.case}
        actions:
          before: {use: test.echo, inputs: {x: 1}}
          load: {use: test.effect, inputs: {value: load}}
          mail: {use: test.effect, inputs: {value: mail}}
        """,
    )
    world.crash_after_effect_once = True
    with pytest.raises(WorkerCrash):
        engine.run(source, {"case": "7"}, run_id="delivery-1")
    half = engine.runs.get("delivery-1")
    assert half is not None and half.status is RunStatus.RUNNING
    assert list(half.actions) == ["before"]  # 'load' made its effect but never reached its checkpoint

    run = engine.run(source, {"case": "7"}, run_id="delivery-1")  # the queue delivers it again
    assert run.status is RunStatus.SUCCEEDED
    assert world.effects == [("load", "load"), ("mail", "mail")]
    # What the run returns (from memory) is what the history holds: the first delivery's actions too.
    assert run == engine.runs.get("delivery-1")
    assert list(run.actions) == ["before", "load", "mail"]
    assert engine.run(source, {"case": "7"}, run_id="delivery-1").run_id == "delivery-1"  # finished: no-op
    assert len(world.effects) == 2


def test_a_duplicate_delivery_in_a_new_run_reuses_each_side_effect(
    tmp_path: Path, engine: Engine, world: World
) -> None:
    source = flow(
        tmp_path,
        "name: dup\ntriggers: [{type: http}]\nkey: ${trigger.case}\nactions: {load: {use: test.effect}}\n",
    )
    first = engine.run(source, {"case": "2"})
    second = engine.run(source, {"case": "2"})
    assert first.run_id != second.run_id
    assert (first, second) == (engine.runs.get(first.run_id), engine.runs.get(second.run_id))
    assert second.actions["load"].deduplicated
    assert len(world.effects) == 1


def test_resubmit_from_the_failed_action_keeps_what_succeeded(
    tmp_path: Path, engine: Engine, world: World
) -> None:
    source = flow(
        tmp_path,
        """
        name: again
        triggers: [{type: http}]
        key: ${trigger.case}
        actions:
          prepare: {use: test.echo, inputs: {n: 1}}
          load: {use: test.effect, inputs: {value: "${actions.prepare.outputs.n}"}, retry: {type: none}}
        """,
    )
    world.failures["effect"] = [PermanentError("SMI down for maintenance")]
    failed = engine.run(source, {"case": "3"})
    assert failed.status is RunStatus.FAILED

    world.failures["echo"] = [PermanentError("prepare must not run again")]
    replay = engine.run(source, failed.trigger, replay_of=failed, replay_from="load")
    assert replay.status is RunStatus.SUCCEEDED
    assert replay.replay_of == failed.run_id and replay.replay_from == "load"
    assert replay.actions["prepare"].outputs == {"n": 1}  # kept from the failed run, not run again
    assert world.effects == [("load", 1)]


def test_dry_run_calls_no_side_effect(tmp_path: Path, engine: Engine, world: World) -> None:
    source = flow(
        tmp_path,
        """
        name: dry
        triggers: [{type: http}]
        actions:
          look: {use: test.echo, inputs: {v: "${trigger.v}"}}
          load: {use: test.effect, inputs: {value: "${actions.look.outputs.v}"}}
        """,
    )
    run = engine.run(source, {"v": "x"}, dry_run=True)
    assert run.dry_run and run.status is RunStatus.SUCCEEDED
    assert world.effects == []
    assert run.actions["load"].outputs["would_call"] == "test.effect"
    assert run.actions["load"].outputs["inputs"] == {"value": "x"}


def test_a_scope_fails_when_an_action_inside_it_fails_unhandled(
    tmp_path: Path, engine: Engine, world: World
) -> None:
    world.failures["echo"] = [PermanentError("inner broke")]
    source = flow(
        tmp_path,
        """
        name: scoped
        triggers: [{type: http}]
        actions:
          block:
            actions:
              inner: {use: test.echo}
              after_inner: {use: test.effect, inputs: {value: after}}
          on_failure:
            use: test.effect
            runAfter: {block: [Failed]}
            inputs: {value: "${actions.block.status}"}
        """,
    )
    run = engine.run(source, {})
    assert run.actions["block.inner"].status is ActionStatus.FAILED
    assert run.actions["block.after_inner"].status is ActionStatus.SKIPPED
    assert run.actions["block"].status is ActionStatus.FAILED
    assert world.effects == [("on_failure", "Failed")]


def test_a_whole_resubmit_runs_everything_again_but_repeats_no_effect(
    tmp_path: Path, engine: Engine, world: World
) -> None:
    source = flow(
        tmp_path,
        "name: whole\ntriggers: [{type: http}]\nkey: ${trigger.case}\n"
        "actions: {look: {use: test.echo}, load: {use: test.effect}}\n",
    )
    first = engine.run(source, {"case": "5"})
    again = engine.run(source, first.trigger, replay_of=first)
    assert again.replay_of == first.run_id
    assert again.replay_from is None
    assert again.actions["look"].attempts == 1  # ran again
    assert again.actions["load"].deduplicated  # the effect was already made
    assert len(world.effects) == 1


def test_expressions_have_clock_functions_on_the_runs_clock(tmp_path: Path, engine: Engine) -> None:
    source = flow(
        tmp_path,
        """
        name: clock
        triggers: [{type: http}]
        actions:
          when:
            use: test.echo
            inputs:
              now: ${now()}
              later: ${add_hours(now(), `2.5`)}
              waited: ${hours_between(trigger.since, now())}
              fallback: ${coalesce(trigger.missing, 'none')}
        """,
    )
    run = engine.run(source, {"since": "2026-11-23T09:00:00+00:00"})
    assert run.actions["when"].outputs == {
        "now": "2026-11-24T09:00:00+00:00",
        "later": "2026-11-24T11:30:00+00:00",
        "waited": 24.0,
        "fallback": "none",
    }


def test_a_malformed_expression_at_run_time_fails_the_action_naming_it(
    tmp_path: Path, engine: Engine
) -> None:
    source = flow(
        tmp_path,
        "name: broken\ntriggers: [{type: http}]\n"
        "actions: {a: {use: test.echo, inputs: {x: '${add_hours(`1`)}'}}}\n",
    )
    run = engine.run(source, {})
    assert run.actions["a"].status is ActionStatus.FAILED
    assert "cannot evaluate ${add_hours(`1`)}" in (run.actions["a"].error or "")


class CrashingRunStore(SqliteRunStore):
    """Dies once while writing the record of action ``path``, after the row is written."""

    def __init__(self, database: BridgeDatabase, path: str) -> None:
        super().__init__(database)
        self.crash_on = path

    def record_action(self, run_id: str, record: ActionRecord) -> None:
        super().record_action(run_id, record)
        if record.path == self.crash_on:
            self.crash_on = ""
            raise WorkerCrash


CRASH_FLOW = """
    name: joint
    triggers: [{type: http}]
    key: ${trigger.case}
    actions:
      load: {use: test.effect, inputs: {value: load}}
      mail: {use: test.effect, inputs: {value: mail}}
    """


def test_on_one_database_the_key_and_the_record_are_written_together(
    tmp_path: Path, database: BridgeDatabase, world: World
) -> None:
    """A crash while the record is written takes the idempotency key with it, and nothing repeats.
    The first record carries the run's start too: that goes as well."""
    runs, keys = CrashingRunStore(database, "load"), SqliteIdempotencyStore(database)
    engine = Engine(world.registry(), runs, keys, clock=lambda: NOW)
    source = flow(tmp_path, CRASH_FLOW)

    with pytest.raises(WorkerCrash):
        engine.run(source, {"case": "7"}, run_id="delivery-1")
    assert runs.get("delivery-1") is None  # the record was rolled back, the run's start with it ...
    assert keys.get("joint/7/load") is None  # ... and the key: none without the others

    run = engine.run(source, {"case": "7"}, run_id="delivery-1")
    assert run.status is RunStatus.SUCCEEDED
    assert world.effects == [("load", "load"), ("mail", "mail")]  # the adapter's own key held
    assert keys.get("joint/7/load") == {"outputs": {"done": "load"}}


def test_a_crash_after_the_first_effect_leaves_no_run_and_the_delivery_again_makes_it_once(
    tmp_path: Path, database: BridgeDatabase, world: World, engine: Engine
) -> None:
    """The run's start is written with its first action's record: between the first side effect and
    that commit, a crash leaves nothing of the run. Delivered again, the run starts afresh under the
    same id, and the effect is found by its key (the adapter's, as for a crash before any record)."""
    source = flow(tmp_path, CRASH_FLOW)
    world.crash_after_effect_once = True
    with pytest.raises(WorkerCrash):
        engine.run(source, {"case": "7"}, run_id="delivery-1")
    assert world.effects == [("load", "load")]
    assert engine.runs.get("delivery-1") is None
    with database.read() as connection:
        assert connection.execute("SELECT count(*) FROM run_keys").fetchone() == (0,)

    run = engine.run(source, {"case": "7"}, run_id="delivery-1")
    assert run.status is RunStatus.SUCCEEDED and list(run.actions) == ["load", "mail"]
    assert run == engine.runs.get("delivery-1")
    assert world.effects == [("load", "load"), ("mail", "mail")]  # the load made once


def test_a_run_s_start_is_committed_with_its_first_record_and_a_for_each_s_threads_wait_for_it(
    tmp_path: Path, database: BridgeDatabase, engine: Engine
) -> None:
    """Concurrent iterations first in a run: each record is written after the run's start (the
    records' rows name their run), and the start's transaction holds the first of them."""
    source = flow(
        tmp_path,
        """
        name: first
        triggers: [{type: http}]
        key: ${trigger.case}
        actions:
          each:
            foreach: ${trigger.items}
            concurrency: 4
            actions:
              one: {use: test.effect, inputs: {value: "${item}"}}
        """,
    )
    statements: list[str] = []
    with database.read() as connection:
        connection.set_trace_callback(statements.append)
    try:
        run = engine.run(source, {"case": "3", "items": list(range(8))}, run_id="r-first")
    finally:
        with database.read() as connection:
            connection.set_trace_callback(None)
    assert run.status is RunStatus.SUCCEEDED and len(run.actions) == 9
    assert run == engine.runs.get("r-first")
    writes = [s.split(" (")[0] for s in statements if s.startswith(("INSERT", "BEGIN", "COMMIT", "UPDATE"))]
    start = writes.index("INSERT OR IGNORE INTO runs")
    # The start, the first record and its key in one transaction: no commit between the start and them.
    assert writes[start - 1] == "BEGIN IMMEDIATE"
    first_commit = writes.index("COMMIT", start)
    assert "INSERT INTO run_actions" in writes[start:first_commit]
    assert "INSERT INTO run_actions" not in writes[:start]


def test_the_last_record_is_written_with_the_run_s_end_and_none_before_it_waits_for_it(
    tmp_path: Path, database: BridgeDatabase, world: World, engine: Engine
) -> None:
    """``run_to_end`` leaves the end's write to its caller, with the last action's record (nothing
    runs after it): until then the earlier records are durable, the last one is not. A crash there
    is a crash before that record: delivered again, the last action runs again and its effect is
    found by its key."""
    source = flow(tmp_path, CRASH_FLOW)
    ending = engine.run_to_end(source, {"case": "7"}, run_id="delivery-1")
    assert ending.record.status is RunStatus.SUCCEEDED and list(ending.record.actions) == ["load", "mail"]
    half = engine.runs.get("delivery-1")
    assert half is not None and half.status is RunStatus.RUNNING and list(half.actions) == ["load"]
    keys = SqliteIdempotencyStore(database)
    assert keys.get("joint/7/load") is not None and keys.get("joint/7/mail") is None

    run = engine.run(source, {"case": "7"}, run_id="delivery-1")  # delivered again; ``ending`` dropped
    assert run.status is RunStatus.SUCCEEDED and run == engine.runs.get("delivery-1")
    assert world.effects == [("load", "load"), ("mail", "mail")]  # each once
    assert keys.get("joint/7/mail") == {"outputs": {"done": "mail"}}

    again = engine.run_to_end(source, {"case": "8"}, run_id="delivery-2")
    again.write()
    assert engine.runs.get("delivery-2") == again.record


def test_on_two_databases_the_key_is_kept_before_the_record(tmp_path: Path, world: World) -> None:
    with BridgeDatabase(tmp_path / "runs.sqlite3") as one, BridgeDatabase(tmp_path / "keys.sqlite3") as two:
        runs, keys = CrashingRunStore(one, "load"), SqliteIdempotencyStore(two)
        engine = Engine(world.registry(), runs, keys, clock=lambda: NOW)
        source = flow(tmp_path, CRASH_FLOW)
        with pytest.raises(WorkerCrash):
            engine.run(source, {"case": "7"}, run_id="delivery-1")
        assert keys.get("joint/7/load") == {"outputs": {"done": "load"}}  # committed on its own

        run = engine.run(source, {"case": "7"}, run_id="delivery-1")
        assert run.actions["load"].status is ActionStatus.SUCCEEDED
        assert world.effects == [("load", "load"), ("mail", "mail")]


def test_inputs_that_do_not_fit_fail_the_action_before_it_runs_and_name_the_operation(
    tmp_path: Path, world: World, engine: Engine
) -> None:
    source = flow(
        tmp_path,
        """
        name: misfit
        triggers: [{type: http}]
        actions:
          effect:
            use: test.effect
            inputs: {value: 1, colour: red}
        """,
    )
    run = engine.run(source, {})
    record = run.actions["effect"]
    assert record.status is ActionStatus.FAILED and record.attempts == 1
    assert record.error is not None
    assert record.error.startswith("BadInput: test.effect: inputs do not fit:") and "colour" in record.error
    assert world.effects == []


def test_a_type_error_inside_an_operation_is_its_own_not_a_misfit(
    tmp_path: Path, world: World, engine: Engine
) -> None:
    world.failures["effect"] = [TypeError("a bug in the adapter")]
    source = flow(
        tmp_path,
        """
        name: buggy
        triggers: [{type: http}]
        actions:
          effect:
            use: test.effect
            inputs: {value: 1}
        """,
    )
    record = engine.run(source, {}).actions["effect"]
    assert record.status is ActionStatus.FAILED
    assert record.error == "TypeError: a bug in the adapter"

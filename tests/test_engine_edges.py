"""The engine's promises at their edges (found by review): secure values in error texts and keys,
expressions that fail in unusual ways, time-outs, resubmits of flows without a key and of dry runs,
for-each items sharing a key, and outputs JSON cannot hold."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jmespath
import pytest

from adapters.embedded.idempotency import SqliteIdempotencyStore
from adapters.embedded.runs import SqliteRunStore
from adapters.embedded.sqlite import BridgeDatabase
from flows.engine.definition import ActionStatus
from flows.engine.expressions import Evaluator
from flows.engine.loader import FlowFileError
from flows.engine.registry import ActionContext, ConnectorRegistry
from flows.engine.runner import Engine
from flows.engine.runs import REDACTED, RunStatus
from flows.engine.validation import validate_flow
from flows.errors import BadInput, PermanentError, TransientError
from tests.test_engine import NOW, World, flow

SECRET = "s3cr3t-Value"


@dataclass
class Bed:
    """An engine on real SQLite stores, with the recording connectors of ``tests.test_engine``."""

    database: BridgeDatabase
    world: World
    engine: Engine


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[Bed]:
    world = World()
    with BridgeDatabase(tmp_path / "bridge.sqlite3") as database:
        engine = Engine(
            world.registry(),
            SqliteRunStore(database),
            SqliteIdempotencyStore(database),
            clock=lambda: NOW,
            sleep=lambda seconds: None,
        )
        yield Bed(database, world, engine)


def history(database: BridgeDatabase) -> str:
    """Everything the run history keeps, as text."""
    with database.read() as connection:
        rows = connection.execute(
            "SELECT record FROM runs UNION ALL SELECT record FROM run_actions"
        ).fetchall()
    return "\n".join(row[0] for row in rows)


def engine_with(database: BridgeDatabase, name: str, operation: Any, *, side_effect: bool = True) -> Engine:
    registry = ConnectorRegistry()
    registry.register(name, operation, side_effect=side_effect)
    return Engine(registry, SqliteRunStore(database), SqliteIdempotencyStore(database), clock=lambda: NOW)


# --- secure values -----------------------------------------------------------------------------


SECURE_LOGIN = """
    name: leak
    triggers: [{type: http}]
    secureTrigger: true
    actions:
      login:
        use: test.login
        idempotencyKey: "login/${trigger.user}"
        inputs: {password: "${trigger.password}"}
        secure: {inputs: true, outputs: true}
    """


def test_a_connector_error_of_an_action_with_secure_inputs_keeps_only_its_type(
    tmp_path: Path, bed: Bed
) -> None:
    def login(context: ActionContext, password: str) -> dict[str, Any]:
        raise BadInput(f"password {password!r} rejected by the far side")

    run = engine_with(bed.database, "test.login", login).run(
        flow(tmp_path, SECURE_LOGIN), {"user": "alice@example.org", "password": SECRET}
    )
    # what it sent could come back in any form (escaped, truncated): only the error's type is kept
    assert run.actions["login"].error == f"BadInput: {REDACTED}"
    assert run.status is RunStatus.FAILED
    kept = history(bed.database)
    assert SECRET not in kept and "alice@example.org" not in kept


def test_an_expression_error_in_secure_inputs_keeps_only_its_type(tmp_path: Path, bed: Bed) -> None:
    source = flow(tmp_path, SECURE_LOGIN.replace('"${trigger.password}"', '"${abs(trigger.password)}"'))
    run = engine_with(bed.database, "test.login", lambda context, password: {}).run(
        source, {"user": "alice@example.org", "password": SECRET}
    )
    assert run.actions["login"].error == f"ExpressionError: {REDACTED}"
    assert SECRET not in history(bed.database)


def test_a_later_action_reads_an_earlier_one_s_error_as_the_history_keeps_it(
    tmp_path: Path, bed: Bed
) -> None:
    """``actions.<name>.error`` lets a handler say what went wrong; a secure value stays out of it."""
    told: list[str] = []

    def login(context: ActionContext, password: str) -> dict[str, Any]:
        raise BadInput(f"password {password!r} rejected by the far side")

    registry = ConnectorRegistry()
    registry.register("test.login", login, side_effect=True)

    def tell(context: ActionContext, text: str) -> dict[str, Any]:
        told.append(text)
        return {}

    registry.register("test.tell", tell, side_effect=True)
    engine = Engine(
        registry, SqliteRunStore(bed.database), SqliteIdempotencyStore(bed.database), clock=lambda: NOW
    )
    handler = """
      tell:
        use: test.tell
        runAfter: {login: [Failed]}
        inputs: {text: "${actions.login.error}"}
    """
    engine.run(flow(tmp_path, SECURE_LOGIN + handler), {"user": "alice@example.org", "password": SECRET})
    assert told == [f"BadInput: {REDACTED}"]
    plain = SECURE_LOGIN.replace("secure: {inputs: true, outputs: true}", "").replace(
        "secureTrigger: true", ""
    )
    engine.run(flow(tmp_path, plain + handler), {"user": "bob@example.org", "password": "hunter22"})
    assert told[1] == "BadInput: password 'hunter22' rejected by the far side"


def test_an_idempotency_key_built_from_secure_values_is_not_kept(tmp_path: Path, bed: Bed) -> None:
    engine = engine_with(bed.database, "test.login", lambda context, password: {"ok": True})
    source = flow(tmp_path, SECURE_LOGIN)
    done = engine.run(source, {"user": "alice@example.org", "password": SECRET})
    dry = engine.run(source, {"user": "alice@example.org", "password": SECRET}, dry_run=True)
    assert done.actions["login"].idempotency_key == f"login/{REDACTED}"
    assert dry.actions["login"].outputs["idempotency_key"] == f"login/{REDACTED}"
    assert "alice@example.org" not in history(bed.database)


def test_errors_of_a_run_without_secure_values_are_kept_whole(tmp_path: Path, bed: Bed) -> None:
    bed.world.failures["effect"] = [PermanentError("the SMI refused model 0102")]
    source = flow(tmp_path, "name: plain\ntriggers: [{type: http}]\nactions: {load: {use: test.effect}}\n")
    run = bed.engine.run(source, {})
    assert run.actions["load"].error == "PermanentError: the SMI refused model 0102"
    assert run.actions["load"].idempotency_key == f"plain/{run.run_id}/load"


SECURE_TRIGGER = (  # as the intake flow: its trigger (the whole response) is secure
    "name: intake\ntriggers: [{type: http}]\nsecureTrigger: true\nkey: ${trigger.id}\n"
    "actions: {tell: {use: test.effect}}\n"
)


def test_an_error_quoting_no_secure_value_is_kept_whole_in_a_run_with_a_secure_trigger(
    tmp_path: Path, bed: Bed
) -> None:
    """The intake flow's trigger is secure: its other actions' errors must still tell operators why."""
    bed.world.failures["effect"] = [PermanentError("HTTP 503 from the Teams workflow")]
    source = flow(tmp_path, SECURE_TRIGGER)
    run = bed.engine.run(source, {"id": "R-1001", "phone": "+44 20 7946 0000"})
    assert run.actions["tell"].error == "PermanentError: HTTP 503 from the Teams workflow"
    assert run.actions["tell"].idempotency_key == "intake/R-1001/tell"  # the key is in keys anyway


@pytest.mark.parametrize(
    "quoted",
    ["+44 20 7946 0000", "%2B44%2020%207946%200000", "ANN@EXAMPLE.ORG", '"ann@example.org"'],
)
def test_a_secure_trigger_value_quoted_in_any_usual_form_is_taken_out_of_an_error(
    tmp_path: Path, bed: Bed, quoted: str
) -> None:
    bed.world.failures["effect"] = [PermanentError(f"the far side refused {quoted} (code 7)")]
    source = flow(tmp_path, SECURE_TRIGGER)
    run = bed.engine.run(source, {"id": "R-1001", "phone": "+44 20 7946 0000", "email": "ann@example.org"})
    error = run.actions["tell"].error
    assert error is not None and error.startswith("PermanentError: the far side refused ")
    assert error.endswith(" (code 7)") and REDACTED in error
    assert "7946" not in error and "example.org" not in error.casefold()


# --- expressions -------------------------------------------------------------------------------


def test_an_added_function_given_a_bad_value_fails_the_action(tmp_path: Path, bed: Bed) -> None:
    source = flow(
        tmp_path,
        """
        name: dates
        triggers: [{type: http}]
        actions:
          due: {use: test.echo, inputs: {at: "${add_hours(trigger.received, `48`)}"}}
          huge: {use: test.echo, inputs: {at: "${add_hours(trigger.at, `1e12`)}"}, runAfter: {}}
        """,
    )
    run = bed.engine.run(source, {"received": "yesterday", "at": "2026-11-24T09:00:00Z"})
    assert run.status is RunStatus.FAILED
    assert run.actions["due"].status is ActionStatus.FAILED
    assert run.actions["due"].error is not None and "add_hours(trigger.received" in run.actions["due"].error
    assert run.actions["huge"].status is ActionStatus.FAILED


def test_a_text_with_two_expressions_is_text_at_run_time_as_validation_says(tmp_path: Path, bed: Bed) -> None:
    source = flow(
        tmp_path,
        """
        name: names
        triggers: [{type: http}]
        actions:
          greet: {use: test.echo, inputs: {name: "${trigger.first} ${trigger.last}", n: " ${trigger.n} "}}
        """,
    )
    assert validate_flow(source, bed.world.registry()) == []
    run = bed.engine.run(source, {"first": "Ada", "last": "Lovelace", "n": [1, 2]})
    assert run.actions["greet"].outputs == {"name": "Ada Lovelace", "n": [1, 2]}


# --- time-outs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["", "foreach: ${trigger.items}"])
def test_a_time_out_on_a_scope_or_a_foreach_is_refused_where_it_is_written(tmp_path: Path, head: str) -> None:
    with pytest.raises(FlowFileError, match=r"flow\.yaml:\d+: actions\.block\.timeout: Extra inputs"):
        flow(
            tmp_path,
            f"""
            name: slow
            triggers: [{{type: http}}]
            actions:
              block:
                {head}
                timeout: PT1S
                actions:
                  wait: {{use: test.echo}}
            """,
        )


def test_a_timed_out_action_makes_no_attempt_after_it_is_recorded(tmp_path: Path, bed: Bed) -> None:
    calls: list[float] = []

    def flaky(context: ActionContext) -> None:
        calls.append(time.monotonic())
        raise TransientError("503")

    registry = ConnectorRegistry()
    registry.register("test.send", flaky, side_effect=True)
    engine = Engine(
        registry,
        SqliteRunStore(bed.database),
        SqliteIdempotencyStore(bed.database),
        clock=lambda: NOW,
        sleep=lambda seconds: time.sleep(0.05),
    )
    source = flow(
        tmp_path,
        """
        name: slow
        triggers: [{type: http}]
        actions:
          send: {use: test.send, timeout: PT0.1S, retry: {type: fixed, count: 20, interval: PT1S}}
        """,
    )
    run = engine.run(source, {})
    ended = time.monotonic()
    assert run.actions["send"].status is ActionStatus.TIMED_OUT
    time.sleep(0.4)
    assert calls and [moment for moment in calls if moment > ended] == []
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("action-send")]


# --- resubmit ----------------------------------------------------------------------------------


def test_resubmitting_a_flow_without_a_key_makes_no_effect_twice(tmp_path: Path, bed: Bed) -> None:
    source = flow(
        tmp_path,
        """
        name: nokey
        triggers: [{type: recurrence, every: PT5M}]
        actions:
          check: {use: test.echo}
          alert: {use: test.effect, inputs: {value: alert}, runAfter: {}}
        """,
    )
    bed.world.failures["echo"] = [PermanentError("down")]
    first = bed.engine.run(source, {})
    assert first.status is RunStatus.FAILED and bed.world.effects == [("alert", "alert")]
    from_check = bed.engine.run(source, first.trigger, replay_of=first, replay_from="check")
    whole = bed.engine.run(source, first.trigger, replay_of=from_check)  # a replay of the replay
    assert bed.world.effects == [("alert", "alert")]
    assert (from_check.replay_root, whole.replay_root) == (first.run_id, first.run_id)
    assert whole.actions["alert"].deduplicated and whole.status is RunStatus.SUCCEEDED
    assert first.keys == from_check.keys == whole.keys == []  # a run id is not a business key


def test_a_dry_run_cannot_be_resubmitted_from_an_action(tmp_path: Path, bed: Bed) -> None:
    source = flow(
        tmp_path,
        """
        name: dry
        triggers: [{type: http}]
        key: ${trigger.case}
        actions:
          load: {use: test.effect, inputs: {value: load}}
          mail: {use: test.effect, inputs: {value: "${actions.load.outputs.done}"}}
        """,
    )
    dry = bed.engine.run(source, {"case": "1"}, dry_run=True)
    with pytest.raises(ValueError, match=f"run {dry.run_id} was a dry run.*resubmit it whole"):
        bed.engine.run(source, dry.trigger, replay_of=dry, replay_from="mail")
    whole = bed.engine.run(source, dry.trigger, replay_of=dry)
    assert bed.world.effects == [("load", "load"), ("mail", "load")] and not whole.dry_run


# --- for-each and outputs ----------------------------------------------------------------------


def test_items_sharing_an_item_key_fail_the_foreach(tmp_path: Path, bed: Bed) -> None:
    source = flow(
        tmp_path,
        """
        name: each
        triggers: [{type: http}]
        actions:
          each_line:
            foreach: ${trigger.lines}
            itemKey: ${item.supplier}
            actions:
              send: {use: test.effect, idempotencyKey: "send/${item.id}", inputs: {value: "${item.id}"}}
        """,
    )
    lines = [
        {"supplier": "acme", "id": "L1"},
        {"supplier": "acme", "id": "L2"},
        {"supplier": "b", "id": "L3"},
    ]
    run = bed.engine.run(source, {"lines": lines})
    assert run.status is RunStatus.FAILED and bed.world.effects == []
    error = run.actions["each_line"].error
    assert error is not None and re.search(r"same key \(acme\)", error)


def test_a_side_effect_answering_nan_is_kept_with_null_and_made_once(tmp_path: Path, bed: Bed) -> None:
    calls: list[int] = []

    def score(context: ActionContext) -> dict[str, Any]:
        calls.append(1)
        deep = [{"n": -float("inf")}]
        return {"score": float("nan"), "scores": [1.5, float("inf")], "label": "x", "deep": deep}

    engine = engine_with(bed.database, "test.score", score)
    source = flow(tmp_path, "name: nan\ntriggers: [{type: http}]\nactions: {score: {use: test.score}}\n")
    first = engine.run(source, {}, run_id="r")
    again = engine.run(source, {}, run_id="r")
    kept = {"score": None, "scores": [1.5, None], "label": "x", "deep": [{"n": None}]}
    assert first.actions["score"].outputs == kept
    assert again.status is RunStatus.SUCCEEDED and calls == [1]


class _Busy(TransientError):
    """A far side's own kind of transient failure (as ``TokenServiceBusy`` is)."""


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (TransientError("HTTP 503"), True),
        (_Busy("HTTP 429"), True),
        (PermanentError("HTTP 422"), False),
        (BadInput("no such entry"), False),
    ],
)
def test_a_later_action_reads_whether_an_earlier_one_failed_transiently(
    tmp_path: Path, bed: Bed, error: Exception, transient: bool
) -> None:
    """``actions.<name>.transient``: what the engine retried on (any ``TransientError``), not a name
    read from the error's text."""
    handled: list[str] = []

    def call(context: ActionContext) -> dict[str, Any]:
        raise error

    def handle(context: ActionContext, error: str) -> dict[str, Any]:
        handled.append(error)
        return {}

    registry = ConnectorRegistry()
    registry.register("test.call", call, side_effect=True)
    registry.register("test.handle", handle, side_effect=True)
    engine = Engine(
        registry, SqliteRunStore(bed.database), SqliteIdempotencyStore(bed.database),
        clock=lambda: NOW, sleep=lambda seconds: None,
    )  # fmt: skip
    source = flow(
        tmp_path,
        """
        name: kinds
        triggers: [{type: http}]
        actions:
          call: {use: test.call, retry: {type: fixed, count: 1, interval: PT1S}}
          handle:
            use: test.handle
            runAfter: {call: [Failed]}
            if: ${!(actions.call.transient)}
            inputs: {error: "${actions.call.error}"}
        """,
    )
    run = engine.run(source, {}, run_id="r")
    assert run.actions["call"].transient is transient
    assert run.actions["call"].attempts == (2 if transient else 1)
    assert handled == ([] if transient else [f"{type(error).__name__}: {error}"])
    assert SqliteRunStore(bed.database).get("r").actions["call"].transient is transient  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "source",
    ["trigger", "trigger.a", "trigger.a.b.c", "trigger.text.length", "trigger.items.first", '"odd-name".x'],
)
def test_a_path_of_fields_reads_as_the_jmespath_interpreter_reads_it(source: str) -> None:
    """Paths of fields are followed without the interpreter (the most frequent expressions): the
    same values, nulls included, past a string, a list, a number or a missing name."""
    context = {
        "trigger": {"a": {"b": {"c": 0.5}}, "text": "abc", "items": [1, 2], "n": 3},
        "odd-name": {"x": [None]},
    }
    interpreted = jmespath.compile(source).search(context, options=jmespath.Options())
    assert Evaluator(lambda: NOW).evaluate(f"${{{source}}}", context) == interpreted

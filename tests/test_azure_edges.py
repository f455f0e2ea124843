"""Faults a review found where the bridge meets Azure and Graph: a SharePoint item that cannot be
queued (it stopped every later delta pass), a poison alert posted twice to Teams when its trigger is
retried, and a Retry-After the engine would have slept on for a day (or for ever: "inf")."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import httpx
import pytest
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient
from pydantic import SecretStr

from adapters.azure_storage import AzureStores, connect
from adapters.azure_storage.poisoned import TablePoisonedMessages
from adapters.azure_storage.settings import StorageSettings
from adapters.embedded.idempotency import SqliteIdempotencyStore
from adapters.graph import EnsuredSubscription, GraphSession, ListDeltaReader, ListSubscriptions
from adapters.graph.errors import retry_after as graph_retry_after
from adapters.http_retry import retry_after
from adapters.outbox import OutboxOperatorChannel
from flows.bootstrap import BridgeApp, bootstrap
from flows.cli import main
from flows.engine.definition import RetryPolicy
from flows.engine.retrying import delay_before_next
from flows.errors import TransientError
from flows.messages import MessageTemplates
from flows.queue_message import Message, form_response_message
from flows.service import HoldsPoisoned, PoisonedMessage
from flows.settings import SAMPLES, Settings
from tests.graph_server import GraphServer
from tests.test_azure_storage import azurite_of, settings
from tests.test_function_app import app_settings, user_function
from tests.test_graph_adapters import SAMPLE_ITEMS, graph, session
from tests.test_graph_adapters import pytestmark as sdk_warnings
from tests.test_teams_webhook import SIGNATURE, Answer, RecordingWebhook, webhook

pytest_plugins = ["tests.azurite"]  # Azurite, installed and started once per session
pytestmark = sdk_warnings
__all__ = ["app_settings", "graph", "session", "settings", "webhook"]  # fixtures used here by name


@pytest.fixture
def stores(settings: StorageSettings) -> Iterator[AzureStores]:
    with connect(settings.model_copy(update={"delta_links_table": "delta" + uuid.uuid4().hex[:12]})) as made:
        yield made


def an_item(number: int, **fields: Any) -> dict[str, Any]:
    item = copy.deepcopy(SAMPLE_ITEMS[0])
    item["id"] = str(1000 + number)
    item["fields"]["ResponseId"] = number
    item["fields"].update(fields)
    return item


@pytest.mark.parametrize("fault", ["no response id", "too big for a queue message"])
def test_a_list_item_that_cannot_be_queued_is_told_and_passed_over(
    graph: GraphServer, session: GraphSession, stores: AzureStores, tmp_path: Path, fault: str
) -> None:
    reader = ListDeltaReader(session, site_id=graph.site_id, list_id=graph.list_id, store=stores.delta_links)
    queued: list[Message] = []

    def submit(message: Message) -> Message:
        stores.queue.put(message)  # refuses what is over the Storage queue's 64 KiB
        queued.append(message)
        return message

    with SqliteIdempotencyStore(tmp_path / "keys.sqlite3") as keys:
        parts = SimpleNamespace(
            renew_subscription=None,
            list_changes=reader.read,
            local_queue=False,
            idempotency=keys,
            channel=OutboxOperatorChannel(tmp_path / "outbox"),
        )
        app = BridgeApp(
            settings=Settings(home=tmp_path), bridge=SimpleNamespace(submit=submit),  # type: ignore[arg-type]
            registry=None, parts=parts, templates=MessageTemplates(),  # type: ignore[arg-type]
        )  # fmt: skip
        app.process(Message(type="list_changed"))  # the first full read: the eight sample items
        first_link = stores.delta_links.get(graph.list_id)
        bad = an_item(50)
        if fault == "no response id":
            del bad["fields"]["ResponseId"]  # a row added by hand in SharePoint
        else:
            bad["fields"]["Comments"] = "x" * 60_000
        graph.add_changes(bad, an_item(51))
        app.process(Message(type="list_changed"))
        app.process(Message(type="list_changed"))  # the pass after: the link moved on
    assert [message.body["response_id"] for message in queued[8:]] == ["51"]
    assert stores.delta_links.get(graph.list_id) != first_link
    [card] = list((tmp_path / "outbox" / "teams").glob("*.json"))
    assert "SharePoint list item 1050" in card.read_text(encoding="utf-8")
    assert "x" * 100 not in card.read_text(encoding="utf-8")  # no answer text reaches the card


def test_a_poison_alert_retried_after_it_was_posted_is_posted_once_to_teams(
    webhook: RecordingWebhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Teams keeps no keys: the alert's key is kept beside the other idempotency keys."""
    monkeypatch.setenv("BRIDGE_TEAMS_WEBHOOK_URL", webhook.url)
    body = Message(type="recurrence", flow="secas-sync").model_dump_json().encode()
    alert = user_function("poison_alert")
    alert(func.QueueMessage(id="p1", body=body))
    alert(func.QueueMessage(id="p1", body=body))  # the host ran the trigger again
    assert len(webhook.requests) == 1
    alert(func.QueueMessage(id="p2", body=body))  # the same work message, poisoned a second time
    assert len(webhook.requests) == 2


@pytest.mark.parametrize("header", ["inf", "nan", "-inf"])
def test_a_retry_after_that_is_no_number_of_seconds_is_ignored(header: str) -> None:
    assert retry_after(httpx.Response(503, headers={"Retry-After": header})) is None
    assert graph_retry_after({"Retry-After": header}) is None


def test_a_long_retry_after_is_waited_only_up_to_the_policy_maximum() -> None:
    policy = RetryPolicy.model_validate(
        {"type": "fixed", "count": 2, "interval": "PT2S", "maximumInterval": "PT1M"}
    )
    assert delay_before_next(policy, 1, TransientError("429", retry_after=86_400)) == 60
    assert delay_before_next(policy, 1, TransientError("429", retry_after=7)) == 7


@pytest.fixture
def on_azure(azurite: str, tmp_path: Path) -> Settings:
    """The bridge on Azure Storage (Azurite), with a work queue of its own."""
    return Settings(
        home=tmp_path / "home",
        backend="azure",
        storage_connection=SecretStr(azurite),
        work_queue=f"work-{uuid.uuid4().hex[:12]}",
        allow_stand_ins=True,  # the SMI, mail and Teams on their stand-ins: these are storage's tests
    )


def test_a_command_refused_by_azure_storage_ends_in_one_line_naming_it(
    azurite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong account key (rotated without the app settings) printed a traceback of 90 lines."""
    key = base64.b64encode(b"not the account's key").decode()
    wrong = ";".join(
        f"AccountKey={key}" if part.startswith("AccountKey=") else part for part in azurite.split(";")
    )
    assert wrong != azurite
    monkeypatch.setenv("BRIDGE_BACKEND", "azure")
    monkeypatch.setenv("BRIDGE_STORAGE_CONNECTION", wrong)
    monkeypatch.setenv("BRIDGE_WORK_QUEUE", f"work-{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("BRIDGE_ALLOW_STAND_INS", "true")  # only storage is under test

    assert main(["--home", str(tmp_path / "home"), "poisoned"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: table "), lines
    assert "Azure Storage answered 403" in lines[0]
    assert key not in lines[0]


def test_on_azure_a_drain_of_exactly_its_limit_ends_normally(on_azure: Settings) -> None:
    """The last message handled, the queue is empty: the drain is done, not a runaway loop."""
    with bootstrap(on_azure) as app:
        for number in range(2):
            app.bridge.submit(Message(type="event", event="nobody.listens", body={"n": number}))
        assert app.bridge.drain(limit=2) == []  # no flow listens: no runs, and no error either
        assert app.parts.queue.get() is None


def test_on_azure_a_drain_stops_at_its_limit_with_the_rest_still_queued(on_azure: Settings) -> None:
    with bootstrap(on_azure) as app:
        for number in range(3):
            app.bridge.submit(Message(type="event", event="nobody.listens", body={"n": number}))
        with pytest.raises(RuntimeError, match="not empty after 2 messages"):
            app.bridge.drain(limit=2)
        left = app.parts.queue.get()  # not taken by the drain: visible at once, to the next one
        assert left is not None and left.body == {"n": 2}


def on_azure_functions(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, webhook: RecordingWebhook
) -> None:
    """App settings of a function app on ``settings``' storage, posting to ``webhook``."""
    assert settings.storage_connection is not None
    monkeypatch.setenv("BRIDGE_BACKEND", "azure")
    monkeypatch.setenv("BRIDGE_STORAGE_CONNECTION", settings.storage_connection.get_secret_value())
    monkeypatch.setenv("BRIDGE_WORK_QUEUE", settings.work_queue)
    monkeypatch.setenv("BRIDGE_TEAMS_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("BRIDGE_ALLOW_STAND_INS", "true")  # the SMI and mail: only Teams is watched


def host_delivers(function: Any, queue: QueueClient) -> None:
    """What the Functions host does with the next visible message of a queue its trigger watches: the
    function gets it decoded (base64), and a function that returns has it deleted; one that raises
    leaves it to be delivered again (and, after ``maxDequeueCount`` deliveries, moved to
    ``<queue>-poison``)."""
    received = queue.receive_message(visibility_timeout=30)
    assert received is not None, f"nothing visible in {queue.queue_name}"
    function(
        func.QueueMessage(
            id=received.id,
            body=base64.b64decode(received.content),
            pop_receipt=received.pop_receipt,
        )
    )
    queue.delete_message(received.id, received.pop_receipt)


def messages_in(queue: QueueClient) -> int:
    """Visible and hidden: what the queue holds."""
    count = queue.get_queue_properties().approximate_message_count
    assert count is not None
    return count


def test_a_poison_alert_that_cannot_be_posted_stays_in_the_poison_queue_and_is_told_later(
    webhook: RecordingWebhook,
    on_azure: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Teams down: the alert's trigger failed every delivery, and the host moved the poisoned message
    on to ``<queue>-poison-poison``, which nothing watches. Now the failure is logged with the message's
    id, the message waits in the poison queue, and its alert is tried again later."""
    on_azure_functions(monkeypatch, on_azure, webhook)
    monkeypatch.setenv("BRIDGE_POISON_ALERT_RETRY_SECONDS", "1")
    poisoned = Message(type="recurrence", flow="secas-sync")
    assert on_azure.storage_connection is not None
    connection = on_azure.storage_connection.get_secret_value()
    poison = QueueClient.from_connection_string(connection, f"{on_azure.work_queue}-poison")
    with poison:
        poison.create_queue()
        poison.send_message(base64.b64encode(poisoned.model_dump_json().encode()).decode())  # as the host
        webhook.answers.append(Answer(503, body="Teams is down"))
        alert = user_function("poison_alert")
        with caplog.at_level(logging.ERROR):
            host_delivers(alert, poison)  # the post fails: the trigger still ends well
        assert len(webhook.requests) == 1
        [failure] = [record for record in caplog.records if record.levelno >= logging.ERROR]
        assert poisoned.message_id in failure.getMessage()
        assert SIGNATURE not in caplog.text and webhook.url not in caplog.text
        assert messages_in(poison) == 1  # kept, hidden until the alert is tried again
        assert poison.peek_messages() == []
        time.sleep(1.5)
        host_delivers(alert, poison)  # Teams is back
        assert len(webhook.requests) == 2
        assert poisoned.message_id in webhook.requests[1][3].decode()
        assert messages_in(poison) == 0


def test_the_upkeep_brings_back_what_the_host_moved_to_the_poison_queues_poison_queue(
    on_azure: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The alert's trigger failed every delivery (the bridge could not be built, Storage refused the
    put-back, or before this was mended): the host moved the message on to ``-poison-poison``."""
    assert on_azure.storage_connection is not None
    connection = on_azure.storage_connection.get_secret_value()
    poisoned = Message(type="recurrence", flow="secas-sync")
    content = base64.b64encode(poisoned.model_dump_json().encode()).decode()
    with (
        QueueClient.from_connection_string(connection, f"{on_azure.work_queue}-poison-poison") as unwatched,
        QueueClient.from_connection_string(connection, f"{on_azure.work_queue}-poison") as poison,
        bootstrap(on_azure) as app,
    ):
        app.process(Message(type="list_changed", body={"renew_subscription": True}))  # none there yet
        unwatched.create_queue()
        unwatched.send_message(content)
        with caplog.at_level(logging.WARNING):
            app.process(Message(type="list_changed", body={"renew_subscription": True}))
        assert messages_in(unwatched) == 0
        assert [parked.content for parked in poison.peek_messages(max_messages=5)] == [content]
        assert poisoned.message_id in caplog.text  # in the log, by its id, for whoever searches it


def test_on_azure_upkeep_replaces_a_subscription_made_with_a_rotated_client_state(
    graph: GraphServer, session: GraphSession, settings: StorageSettings
) -> None:
    """The workers share the subscription record in the delta links table: a fingerprint of the client
    state, never the state. A subscription the bridge has no record of (made before this version, or by
    hand) is replaced once too: nothing vouches for its client state."""

    table = "graph" + uuid.uuid4().hex[:12]

    def upkeep_with(state: str) -> EnsuredSubscription:  # a worker's upkeep, with these settings
        with connect(settings.model_copy(update={"delta_links_table": table})) as stores:
            return ListSubscriptions(
                session,
                site_id=graph.site_id,
                list_id=graph.list_id,
                notification_url="https://bridge.dcc.example/api/graph/notifications",
                client_state=SecretStr(state),
                records=stores.subscription_records,
            ).ensure_subscription()

    graph.subscriptions["by-hand"] = {
        "id": "by-hand",
        "resource": f"sites/{graph.site_id}/lists/{graph.list_id}",
        "changeType": "updated",
        "notificationUrl": "https://bridge.dcc.example/api/graph/notifications",
        "expirationDateTime": "2026-12-01T00:00:00Z",
        "clientState": "whatever it was",
    }
    first = upkeep_with("first-client-state-value")
    assert first.created and list(graph.subscriptions) == [first.subscription.id]
    assert not upkeep_with("first-client-state-value").created  # renewed: the record vouches for it
    rotated = upkeep_with("rotated-client-state-value")
    assert rotated.created and list(graph.subscriptions) == [rotated.subscription.id]
    assert graph.subscriptions[rotated.subscription.id]["clientState"] == "rotated-client-state-value"
    assert [s.method for s in graph.requests(path_suffix=f"/subscriptions/{first.subscription.id}")] == [
        "PATCH",
        "DELETE",
    ]
    with TableClient.from_connection_string(azurite_of(settings), table) as raw:
        [entity] = raw.list_entities()
    assert entity["subscription_id"] == rotated.subscription.id
    assert "client-state" not in " ".join(str(value) for value in entity.values())


def poison_and_work(settings: Settings) -> tuple[QueueClient, QueueClient]:
    """Clients of the poison queue and the work queue on this Azurite (use them in a ``with``)."""
    assert settings.storage_connection is not None
    connection = settings.storage_connection.get_secret_value()
    return (
        QueueClient.from_connection_string(connection, f"{settings.work_queue}-poison"),
        QueueClient.from_connection_string(connection, settings.work_queue),
    )


def poisoned_by_the_host(poison: QueueClient, message: Message) -> None:
    """``message`` on the poison queue, as the host moves one there (base64, as host.json says)."""
    poison.create_queue()
    poison.send_message(as_the_host_queues(message))


def as_the_host_queues(message: Message) -> str:
    return base64.b64encode(message.model_dump_json().encode()).decode()


def kept_copies(settings: Settings, message_id: str) -> list[PoisonedMessage]:
    """What the bridge on ``settings`` keeps of one poisoned message (the kept table is shared by the
    tests on this Azurite: each looks at its own messages only)."""
    with bootstrap(settings) as app:
        queue = app.parts.queue
        assert isinstance(queue, HoldsPoisoned)
        return [kept for kept in queue.poisoned_messages() if kept.message_id == message_id]


def test_a_poisoned_message_survives_its_alert_and_is_requeued_and_processed(
    webhook: RecordingWebhook,
    on_azure: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A form response whose intake failed every delivery (the bridge could not start): the host moved
    it to the poison queue, and deletes it from there once the alert is posted. It is kept first, and
    the on-call engineer puts it back, with the command line used locally, once the cause is fixed."""
    on_azure_functions(monkeypatch, on_azure, webhook)
    response = json.loads((SAMPLES / "forms" / "responses.json").read_text())[0]
    poisoned = form_response_message(response)
    poison, work = poison_and_work(on_azure)
    with poison, work, caplog.at_level(logging.INFO):
        poisoned_by_the_host(poison, poisoned)
        host_delivers(user_function("poison_alert"), poison)  # told: the host deletes it
        assert len(webhook.requests) == 1 and messages_in(poison) == 0
        [kept] = kept_copies(on_azure, poisoned.message_id)
        assert (kept.type, kept.flow) == ("form_response", None)

        assert main(["poisoned"]) == 0
        listed = capsys.readouterr()
        assert poisoned.message_id in listed.out and "form_response" in listed.out

        assert main(["poisoned", "--requeue", "0" * 32]) == 2  # an id nobody kept
        assert capsys.readouterr().err.strip().splitlines() == [
            f"error: no poisoned message kept under {'0' * 32} (list them with 'poisoned')"
        ]
        assert messages_in(work) == 0

        assert main(["poisoned", "--requeue", poisoned.message_id]) == 0
        assert "1 poisoned message(s) put back" in capsys.readouterr().err
        assert kept_copies(on_azure, poisoned.message_id) == []  # back on the queue, then forgotten
        assert messages_in(work) == 1
        host_delivers(user_function("run_work"), work)  # the cause is fixed: the intake runs
        with bootstrap(on_azure) as app:
            assert app.cases.get(str(response["responseId"])) is not None
    assert response["responder"] not in listed.out + listed.err + caplog.text  # a contact: never shown


def test_the_poison_card_names_the_command_that_puts_an_unreadable_message_back(
    webhook: RecordingWebhook,
    on_azure: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The card used to be a failed run's ("resubmit the run"), naming the poison queue's own message
    id, which neither ``runs`` nor ``poisoned`` knew: the command it names now puts the message back."""
    on_azure_functions(monkeypatch, on_azure, webhook)
    body = b"\x00 not a queue message " + uuid.uuid4().hex.encode()
    poison, work = poison_and_work(on_azure)
    with poison, work:
        poison.create_queue()
        poison.send_message(base64.b64encode(body).decode())
        host_delivers(user_function("poison_alert"), poison)
        [(_, _, _, posted)] = webhook.requests
        card = json.loads(posted)["attachments"][0]["content"]
        facts = {f["title"]: f["value"] for e in card["body"] if e["type"] == "FactSet" for f in e["facts"]}
        assert facts["Message id"] == f"unreadable-{hashlib.sha256(body).hexdigest()[:16]}"
        assert card["body"][0]["text"] == "Queue message set aside: unreadable"
        command = facts["Put it back"].split()
        assert command[:4] == ["python", "-m", "flows", "poisoned"]
        # From the on-call engineer's shell: the storage settings, and what the card says to add.
        assert "BRIDGE_ALLOW_STAND_INS=true" in card["body"][1]["text"]
        monkeypatch.delenv("BRIDGE_TEAMS_WEBHOOK_URL")
        assert main(command[3:]) == 0
        assert "1 poisoned message(s) put back" in capsys.readouterr().err
        assert messages_in(work) == 1


def test_a_kept_poisoned_message_is_forgotten_by_id_and_not_put_back(
    webhook: RecordingWebhook,
    on_azure: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A kept message holds a supplier's contact: one dealt with by other means is deleted by name."""
    on_azure_functions(monkeypatch, on_azure, webhook)
    response = json.loads((SAMPLES / "forms" / "responses.json").read_text())[1]
    poisoned = form_response_message(response)
    poison, work = poison_and_work(on_azure)
    with poison, work:
        poisoned_by_the_host(poison, poisoned)
        host_delivers(user_function("poison_alert"), poison)
        assert len(kept_copies(on_azure, poisoned.message_id)) == 1
        before = messages_in(work)

        assert main(["poisoned", "--forget", poisoned.message_id, "0" * 32]) == 2  # one not kept
        assert "no poisoned message kept under " + "0" * 32 in capsys.readouterr().err
        assert len(kept_copies(on_azure, poisoned.message_id)) == 1  # nothing deleted

        assert main(["poisoned", "--forget", poisoned.message_id]) == 0
        assert f"1 poisoned message(s) deleted ({poisoned.message_id})" in capsys.readouterr().err
        assert kept_copies(on_azure, poisoned.message_id) == []
        assert messages_in(work) == before  # deleted, not put back


def cells_of(table: str, message_id: str) -> list[str]:
    """The cells of the one row of a printed table that names ``message_id`` (its first line)."""
    [line] = [line for line in table.splitlines() if message_id in line]
    return [cell.strip() for cell in line.split("\u2502")[1:-1]]


def test_poisoned_lists_what_waits_in_the_poison_queue_not_kept_yet(
    webhook: RecordingWebhook,
    on_azure: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What the trigger has not kept yet is listed from a peek, by the id it will be kept under and its
    deliveries, so the on-call engineer does not take an empty list for an empty poison queue; the peek
    takes nothing and counts no delivery."""
    on_azure_functions(monkeypatch, on_azure, webhook)
    response = json.loads((SAMPLES / "forms" / "responses.json").read_text())[2]
    message = form_response_message(response)
    poison, work = poison_and_work(on_azure)
    name = f"{on_azure.work_queue}-poison"
    with poison, work:
        poisoned_by_the_host(poison, message)
        poison.send_message(base64.b64encode(b"not a message").decode())
        delivered = poison.receive_message(visibility_timeout=60)  # the trigger's first delivery failed
        assert delivered is not None
        poison.update_message(delivered, pop_receipt=delivered.pop_receipt, visibility_timeout=0)
        assert main(["poisoned"]) == 0  # the queues are this test's own: two messages wait
        said = capsys.readouterr()
        unreadable = "unreadable-" + hashlib.sha256(b"not a message").hexdigest()[:16]
        assert cells_of(said.out, message.message_id)[:4] == [message.message_id, "form_response", "-", "1"]
        assert cells_of(said.out, unreadable)[:4] == [unreadable, "unreadable", "-", "0"]
        assert f"Not kept yet, in {name} (2)" in said.out and "not kept yet: waiting in" in said.out
        assert f"2 more in {name}, not kept yet (listed above" in said.err
        assert "not listed" not in said.err
        assert response["responder"] not in said.out + said.err  # a contact: never shown
        assert sorted(peeked.dequeue_count or 0 for peeked in poison.peek_messages(max_messages=32)) == [0, 1]

        host_delivers(user_function("poison_alert"), poison)  # kept and told
        host_delivers(user_function("poison_alert"), poison)
        assert main(["poisoned"]) == 0
        said = capsys.readouterr()
        assert "not kept yet" not in said.out + said.err
        assert message.message_id in said.out and unreadable in said.out  # kept under the ids listed


def test_poisoned_says_how_many_more_wait_than_a_peek_lists(
    webhook: RecordingWebhook,
    on_azure: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A peek shows the first 32 visible messages and no more (the service has no paging for it), and
    none hidden until its alert is tried again: those are counted, never passed over in silence."""
    on_azure_functions(monkeypatch, on_azure, webhook)
    response = json.loads((SAMPLES / "forms" / "responses.json").read_text())[0]
    messages = [form_response_message({**response, "responseId": 9000 + number}) for number in range(35)]
    poison, work = poison_and_work(on_azure)
    name = f"{on_azure.work_queue}-poison"
    with poison, work:
        poison.create_queue()
        for message in messages:
            poison.send_message(as_the_host_queues(message))
        hidden = form_response_message({**response, "responseId": 8999})  # its alert failed: tried later
        poison.send_message(as_the_host_queues(hidden), visibility_timeout=600)
        assert main(["poisoned"]) == 0
        said = capsys.readouterr()

    assert [message.message_id in said.out for message in messages] == [True] * 32 + [False] * 3
    assert hidden.message_id not in said.out
    assert f"32 more in {name}, not kept yet (listed above" in said.err
    assert f"and about 4 more in {name}, not kept yet and not listed" in said.err


def test_the_poison_trigger_run_again_keeps_one_copy(
    webhook: RecordingWebhook, on_azure: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host runs the trigger again (a crash after the keep), and the alert that failed puts the
    message back as a new queue message: each finds the copy kept."""
    on_azure_functions(monkeypatch, on_azure, webhook)
    monkeypatch.setenv("BRIDGE_POISON_ALERT_RETRY_SECONDS", "1")
    poisoned = Message(type="recurrence", flow="secas-sync")
    body = poisoned.model_dump_json().encode()
    alert = user_function("poison_alert")
    alert(func.QueueMessage(id="p1", body=body))
    alert(func.QueueMessage(id="p1", body=body))  # run again
    webhook.answers.append(Answer(503, body="Teams is down"))
    alert(func.QueueMessage(id="p2", body=body))  # poisoned again: its alert fails, and it is put back
    alert(func.QueueMessage(id="p3", body=body))  # ... and delivered again later
    assert len(kept_copies(on_azure, poisoned.message_id)) == 1
    with bootstrap(on_azure) as app:
        queue = app.parts.queue
        assert isinstance(queue, HoldsPoisoned)
        assert queue.requeue_poisoned([poisoned.message_id]) == 1
        assert app.parts.queue.get() == poisoned
        assert app.parts.queue.get() is None  # one copy put back


def test_a_poisoned_message_that_cannot_be_kept_waits_in_the_poison_queue_untold(
    webhook: RecordingWebhook,
    on_azure: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The table refuses the copy: told now, the host would delete the only one. It goes back to the
    poison queue, hidden, and is kept and told on the next delivery."""
    on_azure_functions(monkeypatch, on_azure, webhook)
    monkeypatch.setenv("BRIDGE_POISON_ALERT_RETRY_SECONDS", "1")
    poisoned = Message(type="recurrence", flow="secas-sync")
    assert on_azure.storage_connection is not None
    connection = on_azure.storage_connection.get_secret_value()
    keep = TablePoisonedMessages.keep

    def table_down(self: TablePoisonedMessages, body: bytes, *, reason: str) -> Any:
        raise TransientError("table bridgepoisoned: keep poisoned message: Azure Storage answered 503")

    with QueueClient.from_connection_string(connection, f"{on_azure.work_queue}-poison") as poison:
        poison.create_queue()
        poison.send_message(base64.b64encode(poisoned.model_dump_json().encode()).decode())
        alert = user_function("poison_alert")
        monkeypatch.setattr(TablePoisonedMessages, "keep", table_down)
        with caplog.at_level(logging.ERROR):
            host_delivers(alert, poison)  # the trigger ends well: the host deletes this delivery
        [failure] = [record for record in caplog.records if record.levelno >= logging.ERROR]
        assert poisoned.message_id in failure.getMessage() and "keeping it failed" in failure.getMessage()
        assert webhook.requests == []  # not told while it is kept nowhere but the poison queue
        assert messages_in(poison) == 1 and poison.peek_messages() == []
        monkeypatch.setattr(TablePoisonedMessages, "keep", keep)
        time.sleep(1.5)
        host_delivers(alert, poison)
        assert len(webhook.requests) == 1 and messages_in(poison) == 0
    assert len(kept_copies(on_azure, poisoned.message_id)) == 1


@pytest.fixture
def kept_apart(settings: StorageSettings) -> Iterator[AzureStores]:
    """Stores with a kept-messages table of their own (to put back every one kept)."""
    with connect(settings.model_copy(update={"poisoned_table": "poisoned" + uuid.uuid4().hex[:12]})) as made:
        yield made


def test_a_requeue_cut_short_after_the_put_back_keeps_the_copy(
    kept_apart: AzureStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Put back first, forgotten second: a failure between them leaves a copy kept, never none; put
    back twice, the message's runs resume by its id. An unreadable body is kept under its digest."""
    queue = kept_apart.queue
    big = Message(type="event", event="nobody.listens", body={"filler": "x" * 45_000})
    unreadable = b"\xff not a work message"
    queue.keep_poisoned(big.model_dump_json().encode())
    stray = queue.keep_poisoned(unreadable)
    assert stray.type == "unreadable" and stray.message_id.startswith("unreadable-")

    def table_down(self: TablePoisonedMessages, row: str) -> None:
        raise TransientError("table: forget a poisoned message: Azure Storage answered 503")

    monkeypatch.setattr(TablePoisonedMessages, "forget", table_down)
    with pytest.raises(TransientError):
        queue.requeue_poisoned([big.message_id])
    assert queue.get() == big
    assert [kept.message_id for kept in queue.poisoned_messages()] == [big.message_id, stray.message_id]
    monkeypatch.undo()
    assert queue.requeue_poisoned() == 2  # every one kept
    assert queue.poisoned_messages() == []
    assert queue.get() == big  # again: safe, its runs resume
    assert queue.get() is None  # the unreadable one went straight to the poison queue


def test_a_body_over_one_table_property_is_kept_whole(settings: StorageSettings) -> None:
    """A queue set to plain text carries up to 64 KiB: more than one binary property holds."""
    body = Message(type="event", event="nobody.listens", body={"filler": "y" * 70_000}).model_dump_json()
    table = "poisoned" + uuid.uuid4().hex[:12]
    with TableClient.from_connection_string(azurite_of(settings), table) as client:
        client.create_table()
        kept = TablePoisonedMessages(client)
        first, kept_now = kept.keep(body.encode(), reason="test")
        assert kept_now and not kept.keep(body.encode(), reason="test")[1]
        [row] = kept.all_rows()
        assert kept.body(row) == body.encode()
        assert kept.listing() == [first]
        [entity] = client.list_entities()
        assert entity["body_parts"] == 2

"""Graph delivering the same change notification many times, and out of order, through the whole Azure
path: the ``graph_notifications`` function (as the host calls it), the queue messages it writes, the
``run_work`` worker, and the real msgraph-sdk reading the list's delta from a Graph-shaped server on
127.0.0.1 (the delta link kept in the bridge's SQLite file). However many notifications arrive, in
whatever order, and whatever resync Graph demands, each form response makes one case, one
acknowledgement and one operator card."""

from __future__ import annotations

import json
import random
from pathlib import Path

import azure.functions as func

from adapters.functions import runtime
from adapters.graph import GraphSession, ListDeltaReader, SqliteDeltaLinkStore
from flows.queue_message import Message
from tests.graph_server import GraphServer

# The fixtures the function-app and Graph adapter tests already have: a fresh bridge home for the
# function app (autouse there, and here), a Graph-shaped server and an SDK session against it.
from tests.test_function_app import CLIENT_STATE, Captured, app_settings, notification, user_function
from tests.test_graph_adapters import graph, session
from tests.test_graph_adapters import pytestmark as sdk_warnings

pytestmark = sdk_warnings  # the SDK's own import-time deprecation warnings (see test_graph_adapters)

RESPONSES = 8  # the sample list holds eight form responses


def notified(times: int) -> list[Message]:
    """Graph calling the webhook ``times`` times with the same notification: the messages queued."""
    messages = []
    for _ in range(times):
        body = json.dumps({"value": [notification(CLIENT_STATE)]}).encode()
        request = func.HttpRequest(
            "POST", "/api/graph/notifications", headers={"Content-Type": "application/json"}, body=body
        )
        out = Captured()
        assert user_function("graph_notifications")(request, work=out).status_code == 202
        messages.append(out.message())
    return messages


def work(messages: list[Message]) -> None:
    for number, message in enumerate(messages):
        queued = func.QueueMessage(id=f"q{number}", body=message.model_dump_json().encode())
        user_function("run_work")(queued)


def outbox(home: Path, kind: str, prefix: str) -> list[Path]:
    return sorted((home / "outbox" / kind).glob(f"{prefix}*"))


def test_repeated_and_reordered_notifications_make_one_case_each(
    app_settings: Path, graph: GraphServer, session: GraphSession
) -> None:
    home = app_settings
    app = runtime.current_app()
    links = SqliteDeltaLinkStore(app.parts.cases.database)  # type: ignore[attr-defined]
    reader = ListDeltaReader(session, site_id=graph.site_id, list_id=graph.list_id, store=links)
    app.parts.list_changes = reader.read

    first = notified(6)
    random.Random(7).shuffle(first)
    work(first + first[:2])  # two of them delivered twice by the queue, too
    cases = app.cases.list()
    assert len(cases) == RESPONSES
    acknowledged = outbox(home, "mail", "mail_acknowledge_")
    # Each opened case is acknowledged; of the rejected, response 5 (invalid fields) is answered too,
    # from Cobalt's own domain, and 7 (a stranger) is not.
    answered = {case.response_id for case in cases if case.state.value != "rejected"} | {"5"}
    assert {path.name.removeprefix("mail_acknowledge_").split("-")[0] for path in acknowledged} == answered
    assert len(answered) == 7

    # Later: a responder edits their item (a new version of the same response), Graph notifies three
    # times, and one delivery of the first batch arrives late.
    edited = dict(graph.items[0], fields={**graph.items[0]["fields"], "Title": "edited"})
    graph.add_changes(edited)
    work(notified(3)[::-1] + first[:1])
    # Then Graph demands a resync (410): the next pass reads the whole list again.
    graph.expire_delta_links()
    work(notified(2))

    assert len(app.cases.list()) == RESPONSES
    assert outbox(home, "mail", "mail_acknowledge_") == acknowledged  # nobody was told twice
    opened_cards = outbox(home, "teams", "notification-intake_")
    assert len(opened_cards) == RESPONSES
    delta_reads = graph.requests("GET", "/items/delta")
    assert len(delta_reads) >= 6 + 3 + 2  # every notification led to a delta pass


__all__ = ["app_settings", "graph", "session"]  # imported as fixtures, not unused

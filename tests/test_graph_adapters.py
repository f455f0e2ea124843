"""The Microsoft Graph adapters on the real msgraph-sdk, against a Graph-shaped server on loopback.

Nothing is mocked: the SDK builds and sends real HTTP requests (through its middleware: retry,
redirects, telemetry) over httpx to ``tests/graph_server.py``, which records what arrives. Only the
credential differs from production: ``StaticToken`` below hands the SDK a fixed bearer token so that no
tenant is needed. It exists for these tests only; the bridge authenticates with azure-identity.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from pydantic import SecretStr, ValidationError

from adapters.forms import load_form_definition, notification_from_list_item
from adapters.graph import (
    DEFAULT_LIFETIME,
    IDEMPOTENCY_HEADER,
    LIST_SUBSCRIPTION_MAX,
    GraphMailer,
    GraphSession,
    GraphSettings,
    InMemoryDeltaLinkStore,
    InMemorySubscriptionRecords,
    ListDeltaReader,
    ListSubscriptions,
    SqliteDeltaLinkStore,
    SqliteSubscriptionRecords,
    build_credential,
    retry_after,
)
from flows.bootstrap import bootstrap
from flows.errors import BadInput, PermanentError, TransientError
from flows.ports import OutgoingEmail
from flows.queue_message import Message
from flows.settings import Settings
from tests.graph_server import SAMPLE_DELTA, GraphServer
from tests.support.certificates import self_signed
from tests.token_server import Answer, TokenServer

# msgraph-sdk 1.65 and kiota-abstractions 1.16 call warnings.warn(DeprecationWarning) in class bodies of
# their own generated modules (the per-builder ``...RequestConfiguration`` classes and kiota's
# ``GetQueryParameters``), so the warning fires when the SDK first imports them, whatever the caller
# does. Not fixable here; these two messages only are let through, every other warning stays an error.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:This class is deprecated. Please use the generic RequestConfiguration:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:GetQueryParameters is deprecated:DeprecationWarning"),
]

MAILBOX = "cpl-bridge@dcc.example"
HOOK = "https://bridge.dcc.example/api/graph/notifications"
CLIENT_STATE = "s3cret-client-state"
SAMPLE_ITEMS: list[dict[str, Any]] = json.loads(SAMPLE_DELTA.read_text(encoding="utf-8"))["value"]


class StaticToken(AccessTokenProvider):
    """A fixed bearer token, for the loopback server only (the bridge uses azure-identity)."""

    def __init__(self, token: str, host: str = "127.0.0.1") -> None:
        self._token = token
        self._hosts = AllowedHostsValidator([host])

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] | None = None
    ) -> str:
        return self._token if self._hosts.is_url_host_valid(uri) else ""

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._hosts


def settings_for(base_url: str, graph: GraphServer | None = None) -> GraphSettings:
    return GraphSettings(
        base_url=base_url,
        site_id=graph.site_id if graph else "site",
        list_id=graph.list_id if graph else "list",
        mailbox=MAILBOX,
        notification_url=HOOK,
        client_state=SecretStr(CLIENT_STATE),
        call_timeout=30,
    )


def open_session(settings: GraphSettings, token: str = "test-token") -> GraphSession:
    return GraphSession.open(
        settings, auth_provider=BaseBearerTokenAuthenticationProvider(StaticToken(token))
    )


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    with GraphServer() as server:
        yield server


@pytest.fixture
def session(graph: GraphServer) -> Iterator[GraphSession]:
    with open_session(settings_for(graph.url, graph)) as opened:
        yield opened


@pytest.fixture
def store() -> InMemoryDeltaLinkStore:
    return InMemoryDeltaLinkStore()


@pytest.fixture
def reader(graph: GraphServer, session: GraphSession, store: InMemoryDeltaLinkStore) -> ListDeltaReader:
    return ListDeltaReader(session, site_id=graph.site_id, list_id=graph.list_id, store=store)


def an_email(key: str = "mail/loaded/R-0001") -> OutgoingEmail:
    return OutgoingEmail(
        to=("ops@amberline-energy.example", "security@amberline-energy.example"),
        subject="ECPL-2026-0031 loaded: you may upgrade",
        text_body="Dear supplier,\nyou may start the upgrades.\n",
        html_body="<p>Dear supplier,</p><p>You may start the upgrades &amp; tell us.</p>",
        idempotency_key=key,
    )


# --- list-item delta ------------------------------------------------------------------------------


def test_delta_follows_next_link_yields_sample_items_and_stores_delta_link(graph, reader, store):
    items = list(reader.read())

    assert items == SAMPLE_ITEMS  # as Graph sent them: strings stay strings (no datetime, no UUID)
    form = load_form_definition(Settings().form_definition)
    assert notification_from_list_item(items[0], form).response_id == "1"
    first, second = graph.seen
    assert first.path.endswith(f"/sites/{graph.site_id}/lists/{graph.list_id}/items/delta()")
    assert first.query == {"$expand": ["fields"]}
    assert second.query == {"token": ["page-1"]}
    assert {s.headers["authorization"] for s in graph.seen} == {"Bearer test-token"}
    assert store.get(graph.list_id) == (
        f"{graph.url}/sites/{graph.site_id}/lists/{graph.list_id}/items/delta?token=delta-2"
    )


def test_next_read_starts_from_stored_delta_link_and_skips_deleted_items(graph, reader, store, caplog):
    list(reader.read())
    changed = {**SAMPLE_ITEMS[2], "fields": {**SAMPLE_ITEMS[2]["fields"], "ContactPhone": "+44 20 7946 0999"}}
    graph.add_changes(changed, {"id": "104", "deleted": {"state": "deleted"}}, {"id": "106", "@removed": {}})

    with caplog.at_level(logging.INFO, logger="adapters.graph.delta"):
        items = list(reader.read())

    assert items == [changed]
    assert graph.seen[-1].query == {"token": ["delta-2"]} and len(graph.seen) == 3
    assert [r.getMessage() for r in caplog.records] == [
        f"delta of list {graph.list_id}: item 104 was deleted, skipped",
        f"delta of list {graph.list_id}: item 106 was deleted, skipped",
    ]
    assert store.get(graph.list_id).endswith("items/delta?token=delta-3")


def test_a_read_abandoned_half_way_keeps_the_previous_link(graph, reader, store):
    reading = reader.read()
    next(reading)
    reading.close()

    assert store.get(graph.list_id) is None
    assert len(list(reader.read())) == 8


def test_410_resync_restarts_from_a_fresh_delta_and_says_so(graph, reader, store, caplog):
    list(reader.read())
    graph.expire_delta_links()

    with caplog.at_level(logging.WARNING, logger="adapters.graph.delta"):
        items = list(reader.read())

    assert items == SAMPLE_ITEMS
    stale, fresh, page_2 = graph.seen[2:]
    assert (stale.status, stale.query) == (410, {"token": ["delta-2"]})
    assert (fresh.status, fresh.query) == (200, {"$expand": ["fields"]})
    assert page_2.query == {"token": ["page-3"]}
    (warning,) = caplog.records
    assert "no longer valid (410 resyncRequired): restarting from a fresh delta" in warning.getMessage()
    assert store.get(graph.list_id).endswith("token=delta-4")


def test_410_on_a_fresh_delta_is_permanent(graph, reader):
    graph.fail_next(410)

    with pytest.raises(PermanentError, match="Graph answered 410 to a fresh delta"):
        list(reader.read())
    assert len(graph.seen) == 1


def test_429_is_retried_by_the_sdk_after_the_retry_after_it_gives(graph, reader):
    graph.fail_next(429, retry_after=1)

    items = list(reader.read())

    assert len(items) == 8
    throttled, retried, page_2 = graph.seen
    assert [throttled.status, retried.status, page_2.status] == [429, 200, 200]
    assert retried.query == throttled.query == {"$expand": ["fields"]}
    assert retried.headers["retry-attempt"] == "1" and "retry-attempt" not in throttled.headers
    assert retried.at - throttled.at >= 1.0  # the server's Retry-After, measured where it was asked for


def test_delta_links_kept_in_sqlite_survive_a_reopen(graph, session, tmp_path):
    path = tmp_path / "bridge.sqlite3"
    with SqliteDeltaLinkStore(path) as store:
        reader = ListDeltaReader(session, site_id=graph.site_id, list_id=graph.list_id, store=store)
        list(reader.read())
    with SqliteDeltaLinkStore(path) as store:
        link = store.get(graph.list_id)
        reader = ListDeltaReader(session, site_id=graph.site_id, list_id=graph.list_id, store=store)
        assert list(reader.read()) == []
        store.forget(graph.list_id)
        assert store.get(graph.list_id) is None
    assert link is not None and link.endswith("token=delta-2")
    assert graph.seen[-1].query == {"token": ["delta-2"]}


# --- sendMail -------------------------------------------------------------------------------------


def test_send_mail_posts_the_exact_body_graph_expects(graph, session):
    mailer = GraphMailer(session, mailbox=MAILBOX)
    email = an_email()

    message_id = mailer.send(email)

    (request,) = graph.seen
    assert (request.method, request.path) == ("POST", f"/v1.0/users/{MAILBOX}/sendMail")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "Message": {
            "@odata.type": "#microsoft.graph.message",
            "subject": email.subject,
            "body": {"contentType": "html", "content": email.html_body},
            "toRecipients": [{"emailAddress": {"address": address}} for address in email.to],
            "internetMessageHeaders": [{"name": IDEMPOTENCY_HEADER, "value": email.idempotency_key}],
        },
        "SaveToSentItems": True,
    }
    assert IDEMPOTENCY_HEADER.lower().startswith("x-")
    assert message_id == mailer.message_id(email.idempotency_key)
    assert message_id.endswith("@dcc.example>") and message_id != mailer.message_id("another key")


def test_engine_retry_mode_sends_once_and_hands_503_to_the_engine(graph, session):
    graph.fail_next(503, retry_after=7)

    with pytest.raises(TransientError) as raised:
        GraphMailer(session, mailbox=MAILBOX).send(an_email())

    assert [s.status for s in graph.seen] == [503]
    assert raised.value.retry_after == 7.0
    assert str(raised.value) == f"sendMail from {MAILBOX}: Microsoft Graph answered 503 (serviceNotAvailable)"
    assert graph.sent_mail == []


def test_sdk_retry_mode_lets_the_sdk_retry_a_503(graph, session):
    graph.fail_next(503, retry_after=1)

    GraphMailer(session, mailbox=MAILBOX, sdk_retry=True).send(an_email())

    assert [s.status for s in graph.seen] == [503, 202]
    assert len(graph.sent_mail) == 1


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "ErrorInvalidRecipients", BadInput),
        (403, "ErrorAccessDenied", PermanentError),
        (404, "ErrorInvalidUser", PermanentError),
        (429, "TooManyRequests", TransientError),
    ],
)
def test_send_mail_errors_are_translated_without_personal_data(graph, session, status, code, kind):
    graph.fail_next(status, code=code)

    with pytest.raises(kind) as raised:
        GraphMailer(session, mailbox=MAILBOX).send(an_email())

    assert str(raised.value) == f"sendMail from {MAILBOX}: Microsoft Graph answered {status} ({code})"
    assert "amberline" not in str(raised.value)
    assert len(graph.seen) == 1


def test_no_answer_is_transient():
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        open_session(settings_for(f"http://127.0.0.1:{port}/v1.0")) as session,
        pytest.raises(TransientError, match=r"no answer from Microsoft Graph \(ConnectError\)"),
    ):
        GraphMailer(session, mailbox=MAILBOX).send(an_email())


# --- subscriptions --------------------------------------------------------------------------------


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def subscriptions(graph: GraphServer, session: GraphSession, now: datetime) -> ListSubscriptions:
    return ListSubscriptions(
        session,
        site_id=graph.site_id,
        list_id=graph.list_id,
        notification_url=HOOK,
        client_state=SecretStr(CLIENT_STATE),
        records=InMemorySubscriptionRecords(),
        clock=lambda: now,
    )


def test_the_upkeep_reads_the_delta_even_when_graph_refuses_the_subscription(
    graph: GraphServer, session: GraphSession, subscriptions: ListSubscriptions, tmp_path: Path
) -> None:
    """The delta pass is the safety net for a broken subscription: a 403 on creating it (consent
    withdrawn, the webhook's function key rotated) must not stop responses being read. The upkeep's
    failure is raised after the pass, so the host retries the message and finally tells operators."""
    with bootstrap(Settings(home=tmp_path / "home")) as app:
        app.parts.list_changes = ListDeltaReader(
            session, site_id=graph.site_id, list_id=graph.list_id, store=InMemoryDeltaLinkStore()
        ).read

        def renew() -> None:
            subscriptions.ensure_subscription()

        app.parts.renew_subscription = renew
        graph.fail_next(403, code="accessDenied", method="POST")
        with pytest.raises(PermanentError, match=r"answered 403 \(accessDenied\)"):
            app.process(Message(type="list_changed", body={"renew_subscription": True}))
        assert graph.requests("GET", "/delta"), "the delta pass did not run"
        assert {case.response_id for case in app.cases.list()} == {str(n) for n in range(1, 9)}


def expiry_of(body: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(body["expirationDateTime"])


def test_subscription_create_renew_and_reauthorize_request_shapes(graph, subscriptions, now):
    created = subscriptions.create()
    renewed = subscriptions.renew(created.id)
    subscriptions.reauthorize(created.id)

    create, renew, reauthorize = graph.seen
    assert (create.method, create.path) == ("POST", "/v1.0/subscriptions")
    body = create.json()
    assert body == {
        "changeType": "updated",
        "notificationUrl": HOOK,
        "resource": f"sites/{graph.site_id}/lists/{graph.list_id}",
        "expirationDateTime": body["expirationDateTime"],
        "clientState": CLIENT_STATE,
    }
    assert expiry_of(body) == now + DEFAULT_LIFETIME and DEFAULT_LIFETIME < LIST_SUBSCRIPTION_MAX
    assert (renew.method, renew.path) == ("PATCH", f"/v1.0/subscriptions/{created.id}")
    assert renew.json() == {"expirationDateTime": body["expirationDateTime"]}
    assert (reauthorize.method, reauthorize.path, reauthorize.body) == (
        "POST",
        f"/v1.0/subscriptions/{created.id}/reauthorize",
        b"",
    )
    assert reauthorize.status == 204
    assert created.resource == renewed.resource == f"sites/{graph.site_id}/lists/{graph.list_id}"
    assert renewed.expires_at == now + DEFAULT_LIFETIME


def test_ensure_subscription_creates_when_absent_then_renews(graph, subscriptions):
    graph.subscriptions["other"] = {
        "id": "other",
        "resource": subscriptions.resource,
        "changeType": "updated",
        "notificationUrl": "https://someone-else.example/hook",
        "expirationDateTime": "2026-12-01T00:00:00Z",
    }

    first = subscriptions.ensure_subscription()
    second = subscriptions.ensure_subscription()

    assert first.created and not second.created
    assert second.subscription.id == first.subscription.id == "sub-2"
    assert [(s.method, s.path.removeprefix("/v1.0")) for s in graph.seen] == [
        ("GET", "/subscriptions"),
        ("POST", "/subscriptions"),
        ("GET", "/subscriptions"),
        ("PATCH", "/subscriptions/sub-2"),
    ]


def test_ensure_subscription_creates_another_when_ours_vanished_before_renewal(graph, subscriptions):
    made = subscriptions.create()
    graph.fail_next(404, code="ResourceNotFound", method="PATCH")

    ensured = subscriptions.ensure_subscription()

    assert ensured.created and ensured.subscription.id != made.id
    assert [s.method for s in graph.seen] == ["POST", "GET", "PATCH", "POST"]


def test_a_rotated_client_state_replaces_the_subscription(graph, session, now, tmp_path):
    """Graph keeps the client state a subscription was made with, and a renewal cannot change it: after
    ``BRIDGE_GRAPH_CLIENT_STATE`` is rotated, upkeep makes a subscription with the new state and
    deletes the old one, whose notifications the webhook now refuses."""

    records = SqliteSubscriptionRecords(tmp_path / "bridge.sqlite3")  # what the workers share

    def subscriptions_with(state: str) -> ListSubscriptions:  # a worker started with these settings
        return ListSubscriptions(
            session,
            site_id=graph.site_id,
            list_id=graph.list_id,
            notification_url=HOOK,
            client_state=SecretStr(state),
            records=records,
            clock=lambda: now,
        )

    first = subscriptions_with(CLIENT_STATE).ensure_subscription()
    assert subscriptions_with(CLIENT_STATE).ensure_subscription().subscription.id == first.subscription.id
    rotated = "rotated-" + CLIENT_STATE
    graph.seen.clear()

    ensured = subscriptions_with(rotated).ensure_subscription()

    assert ensured.created and ensured.subscription.id != first.subscription.id
    assert [(s.method, s.path.removeprefix("/v1.0")) for s in graph.seen] == [
        ("GET", "/subscriptions"),
        ("POST", "/subscriptions"),
        ("DELETE", f"/subscriptions/{first.subscription.id}"),
    ]
    assert [s["clientState"] for s in graph.subscriptions.values()] == [rotated]
    again = subscriptions_with(rotated).ensure_subscription()  # the next upkeep: a renewal
    assert not again.created and again.subscription.id == ensured.subscription.id
    stored = records.database.path.read_bytes() + b"".join(
        path.read_bytes() for path in tmp_path.glob("bridge.sqlite3-*")
    )
    assert CLIENT_STATE.encode() not in stored and rotated.encode() not in stored  # a fingerprint only
    records.close()


def test_subscription_settings_are_checked(session):
    common: dict[str, Any] = {
        "site_id": "s",
        "list_id": "l",
        "client_state": CLIENT_STATE,
        "records": InMemorySubscriptionRecords(),
    }
    with pytest.raises(ValueError, match="HTTPS endpoints only") as refused:
        ListSubscriptions(session, notification_url="http://bridge.example/hook?code=FUNCTION-KEY", **common)
    assert "'http://bridge.example/hook'" in str(refused.value)
    assert "FUNCTION-KEY" not in str(refused.value)  # the function key: it would reach the logs
    with pytest.raises(ValueError, match="at most"):
        ListSubscriptions(session, notification_url=HOOK, lifetime=timedelta(days=30), **common)


# --- settings, credentials, imports ---------------------------------------------------------------


def test_settings_name_what_a_credential_needs_and_keep_secrets_secret():
    with pytest.raises(ValidationError, match="'client_secret' needs tenant_id, client_id, client_secret"):
        GraphSettings(credential="client_secret")
    with pytest.raises(ValidationError, match="must be an https URL"):
        GraphSettings(base_url="http://graph.example/v1.0")
    settings = GraphSettings(
        credential="client_secret", tenant_id="t", client_id="c", client_secret=SecretStr("hunter2")
    )
    assert "hunter2" not in repr(settings) and settings.allowed_hosts == ["graph.microsoft.com"]
    with pytest.raises(ValueError, match="Graph settings missing: site_id, mailbox"):
        GraphSettings(list_id="l").require("site_id", "list_id", "mailbox")


def test_credential_follows_the_settings(tmp_path):
    from azure.identity.aio import CertificateCredential, ClientSecretCredential, ManagedIdentityCredential

    certificate = self_signed_pem(tmp_path / "bridge.pem")
    kinds = {
        ManagedIdentityCredential: GraphSettings(),
        ClientSecretCredential: GraphSettings(
            credential="client_secret", tenant_id="t", client_id="c", client_secret=SecretStr("x")
        ),
        CertificateCredential: GraphSettings(
            credential="certificate", tenant_id="t", client_id="c", certificate_path=certificate
        ),
    }
    for kind, settings in kinds.items():
        credential = build_credential(settings)
        assert isinstance(credential, kind)
        asyncio.run(credential.close())


def test_a_busy_token_service_is_transient_and_a_refusal_permanent(
    graph: GraphServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real azure-identity managed identity credential (as ``build_credential`` makes it) against a
    loopback App Service identity endpoint: a 503 may pass and is the engine's to retry; a 400 will not."""
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with TokenServer(token=graph.token) as tokens:
        monkeypatch.setenv("IDENTITY_ENDPOINT", f"{tokens.url}/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", "identity-header")
        tokens.answers.extend(
            [
                Answer(503, {"statusCode": 503, "message": "temporarily unavailable"}, retry_after=4),
                Answer(400, {"statusCode": 400, "message": "Unable to load the proper Managed Identity."}),
            ]
        )
        with GraphSession.open(settings_for(graph.url, graph)) as session:
            mailer = GraphMailer(session, mailbox=MAILBOX)
            with pytest.raises(
                TransientError, match="no Graph token: the token service answered HTTP 503"
            ) as busy:
                mailer.send(an_email())
            assert busy.value.retry_after == 4.0
            with pytest.raises(
                PermanentError, match=r"no Graph token: refused \(ClientAuthenticationError\)"
            ):
                mailer.send(an_email())
            mailer.send(an_email())

    assert len(tokens.hits) == 3
    assert [seen.path for seen in graph.seen] == [f"/v1.0/users/{MAILBOX}/sendMail"]


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert retry_after({"Retry-After": "3"}) == 3.0
    assert retry_after({"retry-after": "Wed, 25 Nov 2026 12:00:30 GMT"}, now=now) == 30.0
    assert retry_after({"Retry-After": "soon"}) is None and retry_after({}) is None


def test_importing_the_package_loads_no_sdk():
    code = (
        "import sys, adapters.graph\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'msgraph', 'msgraph_core', 'kiota_http',"
        " 'kiota_abstractions', 'kiota_authentication_azure'})\n"
        "print(heavy, 'azure.identity' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.stdout.strip() == "[] False"


def self_signed_pem(path: Path) -> Path:
    made = self_signed("cpl-bridge test", rsa_key=True)  # azure-identity signs RS256
    path.write_bytes(made.key + made.certificate)
    return path

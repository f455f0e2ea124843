"""The operator console through its request handler, over a real embedded store (the sample scenario
run by ``demo``): sign-in, every page, decisions, resubmission and exports. The browser tests
(``test_console_browser.py``) drive the same console in Chromium."""

from __future__ import annotations

import csv
import email
import email.message
import email.policy
import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest

from flows.bootstrap import BridgeApp, bootstrap
from flows.console import ConsoleApp, ConsoleRequest, ConsoleResponse
from flows.console.auth import SESSION_SECONDS
from flows.settings import Settings
from tests.support.demo_home import DEMO_ENDS, demo_home
from tests.support.faults import FaultPlan, install, no_sleep

KEY = "console-key-for-tests"
NOW = DEMO_ENDS + timedelta(hours=1)
FORM = "application/x-www-form-urlencoded"


class Client:
    """A signed-in operator: keeps the session cookie like a browser."""

    def __init__(self, console: ConsoleApp) -> None:
        self.console = console
        signed_in = console.handle(ConsoleRequest("GET", "/cases", {"code": KEY}))
        assert signed_in.status == 303
        self.cookie = signed_in.headers["Set-Cookie"].split(";")[0]
        found = re.search(r'name="csrf" value="([^"]+)"', self.page("/cases/4"))
        assert found
        self.token = found.group(1)  # one per session, as a browser keeps it from the page it posts from

    def get(self, path: str, query: dict[str, str] | None = None) -> ConsoleResponse:
        return self.console.handle(ConsoleRequest("GET", path, query or {}, {"cookie": self.cookie}))

    def page(self, path: str, query: dict[str, str] | None = None) -> str:
        response = self.get(path, query)
        assert response.status == 200, response.body.decode()
        return response.body.decode()

    def post(
        self, path: str, fields: dict[str, str], *, token: bool = True, **headers: str
    ) -> ConsoleResponse:
        if token:
            fields = {"csrf": self.token, **fields}
        all_headers = {"cookie": self.cookie, "content-type": FORM, **headers}
        return self.console.handle(ConsoleRequest("POST", path, {}, all_headers, urlencode(fields).encode()))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return demo_home(tmp_path / "home")


@pytest.fixture
def plan() -> FaultPlan:
    return FaultPlan()


@pytest.fixture
def app(home: Path, plan: FaultPlan) -> Iterator[BridgeApp]:
    with bootstrap(Settings(home=home), clock=lambda: NOW, sleep=no_sleep, adjust=install(plan)) as built:
        yield built


@pytest.fixture
def client(app: BridgeApp) -> Client:
    return Client(ConsoleApp(app, key=KEY))


def rows_of(html: str) -> list[str]:
    return re.findall(r"<tr>\s*<td data-label=\"Case\"><a [^>]*>([^<]+)</a>", html)


# --- signing in -------------------------------------------------------------------------------------


def test_the_key_opens_a_session_and_leaves_the_address(app: BridgeApp) -> None:
    console = ConsoleApp(app, key=KEY)
    response = console.handle(ConsoleRequest("GET", "/cases", {"code": KEY, "state": "loaded"}))
    assert response.status == 303
    assert response.headers["Location"] == "/console/cases?state=loaded"  # the key is not kept in history
    cookie = response.headers["Set-Cookie"]
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/console/", f"Max-Age={SESSION_SECONDS}"):
        assert attribute in cookie
    assert "Secure" not in cookie
    over_https = console.handle(ConsoleRequest("GET", "/", {"code": KEY}, {"x-forwarded-proto": "https"}))
    assert "; Secure" in over_https.headers["Set-Cookie"]


@pytest.mark.parametrize(
    ("query", "headers", "status", "says"),
    [
        ({}, {}, 401, "open the console with its key first"),
        ({"code": "wrong"}, {}, 401, "that console key is not valid"),
        ({}, {"cookie": "bridge_console=9999999999.forged"}, 401, "open the console with its key first"),
        ({}, {"cookie": "bridge_console=1.0000"}, 401, "open the console with its key first"),
        ({}, {"cookie": "bridge_console=\x00;;=="}, 401, "open the console with its key first"),
    ],
)
def test_no_page_without_a_valid_session(
    app: BridgeApp, query: dict[str, str], headers: dict[str, str], status: int, says: str
) -> None:
    response = ConsoleApp(app, key=KEY).handle(ConsoleRequest("GET", "/cases", query, headers))
    assert response.status == status
    assert says in response.body.decode()
    assert "Amberline" not in response.body.decode()


def test_an_expired_session_is_refused(app: BridgeApp) -> None:
    console = ConsoleApp(app, key=KEY)
    old = console.auth.open_session(now=0)
    response = console.handle(ConsoleRequest("GET", "/cases", {}, {"cookie": f"bridge_console={old}"}))
    assert response.status == 401


def test_without_a_configured_key_the_console_is_closed(app: BridgeApp) -> None:
    response = ConsoleApp(app).handle(ConsoleRequest("GET", "/cases", {}, {}))
    assert response.status == 503 and "BRIDGE_CONSOLE_KEY" in response.body.decode()


def test_app_service_mode_refuses_everyone_where_app_service_does_not_sign_in(home: Path) -> None:
    """Without App Service authentication in front (``serve``, or an app with it switched off) the
    principal header is anyone's to send."""
    settings = Settings(home=home, console_auth="app_service")
    with bootstrap(settings, clock=lambda: NOW) as app:
        forged = {"x-ms-client-principal-name": "mallory@evil.example"}
        response = ConsoleApp(app, key=KEY).handle(ConsoleRequest("GET", "/cases/4", {}, forged))
    assert response.status == 503 and "WEBSITE_AUTH_ENABLED" in response.body.decode()


def test_app_service_authentication_names_the_operator(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")  # what App Service sets with its authentication on
    settings = Settings(home=home, console_auth="app_service")
    with bootstrap(settings, clock=lambda: NOW) as app:
        console = ConsoleApp(app, key=KEY)
        anonymous = console.handle(ConsoleRequest("GET", "/cases", {}, {}))
        assert anonymous.status == 401
        named = {"x-ms-client-principal-name": "ann.operator@dcc.example"}
        page = console.handle(ConsoleRequest("GET", "/cases/4", {}, named)).body.decode()
        assert "ann.operator@dcc.example" in page
        assert 'name="operator"' not in page  # the platform says who it is
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token
        body = urlencode({"csrf": token.group(1), "kind": "recheck"}).encode()
        headers = {**named, "content-type": FORM}
        assert console.handle(ConsoleRequest("POST", "/cases/4/decide", {}, headers, body)).status == 303
        case = app.cases.get("4")
        assert case is not None and case.timeline[-1].evidence["operator"] == "ann.operator@dcc.example"
        with_code = console.handle(ConsoleRequest("GET", "/cases", {"code": "anything"}, named))
        assert with_code.status == 200  # a ?code= in a link means nothing in this mode


def test_every_page_is_sent_with_a_policy_that_allows_no_script(client: Client) -> None:
    response = client.get("/cases")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "<script" not in response.body.decode()


# --- cases --------------------------------------------------------------------------------------


def test_cases_needing_attention_come_first_then_the_longest_waiting(client: Client) -> None:
    html = client.page("/cases")
    order = rows_of(html)
    assert sorted(order) == [str(n) for n in range(1, 9)]
    assert order[0] == "4"  # needs attention
    assert order[1] == "6"  # awaiting the CPL
    waited = dict(
        re.findall(r'data-label="Case"><a [^>]*>([^<]+)</a>.*?data-label="Waiting">([^<]+)<', html, re.S)
    )
    assert waited["6"] == "4.1 days"  # awaiting the CPL since the intake, 2026-11-23 14:00
    assert waited["4"] == "3.3 days"  # needs attention since the second sync, 2026-11-24 09:05


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"state": "loaded"}, {"1", "2", "3"}),
        ({"state": "rejected"}, {"5", "7"}),
        ({"supplier": "Bramble Power"}, {"2", "6", "7"}),
        ({"state": "loaded", "supplier": "Amberline Energy"}, {"1"}),
        ({"state": "withdrawn"}, set()),
    ],
)
def test_cases_filter_by_state_and_supplier(
    client: Client, query: dict[str, str], expected: set[str]
) -> None:
    assert set(rows_of(client.page("/cases", query))) == expected


def test_an_unknown_state_is_named(client: Client) -> None:
    response = client.get("/cases", {"state": "lost"})
    assert response.status == 400
    assert "no state &#39;lost&#39;; states: received, rejected" in response.body.decode()


def test_the_case_needing_attention_shows_its_verdict_field_by_field(client: Client) -> None:
    html = client.page("/cases/4")
    difference = re.search(r'<tr class="differs">(.*?)</tr>', html, re.S)
    assert difference, "the differing field is highlighted"
    assert "firmware_version" in difference.group(1)
    assert "01030012" in difference.group(1) and "01030011" in difference.group(1)
    assert html.count('<tr class="differs">') == 1
    assert "S1-000320" in html  # the paired entry
    assert 'name="kind" value="accept"' in html and 'name="kind" value="reject"' in html
    assert "Amberline Energy" in html


def test_a_loaded_case_shows_its_timeline_and_the_messages_sent(client: Client) -> None:
    html = client.page("/cases/1")
    assert 'name="kind"' not in html  # nothing to decide
    assert "awaiting_cpl &rarr; loaded" in html and "loaded into the SMI" in html
    sent = html.split('id="sent-title"')[1]
    assert ">loaded</a>" in sent and ">case_loaded</a>" in sent and ">acknowledged</a>" in sent
    assert sent.count('<td data-label="What">e-mail</td>') == 2  # acknowledged, loaded


def test_an_unknown_case_is_a_404_naming_it(client: Client) -> None:
    response = client.get("/cases/999")
    assert response.status == 404 and "no case &#39;999&#39;" in response.body.decode()


# --- decisions ----------------------------------------------------------------------------------


def form_fields(page: str) -> dict[str, str]:
    """The hidden fields of a case page's decision form."""
    return dict(re.findall(r'<input type="hidden" name="(decision_id|seen)" value="([^"]*)"', page))


def test_an_acceptance_covers_only_the_differences_the_page_showed(client: Client, app: BridgeApp) -> None:
    shown = form_fields(client.page("/cases/4"))
    case = app.cases.get("4")
    assert case is not None and set(shown) == {"decision_id", "seen"}
    case.problems.append("hardware_version: notified '0003', CPL has '0009'")  # a new CPL, meanwhile
    app.cases.save(case)
    fields = {**shown, "kind": "accept", "reason": "only a formatting difference", "operator": "Ann"}
    refused = client.post("/cases/4/decide", fields)
    assert (
        refused.status == 409 and "the differences changed since the page was shown" in refused.body.decode()
    )
    again = app.cases.get("4")
    assert again is not None and again.state.value == "needs_attention"
    accepted = client.post("/cases/4/decide", {**fields, **form_fields(client.page("/cases/4"))})
    assert accepted.status == 303


@pytest.mark.parametrize("kind", ["recheck", "accept"])
def test_a_decision_form_posted_twice_is_recorded_and_acted_on_once(
    client: Client, app: BridgeApp, kind: str
) -> None:
    """After an accept the case has moved on: the second post is the same decision, not a refusal."""
    fields = {**form_fields(client.page("/cases/4")), "kind": kind, "operator": "Ann", "reason": "checked"}
    first = client.post("/cases/4/decide", fields)
    again = client.post("/cases/4/decide", fields)  # a double click, or a reload
    assert first.status == again.status == 303 and first.headers["Location"] == again.headers["Location"]
    case = app.cases.get("4")
    assert case is not None
    assert [e.evidence.get("decision_id") for e in case.timeline].count(fields["decision_id"]) == 1
    assert len(app.bridge.engine.runs.find(flow="case-decision")) == 1


def test_a_link_cannot_put_its_own_words_in_the_console(client: Client) -> None:
    page = client.page("/cases/4", {"notice": "accepted: the case is now loaded"})
    assert "the case is now loaded" not in page and 'role="status"' not in page


def loaded_mails(home: Path, response_id: str) -> list[Path]:
    return sorted((home / "outbox" / "mail").glob(f"mail_loaded_{response_id}_*.eml"))


def test_accepting_loads_the_case_once_and_tells_the_supplier_once(
    client: Client, app: BridgeApp, home: Path
) -> None:
    fields = {"kind": "accept", "reason": "only a formatting difference", "operator": "Ann Operator"}
    response = client.post("/cases/4/decide", fields)
    assert response.status == 303
    assert response.headers["Location"] == "/console/cases/4?notice=accept"
    assert "accepted: the case is now loaded" in client.page("/cases/4", {"notice": "accept"})
    case = app.cases.get("4")
    assert case is not None and case.state.value == "loaded"
    accepted = [e for e in case.timeline if e.evidence.get("decision") == "accept"]
    assert [(e.evidence["operator"], e.evidence["reason"]) for e in accepted] == [
        ("Ann Operator", "only a formatting difference")
    ]
    assert len(loaded_mails(home, "4")) == 1
    assert [r.response_id for r in app.inventory.all()].count("4") == 1
    again = client.post("/cases/4/decide", fields)  # a second click, after the case moved on
    assert again.status == 409 and "only a case that needs attention can be accepted" in again.body.decode()
    assert len(loaded_mails(home, "4")) == 1
    page = client.page(response.headers["Location"].removeprefix("/console").split("?")[0])
    assert "Ann Operator: only a formatting difference" in page


def test_rejecting_tells_the_supplier_the_reason_escaped(client: Client, app: BridgeApp, home: Path) -> None:
    reason = "Firmware <script>alert(1)</script> is not SECAS's"
    assert (
        client.post("/cases/4/decide", {"kind": "reject", "reason": reason, "operator": "Bob"}).status == 303
    )
    case = app.cases.get("4")
    assert case is not None and case.state.value == "rejected"
    (mail,) = (home / "outbox" / "mail").glob("mail_rejected-by-operator_4-*.eml")
    message = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    text, html = (message.get_body((kind,)) for kind in ("plain", "html"))
    assert text is not None and html is not None
    assert f"rejected by DCC: {reason}" in text.get_content()
    assert "<script>alert" not in html.get_content() and "&lt;script&gt;" in html.get_content()
    page = client.page("/cases/4")
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_decision_without_a_reason_or_a_name_is_refused_and_nothing_is_recorded(
    client: Client, app: BridgeApp
) -> None:
    before = app.cases.get("4")
    no_reason = client.post("/cases/4/decide", {"kind": "accept", "reason": " ", "operator": "Ann"})
    assert no_reason.status == 409 and "a reason is needed to accept a case" in no_reason.body.decode()
    no_name = client.post("/cases/4/decide", {"kind": "reject", "reason": "x", "operator": ""})
    assert no_name.status == 400 and "operator" in no_name.body.decode()
    no_kind = client.post("/cases/4/decide", {"reason": "x", "operator": "Ann"})
    assert no_kind.status == 400 and "kind" in no_kind.body.decode()
    assert app.cases.get("4") == before


@pytest.mark.parametrize(
    ("token", "headers", "says"),
    [
        (False, {}, "the form&#39;s token is missing or stale"),
        (True, {"sec-fetch-site": "cross-site"}, "posted from another site"),
    ],
)
def test_a_forged_post_is_refused(
    client: Client, app: BridgeApp, token: bool, headers: dict[str, str], says: str
) -> None:
    fields = {"kind": "reject", "reason": "x", "operator": "Eve"}
    response = client.post("/cases/4/decide", fields, token=token, **headers)
    assert response.status == 403 and says in response.body.decode()
    case = app.cases.get("4")
    assert case is not None and case.state.value == "needs_attention"


def test_a_recheck_is_recorded_and_changes_nothing_while_the_cpl_is_the_same(
    client: Client, app: BridgeApp
) -> None:
    assert client.post("/cases/4/decide", {"kind": "recheck", "operator": "Ann"}).status == 303
    case = app.cases.get("4")
    assert case is not None and case.state.value == "needs_attention"
    assert case.timeline[-1].cause == "an operator asked for a re-check"


# --- runs -----------------------------------------------------------------------------------------


def test_a_failed_run_is_shown_first_and_resubmitted_from_its_failed_action(
    client: Client, app: BridgeApp, plan: FaultPlan, home: Path
) -> None:
    plan.at("inventory.upsert", None, "transient")  # the SMI is down
    client.post("/cases/4/decide", {"kind": "accept", "reason": "formatting", "operator": "Ann"})
    runs = client.page("/runs")
    first = re.search(r'<a href="/console/runs/([^"]+)">', runs)
    assert first
    failed_id = first.group(1)
    run_page = client.page(f"/runs/{failed_id}")
    assert "Failed" in run_page and "Resubmit run" in run_page
    assert 'value="each_case[4].load"' in run_page
    assert not loaded_mails(home, "4")
    plan.clear()  # the SMI is back
    response = client.post(f"/runs/{failed_id}/resubmit", {"from_action": "each_case[4].load"})
    assert response.status == 303
    replay = client.page(response.headers["Location"].removeprefix("/console").split("?")[0])
    assert "Succeeded" in replay and failed_id in replay
    case = app.cases.get("4")
    assert case is not None and case.state.value == "loaded"
    assert len(loaded_mails(home, "4")) == 1
    again = client.post(f"/runs/{failed_id}/resubmit", {})
    assert again.status == 303  # the original failed run may be resubmitted again: nothing happens twice
    assert len(loaded_mails(home, "4")) == 1


def test_a_run_that_did_not_fail_is_not_resubmitted(client: Client, app: BridgeApp) -> None:
    (run, *_) = app.bridge.engine.runs.find(flow="notification-intake", limit=1)
    response = client.post(f"/runs/{run.run_id}/resubmit", {})
    assert response.status == 400 and "did not fail" in response.body.decode()


def test_run_pages_show_no_contact_details(client: Client, app: BridgeApp) -> None:
    contacts = set()
    for case in app.cases.list():
        if case.notification is not None:
            contacts |= {case.notification.responder, case.notification.contact_phone}
    contacts.discard("")
    assert len(contacts) >= 6
    for run in app.bridge.engine.runs.find(limit=200):
        page = client.page(f"/runs/{run.run_id}")
        assert not [contact for contact in contacts if contact in page], run.run_id


# --- flows and previews ---------------------------------------------------------------------------


def test_each_flow_is_drawn_with_its_recent_success_rate(client: Client, app: BridgeApp) -> None:
    html = client.page("/flows")
    for name, source in app.bridge.flows.items():
        assert f'id="flow-{name}"' in html
        for action in source.definition.actions:
            assert re.search(rf">(if: )?{re.escape(action)}</text>", html), (name, action)
    assert html.count("<svg") == len(app.bridge.flows)
    assert "Recent success rate: <strong>100%</strong>" in html


@pytest.mark.parametrize("template", ["acknowledged", "loaded", "rejected", "closed", "withdrawn"])
def test_every_email_template_previews_with_a_real_case(client: Client, template: str) -> None:
    html = client.page("/previews", {"template": template, "case": "1"})
    assert "Subject" in html and "errors" not in html
    frame = client.get("/previews/email.html", {"template": template, "case": "1"})
    assert frame.status == 200 and b"<html" in frame.body
    assert "sandbox" in frame.headers["Content-Security-Policy"]


def test_a_preview_of_a_case_that_does_not_exist_is_a_404_naming_it(client: Client) -> None:
    """It showed another case's message as if it were this one's, and its frame "'case' is undefined"."""
    page = client.get("/previews", {"template": "loaded", "case": "999"})
    assert page.status == 404 and "no case &#39;999&#39;" in page.body.decode(), page.body
    frame = client.get("/previews/email.html", {"template": "loaded", "case": "999"})
    assert frame.status == 404 and "no case &#39;999&#39;" in frame.body.decode(), frame.body
    assert "Subject" in client.page("/previews", {"template": "loaded"})  # no case chosen: the first


def test_every_card_template_previews(client: Client, app: BridgeApp) -> None:
    for template in app.templates.names("card"):
        html = client.page("/previews", {"template": template, "case": "4"})
        assert "Adaptive Card JSON" in html, template
        assert 'class="errors"' not in html, template


# --- exports ----------------------------------------------------------------------------------------


def test_all_cases_in_a_period_export_as_csv_and_json(client: Client) -> None:
    response = client.get("/cases/export.csv", {"from": "2026-11-23", "to": "2026-11-23"})
    assert (
        response.headers["Content-Disposition"] == 'attachment; filename="cases_2026-11-23_to_2026-11-23.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(response.body.decode("utf-8-sig"))))
    assert {row["response_id"] for row in rows} == {str(n) for n in range(1, 9)}
    assert not any("@" in value for row in rows for value in row.values())  # no contact details
    none = client.get("/cases/export.json", {"from": "2026-12-01"})
    assert json.loads(none.body) == []
    bad = client.get("/cases/export.csv", {"from": "yesterday"})
    assert bad.status == 400 and "not a date (YYYY-MM-DD)" in bad.body.decode()


def test_a_timeline_export_neutralises_formula_prefixes(client: Client) -> None:
    client.post("/cases/4/decide", {"kind": "reject", "reason": '=HYPERLINK("http://x")', "operator": "@Ann"})
    rows = list(csv.DictReader(io.StringIO(client.get("/cases/4/timeline.csv").body.decode("utf-8-sig"))))
    last = rows[-1]
    assert last["reason"] == '\'=HYPERLINK("http://x")' and last["operator"] == "'@Ann"
    as_json = json.loads(client.get("/cases/4/timeline.json").body)
    assert as_json[-1]["reason"] == '=HYPERLINK("http://x")'  # JSON keeps the text as it is


def test_an_oversized_form_is_refused_by_name_and_nothing_is_recorded(client: Client, app: BridgeApp) -> None:
    before = app.cases.get("4")
    response = client.post("/cases/4/decide", {"kind": "reject", "reason": "x" * 70_000, "operator": "Ann"})
    assert response.status == 400 and "the form is over 65,536 bytes" in response.body.decode()
    assert app.cases.get("4") == before


def test_a_wrong_method_or_path_is_named(client: Client) -> None:
    wrong_method = client.console.handle(
        ConsoleRequest("GET", "/cases/4/decide", {}, {"cookie": client.cookie})
    )
    assert wrong_method.status == 405 and "use POST" in wrong_method.body.decode()
    assert client.get("/nowhere").status == 404


def test_cards_link_to_the_case_page_the_console_serves(home: Path) -> None:
    settings = Settings(home=home, console_url="http://127.0.0.1:7071/console/")
    with bootstrap(settings, clock=lambda: NOW) as app:
        client = Client(ConsoleApp(app, key=KEY))
        client.post("/cases/4/decide", {"kind": "recheck", "operator": "Ann"})
        (card_file,) = (home / "outbox" / "teams").glob("teams_decided_*.json")
        card = json.loads(card_file.read_text())["attachments"][0]["content"]
        (link,) = [action["url"] for action in card["actions"] if action["title"] == "Open case"]
        assert link == "http://127.0.0.1:7071/console/cases/4"
        assert "Case 4" in client.page(link.removeprefix("http://127.0.0.1:7071/console"))

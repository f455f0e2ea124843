"""The console's pages that list cases read summaries or reports, not every whole case, and show what
every whole case showed.

``/previews`` lists the cases with a notification to preview a message with, and reads whole only the
one it shows; the export reads reports (the notification's rules not run again). Each page is compared,
byte for byte, with the same page made the old way (every whole case read: the references below), on a
realistic set of cases: the demo's eight (one whose form could not be read, one rejected with its
notification, one needing attention), plus one opened before all of them without a notification and
one whose id needs escaping, with a decision, on SQLite and on Azurite. How fast the pages are is
``bench/console_render.py``'s to say (no timings here).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flows.bootstrap import BridgeApp, bootstrap
from flows.console import ConsoleApp, ConsoleRequest
from flows.console.app import _download
from flows.console.views import message_preview
from flows.domain.case import Case, CaseState
from flows.settings import Settings
from tests.support.demo_home import DEMO_ENDS, demo_home
from tests.test_concurrency import wipe_storage

pytest_plugins = ["tests.azurite"]  # Azurite, installed and started once per session

KEY = "console-key-for-read-tests"
NOW = DEMO_ENDS + timedelta(hours=1)
ODD_ID = 'R<&>"é 9'  # escaped in the page, quoted in the frame's link


def extra_cases(demo: list[Case]) -> list[Case]:
    """A case opened before all the demo's without a notification (the first case is then not the one
    shown by default), and one with a notification whose id needs escaping, opened after them."""
    unread = Case.open("0-unread", at=demo[0].opened_at - timedelta(days=3), supplier="Cobalt Supply Co")
    unread.move_to(CaseState.REJECTED, at=unread.opened_at, cause="invalid notification",
                   problems=["device_type: is empty"])  # fmt: skip
    notified = demo[1].notification
    assert notified is not None
    odd = Case.open(ODD_ID, at=demo[-1].opened_at + timedelta(hours=1), supplier=notified.supplier,
                    notification=notified.model_copy(update={"response_id": ODD_ID}))  # fmt: skip
    odd.move_to(CaseState.NEEDS_ATTENTION, at=odd.opened_at + timedelta(minutes=5), cause="differs",
                problems=["firmware_version: notified '0102', CPL has '0103'"])  # fmt: skip
    decided = {"decision_id": "d" * 32, "decision": "recheck", "operator": "@Ann", "reason": "=1+1"}
    odd.record(at=odd.opened_at + timedelta(hours=2), cause="operator asked for a re-check", evidence=decided)
    return [unread, odd]


@pytest.fixture(params=["sqlite", "azurite"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BridgeApp]:
    home = demo_home(tmp_path / "home")
    with bootstrap(Settings(home=home), clock=lambda: NOW) as demo:
        cases, latest = demo.cases.list(), demo.publications.latest()
    assert latest is not None and len(cases) == 8
    if request.param == "sqlite":
        settings = Settings(home=home)
    else:
        azurite: str = request.getfixturevalue("azurite")
        wipe_storage(azurite)  # the session's Azurite is shared: start from empty tables
        settings = Settings(home=tmp_path / "azure", backend="azure", storage_connection=SecretStr(azurite),
                            work_queue=f"work-{uuid.uuid4().hex[:12]}", allow_stand_ins=True)  # fmt: skip
    with bootstrap(settings, clock=lambda: NOW) as built:
        if request.param == "azurite":
            assert type(built.cases).__name__ == "TableCaseStore"
            for case in cases:
                assert built.cases.add(case)
            built.publications.add(latest.publication, fetched_at=latest.fetched_at, source=latest.source)
        for case in extra_cases(cases):
            assert built.cases.add(case)
        yield built
    if request.param == "azurite":
        wipe_storage(request.getfixturevalue("azurite"))


@pytest.fixture
def console(app: BridgeApp) -> ConsoleApp:
    return ConsoleApp(app, key=KEY)


def signed_in(console: ConsoleApp, path: str, query: dict[str, str]) -> ConsoleRequest:
    opened = console.handle(ConsoleRequest("GET", "/cases", {"code": KEY}))
    return ConsoleRequest("GET", path, query, {"cookie": opened.headers["Set-Cookie"].split(";")[0]})


# --- the references: each page as it was made from every whole case ---------------------------------


def previews_from_whole_cases(console: ConsoleApp, request: ConsoleRequest) -> bytes:
    app = console.app
    templates = app.templates
    chosen = request.query.get("template", "")
    response_id = request.query.get("case", "")
    cases = [case for case in app.cases.list() if case.notification is not None]
    case = next((c for c in app.cases.list() if c.response_id == response_id), cases[0] if cases else None)
    if case is not None and case.notification is None:
        cases.append(case)
    preview = message_preview(app, chosen, case) if chosen else None
    return console._page(
        "previews.html.j2", console.auth.operator(request), title="Message previews",
        emails=templates.names("email"), cards=templates.names("card"), chosen=chosen, case=case, cases=cases,
        preview=preview,
    ).body  # fmt: skip


def export_from_whole_cases(console: ConsoleApp, request: ConsoleRequest) -> bytes:
    """The export's rows as ``export_columns`` made them from whole cases, filtered and downloaded
    as the route does."""
    start, end = request.query.get("from", ""), request.query.get("to", "")
    rows = [
        row
        for row in export_rows_of(console.app.cases.list())
        if (not start or row["opened_at"][:10] >= start) and (not end or row["opened_at"][:10] <= end)
    ]
    kind = request.path.rsplit(".", 1)[1]
    return _download(kind, rows, f"cases_{start or 'start'}_to_{end or 'now'}").body


def export_rows_of(cases: Sequence[Case]) -> list[dict[str, Any]]:
    rows = []
    for case in sorted(cases, key=lambda c: (c.opened_at, c.response_id)):
        n = case.notification
        decisions = [entry.evidence for entry in case.timeline if "decision_id" in entry.evidence]
        rows.append(
            {
                "response_id": case.response_id,
                "supplier": case.supplier,
                "secas_reference": n.secas_reference if n else "",
                "device_type": n.device_type.value if n else "",
                "state": case.state.value,
                "cpl_entry_id": case.cpl_entry_id or "",
                "opened_at": case.opened_at.isoformat(),
                "last_change_at": case.waited_since().isoformat(),
                "problems": "; ".join(case.problems),
                "decisions": "; ".join(
                    f"{d.get('decision')} by {d.get('operator')}: {d.get('reason')}" for d in decisions
                ),
            }
        )
    return rows


# --- the pages ------------------------------------------------------------------------------------


def preview_queries(app: BridgeApp) -> list[dict[str, str]]:
    every_template = [*app.templates.names("email"), *app.templates.names("card")]
    return [
        {},  # no template chosen: the form alone, the first case with a notification chosen
        *({"template": template, "case": "1"} for template in every_template),
        {"template": "needs_attention", "case": "4"},
        {"template": "rejected", "case": "7"},  # rejected, with its notification
        {"template": "rejected", "case": "5"},  # its form could not be read: not listed, shown all the same
        {"template": "loaded", "case": ODD_ID},
        {"template": "acknowledged"},
    ]


def test_the_previews_page_shows_what_every_whole_case_showed(console: ConsoleApp, app: BridgeApp) -> None:
    for query in preview_queries(app):
        request = signed_in(console, "/previews", query)
        response = console.handle(request)
        assert response.status == 200, response.body.decode()
        assert response.body == previews_from_whole_cases(console, request), query
    page = console.handle(
        signed_in(console, "/previews", {"template": "loaded", "case": ODD_ID})
    ).body.decode()
    assert "<option selected>R&lt;&amp;&gt;&#34;é 9</option>" in page
    missing = console.handle(signed_in(console, "/previews", {"template": "rejected", "case": "no-such"}))
    assert missing.status == 404 and "no case &#39;no-such&#39;" in missing.body.decode()  # not another's
    assert "case=R%3C%26%3E%22%C3%A9%209" in page  # the e-mail frame's link
    assert ">0-unread<" not in page and ">5<" not in page  # no notification: nothing to preview with


@pytest.mark.parametrize(
    "query", [{}, {"from": "2026-11-23"}, {"to": "2026-11-22"}, {"from": "2026-11-23", "to": "2026-11-23"}]
)
def test_the_export_holds_what_every_whole_case_held(
    console: ConsoleApp, app: BridgeApp, query: dict[str, str]
) -> None:
    for path in ("/cases/export.csv", "/cases/export.json"):
        request = signed_in(console, path, query)
        response = console.handle(request)
        assert response.status == 200, response.body.decode()
        assert response.body == export_from_whole_cases(console, request), (path, query)
    everything = json.loads(console.handle(signed_in(console, "/cases/export.json", {})).body)
    assert len(everything) == 10 and {"0-unread", ODD_ID} <= {row["response_id"] for row in everything}
    (odd,) = [row for row in everything if row["response_id"] == ODD_ID]
    assert odd["decisions"] == "recheck by @Ann: =1+1" and odd["device_type"] and odd["secas_reference"]

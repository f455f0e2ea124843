"""The operator console in a real browser: Debian's Chromium, driven by Playwright, against the console
that ``python -m flows serve`` serves on 127.0.0.1, over the sample scenario's embedded store.

An operator opens the cases page, opens the case that needs attention, accepts it with a reason and
sees its state and timeline change; resubmits a failed run; does the same by keyboard alone; and every
page is checked at 1280 and 390 pixels wide. Screenshots of each page go to ``.artifacts/screenshots``
(``CPL_BRIDGE_TEST_ARTIFACTS`` elsewhere). Chromium comes from Debian (``make test`` installs it): a
missing browser fails these tests rather than skipping them.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from flows.bootstrap import BridgeApp, bootstrap
from flows.console.serve import BridgeServer, make_server
from flows.settings import PROJECT_ROOT, Settings
from tests.support.demo_home import DEMO_ENDS, demo_home
from tests.support.faults import FaultPlan, install, no_sleep

KEY = "browser-test-console-key"
NOW = DEMO_ENDS.replace(hour=16)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without these, Chromium reaches for Google's hosts at start (update checks, sync, field trials).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-features=Translate",
]  # fmt: skip
WIDTHS = (1280, 390)
ARTIFACTS = Path(os.environ.get("CPL_BRIDGE_TEST_ARTIFACTS", PROJECT_ROOT / ".artifacts")) / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: `make test` installs Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def plan() -> FaultPlan:
    return FaultPlan()


@pytest.fixture
def app(tmp_path: Path, plan: FaultPlan) -> Iterator[BridgeApp]:
    home = demo_home(tmp_path / "home")
    settings = Settings(home=home, console_key=KEY)
    with bootstrap(settings, clock=lambda: NOW, sleep=no_sleep, adjust=install(plan)) as built:
        yield built


@pytest.fixture
def base_url(app: BridgeApp) -> Iterator[str]:
    server: BridgeServer = make_server(app, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base_url)
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    opened.goto(f"/console/?code={KEY}")
    yield opened
    context.close()


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_an_operator_accepts_the_case_that_needs_attention(page: Page, app: BridgeApp) -> None:
    expect(page).to_have_url(re.compile(r"/console/cases$"))  # signed in, the key gone from the address
    expect(page.get_by_role("heading", level=1)).to_have_text("Cases")
    first_row = page.locator("tbody tr").first
    expect(first_row).to_contain_text("needs_attention")
    shoot(page, "cases")
    first_row.get_by_role("link", name="4").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Case 4")
    differing = page.locator("tr.differs")
    expect(differing).to_have_count(1)
    expect(differing).to_contain_text("firmware_version")
    expect(differing).to_contain_text("01030012")
    shoot(page, "case-needing-attention")
    page.get_by_label("Accept the differences").check()
    page.get_by_role("textbox", name="Reason").fill("The CPL entry's firmware differs in formatting only")
    page.get_by_label("Your name").fill("Ann Operator")
    page.get_by_role("button", name="Record decision").click()
    expect(page.get_by_role("status")).to_have_text("accepted: the case is now loaded")
    expect(page.locator("main p").first).to_contain_text("loaded")
    timeline = page.locator("table[aria-labelledby=timeline-title]")
    expect(timeline).to_contain_text("Ann Operator: The CPL entry's firmware differs in formatting only")
    expect(timeline).to_contain_text("needs_attention → loaded")
    shoot(page, "case-accepted")
    case = app.cases.get("4")
    assert case is not None and case.state.value == "loaded"


def test_an_operator_resubmits_a_failed_run(page: Page, app: BridgeApp, plan: FaultPlan) -> None:
    plan.at("inventory.upsert", None, "transient")  # the SMI refuses every load
    page.goto("/console/cases/4")
    page.get_by_label("Accept the differences").check()
    page.get_by_role("textbox", name="Reason").fill("formatting only")
    page.get_by_label("Your name").fill("Ann Operator")
    page.get_by_role("button", name="Record decision").click()
    expect(page.get_by_role("status")).to_contain_text("needs_attention")  # the load failed
    page.get_by_role("link", name="Runs").click()
    failed = page.locator("tbody tr").first
    expect(failed).to_contain_text("Failed")
    expect(failed).to_contain_text("emergency-load")
    shoot(page, "runs")
    failed.get_by_role("link").click()
    expect(page.get_by_role("button", name="Resubmit run")).to_be_visible()
    shoot(page, "run-failed")
    plan.clear()  # the SMI is back
    page.get_by_label("Start from").select_option(label="the failed action each_case[4].load")
    page.get_by_role("button", name="Resubmit run").click()
    expect(page.get_by_role("status")).to_contain_text("Succeeded")
    expect(page.locator("dl.facts")).to_contain_text("Replays")
    shoot(page, "run-resubmitted")
    case = app.cases.get("4")
    assert case is not None and case.state.value == "loaded"


def test_everything_works_from_the_keyboard(page: Page, app: BridgeApp) -> None:
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    page.keyboard.press("Enter")
    expect(page.locator(":focus")).to_have_id("main")
    for _ in range(40):  # through the filters to the first case's link
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "4":
            break
    focused = page.locator(":focus")
    expect(focused).to_have_text("4")
    outline = focused.evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline != "none"  # focus is visible
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Case 4")
    page.get_by_label("Reject (the supplier is told the reason)").focus()
    page.keyboard.press("Space")
    page.keyboard.press("Tab")  # leaves the radio group for the reason
    expect(page.locator(":focus")).to_have_id("reason")
    page.keyboard.type("The firmware is not the one SECAS listed")
    page.keyboard.press("Tab")
    page.keyboard.type("Bob Operator")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Record decision")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("rejected: the case is now rejected")
    case = app.cases.get("4")
    assert case is not None and case.state.value == "rejected"


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_is_readable_at_desktop_and_phone_widths(page: Page, app: BridgeApp, width: int) -> None:
    run = app.bridge.engine.runs.find(flow="emergency-load", limit=1)[0]
    pages = {
        "cases": "/console/cases",
        "case": "/console/cases/4",
        "runs": "/console/runs",
        "run": f"/console/runs/{run.run_id}",
        "flows": "/console/flows",
        "email-preview": "/console/previews?template=loaded&case=1",
        "card-preview": "/console/previews?template=needs_attention&case=4",
    }
    page.set_viewport_size({"width": width, "height": 900})
    for name, path in pages.items():
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} at {width} px scrolls sideways by {overflow} px"
        smallest = page.evaluate(
            "Math.min(...[...document.querySelectorAll('main td, main p, main dd, main li')]"
            ".filter(e => e.offsetParent !== null && e.textContent.trim())"
            ".map(e => parseFloat(getComputedStyle(e).fontSize)))"
        )
        assert smallest >= 13, f"{name} at {width} px has text at {smallest} px"
        shoot(page, f"{name}-{width}")

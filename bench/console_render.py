"""How fast the console's pages over every case render with 10,000 cases, server-side, from the
embedded store.

    .venv/bin/python bench/console_render.py [--cases 10000] [--repeats 7]

Fills a fresh embedded home with ``--cases`` cases (realistic ones: each opened from a sample form
response and moved along a timeline, in every state), then times, best of ``--repeats``
(time.perf_counter):

- page: ``ConsoleApp.handle(GET /cases)``, everything a request does: the session check, the read of
  every case from SQLite, the sort, the template, the encoding;
- previews: ``GET /previews?template=loaded&case=...``, the message previews with every case to choose
  from (their summaries) and one case read whole and rendered into an e-mail;
- export: ``GET /cases/export.csv``, every case as a row (reports: the notification is not validated);
- baseline: ``json.dumps`` of the same cases' ``model_dump(mode="json")``, a plain serialisation of the
  same data in the same run (the machines are shared and noisy: the ratios are what compare runs).

Prints a human line, then last exactly one JSON line: ``{"bench": "console_render", "cases": N,
"page_s": ..., "target_s": 0.2, "baseline_s": ..., "ratio": ..., "previews_s": ..., "previews_ratio":
..., "export_s": ..., "export_ratio": ...}`` (each ratio: its time over the baseline's).
Exits 1 if the cases page or the previews take longer than the target (0.2 s, the issue's).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.forms import load_form_definition, notification_from_any
from flows.bootstrap import bootstrap
from flows.console import ConsoleApp, ConsoleRequest
from flows.domain.case import Case, CaseState
from flows.settings import SAMPLES, Settings

TARGET_S = 0.2
KEY = "bench-console-key"
START = datetime(2026, 11, 1, 9, tzinfo=UTC)
PATHS = [
    [CaseState.AWAITING_CPL],
    [CaseState.AWAITING_CPL, CaseState.NEEDS_ATTENTION],
    [CaseState.AWAITING_CPL, CaseState.LOADED],
    [CaseState.AWAITING_CPL, CaseState.LOADED, CaseState.CLOSED],
    [CaseState.REJECTED],
]


def fill(home: Path, count: int) -> None:
    """``count`` cases in ``home``'s store, as intake and the flows would leave them."""
    form = load_form_definition(SAMPLES / "forms" / "form-definition.json")
    responses = json.loads((SAMPLES / "forms" / "responses.json").read_text())
    notifications = []
    for response in responses:
        try:
            notifications.append(notification_from_any(response, form))
        except ValueError:
            continue
    with bootstrap(Settings(home=home)) as app:
        for number in range(count):
            notification = notifications[number % len(notifications)]
            at = START + timedelta(minutes=7 * number)
            response_id = f"R{number:06d}"
            notified = notification.model_copy(update={"response_id": response_id})
            case = Case.open(response_id, at=at, supplier=notification.supplier, notification=notified)
            for step, state in enumerate(PATHS[number % len(PATHS)], start=1):
                problems = (
                    ["firmware_version: notified '0102', CPL has '0103'"]
                    if state is CaseState.NEEDS_ATTENTION
                    else None
                )
                case.move_to(state, at=at + timedelta(hours=step), cause="bench", evidence={"run": "bench"},
                             problems=problems)  # fmt: skip
            app.cases.add(case)


def best_of(repeats: int, work: object) -> float:
    assert callable(work)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        fill(home, args.cases)
        now = START + timedelta(days=60)
        with bootstrap(Settings(home=home), clock=lambda: now) as app:
            console = ConsoleApp(app, key=KEY)
            signed_in = console.handle(ConsoleRequest("GET", "/cases", {"code": KEY}))
            cookie = {"cookie": signed_in.headers["Set-Cookie"].split(";")[0]}
            request = ConsoleRequest("GET", "/cases", {}, cookie)
            first = console.handle(request)
            assert first.status == 200 and first.body.count(b"<tr>") == args.cases + 1, "the page lost cases"
            shown = f"R{args.cases // 2:06d}"
            previews = ConsoleRequest("GET", "/previews", {"template": "loaded", "case": shown}, cookie)
            options = len(app.templates.names("email")) + len(app.templates.names("card")) + args.cases
            preview = console.handle(previews)
            assert preview.status == 200 and preview.body.count(b"<option") == options, "previews lost cases"
            assert f"<option selected>{shown}</option>".encode() in preview.body, "previews lost the case"
            export = ConsoleRequest("GET", "/cases/export.csv", {}, cookie)
            rows = console.handle(export)
            assert rows.status == 200 and rows.body.count(b"\r\n") == args.cases + 1, "the export lost cases"

            def page() -> None:
                console.handle(request)

            def previews_page() -> None:
                console.handle(previews)

            def export_rows() -> None:
                console.handle(export)

            def baseline() -> None:
                json.dumps([case.model_dump(mode="json") for case in app.cases.list()])

            page_s = best_of(args.repeats, page)
            previews_s = best_of(args.repeats, previews_page)
            export_s = best_of(args.repeats, export_rows)
            baseline_s = best_of(args.repeats, baseline)
    ratio = page_s / baseline_s
    print(
        f"console_render: {args.cases:,} cases; cases page {page_s * 1000:.0f} ms "
        f"(target {TARGET_S * 1000:.0f} ms), JSON dump of the same cases {baseline_s * 1000:.0f} ms "
        f"(ratio {ratio:.2f}); {len(first.body):,} bytes; previews {previews_s * 1000:.0f} ms "
        f"(ratio {previews_s / baseline_s:.2f}); export {export_s * 1000:.0f} ms "
        f"(ratio {export_s / baseline_s:.2f})"
    )
    summary = {
        "bench": "console_render",
        "cases": args.cases,
        "page_s": round(page_s, 4),
        "target_s": TARGET_S,
        "baseline_s": round(baseline_s, 4),
        "ratio": round(ratio, 3),
        "page_bytes": len(first.body),
        "previews_s": round(previews_s, 4),
        "previews_ratio": round(previews_s / baseline_s, 3),
        "export_s": round(export_s, 4),
        "export_ratio": round(export_s / baseline_s, 3),
    }
    print(json.dumps(summary), flush=True)
    return 0 if max(page_s, previews_s) <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())

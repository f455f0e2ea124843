"""Time to safety: from SECAS publishing an emergency entry to the supplier's confirmation e-mail.

A loopback HTTP server serves the CPL with an ETag and answers conditional requests with 304. The
bridge polls it every ``POLL_S`` seconds; at a random moment the server starts serving the next
publication. Repeated over several trials, each in a fresh home. Prints, last, one JSON line:
{"bench": "time_to_safety", "poll_s": 1.0, "median_s": ..., "worst_s": ..., "unchanged_poll_bytes": ...,
 "unchanged_poll_parsed": false, "target_worst_s": ...}. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.secas import read_cpl
from flows.bootstrap import bootstrap
from flows.domain.cpl import CplPublication
from flows.queue_message import Message, form_response_message
from flows.settings import SAMPLES, Settings

POLL_S = 1.0
TRIALS = 8
BUDGET_S = 2.0  # on top of one poll interval
OLD = (SAMPLES / "cpl" / "cpl-2026-11-20.xlsx").read_bytes()
NEW = (SAMPLES / "cpl" / "cpl-2026-11-24.xlsx").read_bytes()


class SecasSite:
    """What SECAS's web server does for the CPL file: serve it, with an ETag, 304 when unchanged."""

    def __init__(self) -> None:
        self.content = OLD
        self.published_at: float | None = None
        self.unchanged_bytes: list[int] = []
        self.full_downloads = 0
        self.lock = threading.Lock()

    def publish(self, content: bytes) -> None:
        with self.lock:
            self.content = content
            self.published_at = time.time()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with site.lock:
                    content = site.content
                etag = '"' + hashlib.sha256(content).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    head = f"HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nContent-Length: 0\r\n\r\n".encode()
                    site.unchanged_bytes.append(len(head))
                    self.wfile.write(head)
                    return
                site.full_downloads += 1
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header(
                    "Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                )
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the bench prints its own results."""

        return Handler


def trial(home: Path, url: str, site: SecasSite, rng: random.Random) -> tuple[float, bool]:
    """One publication at a random moment: seconds from publishing to the confirmation e-mail being
    written, and whether any poll that got a 304 parsed a workbook."""
    parses = 0

    def counting_reader(data: bytes, name: str) -> CplPublication:
        nonlocal parses
        parses += 1
        return read_cpl(data, name=name)

    site.publish(OLD)
    downloads_before = site.full_downloads
    with bootstrap(Settings(home=home), clock=lambda: datetime.now(UTC), cpl_reader=counting_reader) as app:
        for response in json.loads((SAMPLES / "forms" / "responses.json").read_text()):
            app.bridge.submit(form_response_message(response))
        app.bridge.drain()
        publisher = threading.Timer(rng.uniform(0.2, 3.0), site.publish, args=(NEW,))
        publisher.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            app.bridge.submit(Message(type="http", flow="secas-sync", body={"location": url}))
            app.bridge.drain()
            confirmations = list((home / "outbox" / "mail").glob("mail_loaded_2_*.eml"))
            if confirmations:
                break
            time.sleep(POLL_S)
        else:
            raise RuntimeError("no confirmation e-mail within 30 s")
        publisher.join()
    assert site.published_at is not None
    elapsed = confirmations[0].stat().st_mtime - site.published_at
    parsed_unchanged = parses > site.full_downloads - downloads_before
    return elapsed, parsed_unchanged


def main() -> int:
    site = SecasSite()
    server = ThreadingHTTPServer(("127.0.0.1", 0), site.handler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/cpl.xlsx"
    rng = random.Random(20261124)  # a reproducible schedule
    times, parsed = [], False
    try:
        with tempfile.TemporaryDirectory(prefix="bench-safety-") as folder:
            for index in range(TRIALS):
                elapsed, parsed_now = trial(Path(folder) / f"t{index}", url, site, rng)
                times.append(elapsed)
                parsed = parsed or parsed_now
    finally:
        server.shutdown()
        server.server_close()
    worst, median = max(times), statistics.median(times)
    target = POLL_S + BUDGET_S
    print(f"{TRIALS} publications, polling every {POLL_S} s: median {median:.2f} s, worst {worst:.2f} s")
    result = {
        "bench": "time_to_safety",
        "poll_s": POLL_S,
        "median_s": round(median, 3),
        "worst_s": round(worst, 3),
        "unchanged_poll_bytes": max(site.unchanged_bytes) if site.unchanged_bytes else None,
        "unchanged_poll_parsed": parsed,
        "target_worst_s": target,
    }
    print(json.dumps(result))
    return 0 if worst <= target and not parsed else 1


if __name__ == "__main__":
    raise SystemExit(main())

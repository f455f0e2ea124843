"""The SECAS CPL download against a real HTTP server on 127.0.0.1: conditional requests, so an
unchanged CPL costs one 304; errors translated into the bridge's tree; limits enforced."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from adapters.cpl_source import CplFileOrUrl
from flows.errors import BadInput, PermanentError, TransientError
from flows.settings import PROJECT_ROOT
from tests.support.loopback import Loopback


class Site:
    def __init__(self) -> None:
        self.content = b"PK\x03\x04 first publication"
        self.etag = '"v1"'
        self.last_modified = "Fri, 20 Nov 2026 09:00:00 GMT"
        self.script: list[tuple[int, dict[str, str]]] = []  # faults to answer with, in order
        self.requests: list[dict[str, str]] = []


@pytest.fixture
def site() -> Iterator[tuple[Site, str]]:
    state = Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(dict(self.headers))
            if state.script:
                status, headers = state.script.pop(0)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.headers.get("If-None-Match") == state.etag:
                self.send_response(304)
                self.send_header("ETag", state.etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", state.etag)
            self.send_header("Last-Modified", state.last_modified)
            self.send_header("Content-Length", str(len(state.content)))
            self.end_headers()
            self.wfile.write(state.content)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet in test output."""

    with Loopback(Handler) as server:
        yield state, f"http://127.0.0.1:{server.port}/cpl.xlsx"


def test_an_unchanged_cpl_costs_one_304(site: tuple[Site, str]) -> None:
    state, url = site
    source = CplFileOrUrl()
    assert source.fetch(url) == state.content
    assert source.fetch(url) is None
    assert state.requests[1]["If-None-Match"] == '"v1"'
    assert state.requests[1]["If-Modified-Since"] == state.last_modified
    state.content, state.etag = b"PK\x03\x04 second publication", '"v2"'
    assert source.fetch(url) == b"PK\x03\x04 second publication"


def test_throttling_and_server_errors_are_transient_with_retry_after(site: tuple[Site, str]) -> None:
    state, url = site
    state.script = [(429, {"Retry-After": "7"}), (503, {})]
    with pytest.raises(TransientError) as throttled:
        CplFileOrUrl().fetch(url)
    assert throttled.value.retry_after == 7
    with pytest.raises(TransientError, match="HTTP 503"):
        CplFileOrUrl().fetch(url)


def test_a_retry_after_given_as_a_date_and_a_408_are_read_as_the_other_adapters_read_them(
    site: tuple[Site, str],
) -> None:
    state, url = site
    # The server sends its own Date header; the wait is measured from it.
    state.script = [(503, {"Retry-After": formatdate(time.time() + 120, usegmt=True)}), (408, {})]
    with pytest.raises(TransientError) as throttled:
        CplFileOrUrl().fetch(url)
    assert throttled.value.retry_after is not None and 118 <= throttled.value.retry_after <= 121
    with pytest.raises(TransientError, match="HTTP 408"):
        CplFileOrUrl().fetch(url)


def test_a_missing_file_is_permanent(site: tuple[Site, str]) -> None:
    state, url = site
    state.script = [(404, {})]
    with pytest.raises(PermanentError, match="HTTP 404"):
        CplFileOrUrl().fetch(url)


def test_a_refused_connection_is_transient() -> None:
    with pytest.raises(TransientError, match="failed"):
        CplFileOrUrl().fetch("http://127.0.0.1:9/cpl.xlsx")  # the discard port: nothing listens


def test_an_oversized_download_or_file_is_refused(site: tuple[Site, str], tmp_path: Path) -> None:
    _, url = site
    with pytest.raises(BadInput, match="over the limit of 10 bytes"):
        CplFileOrUrl(max_bytes=10).fetch(url)
    big = tmp_path / "big.xlsx"
    big.write_bytes(b"x" * 11)
    with pytest.raises(BadInput, match="over the limit of 10"):
        CplFileOrUrl(max_bytes=10).fetch(str(big))


def test_a_missing_local_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"cannot read CPL file .*nope\.xlsx"):
        CplFileOrUrl().fetch(str(tmp_path / "nope.xlsx"))


def test_a_bridge_on_files_does_not_import_httpx() -> None:
    """httpx is a tenth of a second of every command's and worker's start; only a URL needs it."""
    code = "import sys, flows.bootstrap; print('httpx' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.fixture
def endless() -> Iterator[tuple[list[int], str]]:
    """A server that sends a body without a length and without end, counting the bytes it got out."""
    sent = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # no length: the body ends when the connection closes

        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            chunk = b"x" * 65536
            try:
                while sent[0] < 200 * 1024 * 1024:
                    self.wfile.write(chunk)
                    sent[0] += len(chunk)
            except OSError:  # the client stopped reading: what this test wants
                return

        def log_message(self, format: str, *args: object) -> None:
            """Quiet in test output."""

    with Loopback(Handler) as server:
        yield sent, f"http://127.0.0.1:{server.port}/cpl.xlsx"


def test_a_body_without_end_is_refused_once_past_the_limit_not_read_whole(
    endless: tuple[list[int], str],
) -> None:
    sent, url = endless
    with pytest.raises(BadInput, match="over the limit of 1048576 bytes"):
        CplFileOrUrl(max_bytes=1024 * 1024).fetch(url)
    # Read whole, the 200 MiB would all have gone out; stopped at the limit, the socket's buffers
    # hold at most a few MiB more.
    assert sent[0] < 32 * 1024 * 1024


def test_a_declared_length_over_the_limit_is_refused_before_the_body(site: tuple[Site, str]) -> None:
    state, url = site
    state.content = b"PK" + b"\0" * 2000
    told: list[tuple[int, int | None]] = []
    source = CplFileOrUrl(max_bytes=1000, on_download=lambda got, total: told.append((got, total)))
    with pytest.raises(BadInput, match="declares 2002 bytes, over the limit of 1000 bytes"):
        source.fetch(url)
    assert told == []


def test_a_download_tells_its_progress_up_to_the_declared_total(site: tuple[Site, str]) -> None:
    state, url = site
    state.content = bytes(range(256)) * 4096  # 1 MiB: several chunks
    told: list[tuple[int, int | None]] = []
    source = CplFileOrUrl(on_download=lambda got, total: told.append((got, total)))
    assert source.fetch(url) == state.content
    received = [got for got, _ in told]
    assert len(told) > 1 and received == sorted(received) and received[-1] == len(state.content)
    assert {total for _, total in told} == {len(state.content)}

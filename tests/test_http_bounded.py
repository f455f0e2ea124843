"""The SMI and Teams adapters read only the start of an answer they do not need whole: against a real
loopback server streaming an error of tens of megabytes, the error reads as it did when bodies were read
whole, the client holds a bounded part of it, and the server sees the connection closed before it has
sent it all. A success the SMI's JSON needs is still read whole."""

from __future__ import annotations

import gzip
import threading
import tracemalloc
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, cast

import httpx
import pytest
from pydantic import SecretStr

from adapters.http_retry import BODY_LIMIT, NO_RETRY, HttpRetry, body_cut, excerpt, read_bounded
from adapters.smi import HttpInventory
from adapters.teams_webhook import WorkflowsWebhookChannel
from flows.domain.cpl import DeviceModelCombination
from flows.errors import BadInput, BridgeError, PermanentError, TransientError
from tests.smi_server import SmiServer
from tests.support.loopback import Loopback
from tests.test_smi_http import a_record
from tests.test_teams_webhook import WORKFLOW_PATH, a_card, assert_secret_kept

TOTAL = 64 * 1024 * 1024
"""More than loopback's socket buffers hold (a few MB each way), so a client that stops reading early
leaves most of it unsent."""
CHUNK = 64 * 1024
LINE = b"upstream failed while the gateway was reading the answer; "
DMC = DeviceModelCombination("ESME", "1A2B", "0102", "0001", "0203")


@dataclass
class Streamed:
    """One answer the server sends, and what became of it: bytes written before the client went away."""

    status: int
    total: int = TOTAL
    sent: int = 0
    gzipped: bool = False  # the body, ``total`` bytes inflated, sent gzip-encoded (a few tens of KB)
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class HugeAnswers:
    """A server answering every request (any method) with the next ``Streamed`` answer, its body ``LINE``
    repeated to ``total`` bytes under a Content-Length, written a chunk at a time until the client closes."""

    answers: deque[Streamed] = field(default_factory=deque)

    def __enter__(self) -> HugeAnswers:
        self._loopback = Loopback(_Handler, huge=self).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._loopback.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._loopback.port}"


def body(size: int) -> bytes:
    return (LINE * (size // len(LINE) + 1))[:size]


_GZIPPED: dict[int, bytes] = {}


def gzipped(size: int) -> bytes:
    """``body(size)`` gzip-encoded: 64 MB of it is some 200 KB, two or three network chunks."""
    if size not in _GZIPPED:
        _GZIPPED[size] = gzip.compress(body(size), compresslevel=9)
    return _GZIPPED[size]


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = cast(Any, self.server).huge.answers.popleft()
        chunk = body(CHUNK + len(LINE))  # a chunk starting at any line boundary is a slice of this
        try:
            self.send_response_only(answer.status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            if answer.gzipped:
                encoded = gzipped(answer.total)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)
                answer.sent = len(encoded)
                return
            self.send_header("Content-Length", str(answer.total))
            self.end_headers()
            while answer.sent < answer.total:
                start = answer.sent % len(LINE)
                size = min(CHUNK, answer.total - answer.sent)
                self.wfile.write(chunk[start : start + size])
                answer.sent += size
        except OSError:  # the client closed the connection: what it did not read was never sent
            self.close_connection = True
        finally:
            answer.done.set()

    do_GET = do_PUT = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def huge() -> Iterator[HugeAnswers]:
    with HugeAnswers() as server:
        yield server


def as_when_read_whole(status: int) -> str:
    """The excerpt an answer read whole gave: its first window, and a body going on past it."""
    return excerpt(httpx.Response(status, content=body(4 * BODY_LIMIT)))


def call_keeping_the_peak(call: Any) -> tuple[BridgeError, int]:
    """The bridge error ``call`` raised, and the most memory Python held while it ran."""
    tracemalloc.start()
    try:
        with pytest.raises(BridgeError) as raised:
            call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return raised.value, peak


def assert_stopped_early(answer: Streamed) -> None:
    assert answer.done.wait(30), "the server is still writing: the client did not close the connection"
    assert BODY_LIMIT < answer.sent < answer.total // 2, answer.sent


SMI_PATH = "/device-models/ESME/1A2B/0102/0001/0203"


def an_smi_error(huge: HugeAnswers, answer: Streamed) -> tuple[BridgeError, int]:
    """The error the SMI adapter raised for ``answer`` to a read, and the most memory it held."""
    huge.answers.append(answer)
    with httpx.Client(timeout=30.0) as client:
        inventory = HttpInventory(huge.url, client, lambda: "token-1", retry=NO_RETRY)
        return call_keeping_the_peak(lambda: inventory.get(DMC))


@pytest.mark.parametrize(("status", "error"), [(500, TransientError), (400, BadInput), (403, PermanentError)])
def test_an_smi_error_with_a_huge_body_is_read_in_part(huge: HugeAnswers, status: int, error: type) -> None:
    answer = Streamed(status)
    raised, peak = an_smi_error(huge, answer)

    assert type(raised) is error
    assert str(raised) == f"SMI GET {SMI_PATH}: HTTP {status}{as_when_read_whole(status)}"
    assert str(raised).endswith("...")  # marked as cut
    assert peak < 2_000_000  # the whole body is 64 MB
    assert_stopped_early(answer)


def test_an_smi_success_is_still_read_whole() -> None:
    """A page of device models over the limit is read to its end, not cut at it."""
    with SmiServer() as smi, httpx.Client(timeout=5.0) as client:
        inventory = HttpInventory(smi.url, client, lambda: "token-1", page_size=500)
        records = [a_record(firmware=f"{n:04X}") for n in range(500)]
        for record in records:
            inventory.upsert(record, idempotency_key=f"load-{record.firmware_version}")
        listed = inventory.all()

    assert listed == sorted(records, key=lambda record: record.dmc)
    page = [seen for seen in smi.seen if seen.method == "GET"]
    assert len(page) == 1 and len(repr(page[0].answer)) > BODY_LIMIT


@pytest.mark.parametrize(("status", "error"), [(502, TransientError), (400, PermanentError)])
def test_a_teams_error_with_a_huge_body_is_read_in_part(huge: HugeAnswers, status: int, error: type) -> None:
    answer = Streamed(status)
    huge.answers.append(answer)
    url = f"{huge.url}{WORKFLOW_PATH}?sig=Zm9yLXRlc3RzLW9ubHktbm90LWEtcmVhbC1zaWc"
    with httpx.Client(timeout=30.0) as client:
        channel = WorkflowsWebhookChannel(SecretStr(url), client, retry=NO_RETRY)
        raised, peak = call_keeping_the_peak(lambda: channel.post(a_card()))

    assert type(raised) is error
    expected = f"Teams webhook at 127.0.0.1, card teams/loaded/R-0001: HTTP {status}"
    assert str(raised) == expected + as_when_read_whole(status)
    assert_secret_kept(str(raised))
    assert peak < 2_000_000
    assert_stopped_early(answer)


def test_after_a_huge_error_the_retry_gets_a_connection_of_its_own(huge: HugeAnswers) -> None:
    """The connection a cut answer was read from is closed, not handed back to the pool half read."""
    first, second = Streamed(503), Streamed(202, total=2)
    huge.answers.extend([first, second])
    sleeps: list[float] = []
    with httpx.Client(timeout=30.0) as client:
        channel = WorkflowsWebhookChannel(
            SecretStr(f"{huge.url}{WORKFLOW_PATH}"), client, retry=HttpRetry(attempts=2), sleep=sleeps.append
        )
        assert channel.post(a_card()) == "teams/loaded/R-0001"  # no run id header: named by its key

    assert sleeps == [0.5]
    assert_stopped_early(first)
    assert second.sent == second.total


def test_a_gzip_error_body_is_inflated_only_to_the_limit(huge: HugeAnswers) -> None:
    """httpx inflates a network chunk whole: 64 MB of text gzips to a few chunks of 64 KiB, each of
    which inflated to tens of MB before the body was cut."""
    gzipped(TOTAL)  # made before memory is counted
    raised, peak = an_smi_error(huge, Streamed(500, gzipped=True))

    assert type(raised) is TransientError
    assert str(raised) == f"SMI GET {SMI_PATH}: HTTP 500{as_when_read_whole(500)}"
    assert peak < 2_000_000


def an_answer(status: int, coding: str, encoded: bytes) -> httpx.Response:
    """An answer not read yet, its body ``encoded`` under ``coding``, streamed in chunks of 4 KiB."""
    chunks = [encoded[start : start + 4096] for start in range(0, len(encoded), 4096)]
    return httpx.Response(
        status,
        headers={"Content-Encoding": coding},
        stream=httpx.ByteStream(b"") if not chunks else _Chunks(chunks),
        request=httpx.Request("GET", "http://127.0.0.1/"),
    )


class _Chunks(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as RFC 9110 has it
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),  # raw, as some servers send
        ("identity", lambda data: data),
    ],
)
def test_an_encoded_error_body_reads_as_its_text(coding: str, encode: Any) -> None:
    text = body(3 * BODY_LIMIT)
    encoded = encode(text)
    kept = read_bounded(an_answer(500, coding, encoded), whole=lambda status: False)
    assert kept.content == text[:BODY_LIMIT] and body_cut(kept)
    short = read_bounded(an_answer(500, coding, encode(LINE)), whole=lambda status: False)
    assert short.content == LINE and not body_cut(short)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_an_error_body_that_does_not_inflate_is_read_as_empty(coding: str) -> None:
    """Its status still makes the error; httpx raised its own ``DecodingError`` out of the adapter."""
    kept = read_bounded(an_answer(502, coding, b"\xff\xff not compressed at all"), whole=lambda status: False)
    assert kept.status_code == 502 and kept.content == b""

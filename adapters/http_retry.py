"""Calling an HTTP service that may be briefly unavailable: one attempt's failures sorted into the bridge's
error tree, and a bounded tenacity retry of the transient ones that honours the far side's Retry-After.
An answer's body is read whole only when the adapter needs it (``read_whole``); any other is read to
``BODY_LIMIT`` bytes and the connection closed, so a far side answering an error with megabytes is not
held in memory.

Shared by the HTTP adapters (Teams Workflows webhook, SMI); each decides itself what a final, non-transient
response means for its own port.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import tenacity

from adapters.retry_after import is_transient, retry_after_seconds
from flows.errors import PermanentError, TransientError

T = TypeVar("T")
log = logging.getLogger(__name__)

EXCERPT_CHARS = 200
EXCERPT_BYTES = 8192
"""An excerpt comes from the body's first 8 KiB: an answer may be megabytes, a message shows 200."""
BODY_LIMIT = 65_536
"""Bytes of a body read unless the adapter needs it whole: more than an excerpt's window, and more than a
problem+json error takes, so an error reads as it did when bodies were read whole."""
BODY_CUT = "cpl_bridge.body_cut"
"""The ``extensions`` key marking a response whose body was cut at ``BODY_LIMIT`` (``body_cut``)."""
_WINDOW_GUARD = 1024
"""Characters dropped from the end of a window cut short: longer than any secret a scrubber replaces."""


@dataclass(frozen=True)
class HttpRetry:
    """How an adapter retries transient failures itself (the shape of Temporal's ``RetryPolicy``).

    ``attempts`` bounds the tries (1 = no retry); ``max_elapsed`` bounds the seconds spent, waits included:
    a wait that would go past it is not made, and the last ``TransientError`` (with the far side's
    ``retry_after``) goes up to the flow engine, which can wait longer. A Retry-After wins over the
    exponential delay. Keep this small: the engine retries transient errors too, so the two multiply.
    """

    attempts: int = 3
    initial_delay: float = 0.5
    backoff: float = 2.0
    max_delay: float = 10.0
    max_elapsed: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or min(self.initial_delay, self.backoff, self.max_delay, self.max_elapsed) < 0:
            raise ValueError(f"invalid retry policy {self}")

    def delay(self, attempt: int, error: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if isinstance(error, TransientError) and error.retry_after is not None:
            return max(0.0, error.retry_after)
        return min(self.initial_delay * self.backoff ** (attempt - 1), self.max_delay)


NO_RETRY = HttpRetry(attempts=1)


def call_with_retry(call: Callable[[], T], policy: HttpRetry, *, sleep: Callable[[float], Any]) -> T:
    """Call, retrying ``TransientError`` within the policy's bounds; the last error is raised as it is."""

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return policy.delay(state.attempt_number, error)

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= policy.attempts:
            return True
        # ``idle_for`` sums the waits asked for, so an injected ``sleep`` that returns at once still counts.
        spent = max(state.seconds_since_start or 0.0, state.idle_for)
        return spent + wait(state) > policy.max_elapsed

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("attempt %d failed (%s); retrying in %.1f s", state.attempt_number, error, wait(state))

    retrying = tenacity.Retrying(
        stop=stop,
        retry=tenacity.retry_if_exception_type(TransientError),
        wait=wait,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(call)


def attempt(
    send: Callable[[], httpx.Response],
    what: str,
    *,
    scrub: Callable[[str], str] = str,
    read_whole: Container[int] = (),
) -> httpx.Response:
    """Make one request; a transport failure or a 408/429/5xx raises ``TransientError``.

    ``send`` makes the request with ``stream=True`` (``client.send(request, stream=True)``) and returns
    before the body is read: the body of an answer whose status is in ``read_whole`` is then read in
    full, any other's up to ``BODY_LIMIT`` bytes (see ``read_bounded``). ``what`` names the call in
    messages (never put a secret in it); ``scrub`` cleans each message of what the far side or the
    transport might echo. Any answer that is not transient is returned for the adapter to judge, read
    and closed.
    """
    try:
        response = read_bounded(send(), whole=lambda status: status in read_whole)
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as error:
        raise PermanentError(scrub(f"{what}: {type(error).__name__}: {error}")) from error
    except httpx.TransportError as error:
        raise TransientError(scrub(f"{what}: {type(error).__name__}: {error}")) from error
    if is_transient(response.status_code):
        message = scrub(f"{what}: HTTP {response.status_code}{excerpt(response, scrub=scrub)}")
        raise TransientError(message, retry_after=retry_after(response))
    return response


def read_bounded(
    response: httpx.Response, *, whole: Callable[[int], bool], limit: int = BODY_LIMIT
) -> httpx.Response:
    """``response`` (a streamed one, body not read yet) with its body read, and closed.

    When ``whole(status)`` the body is read in full and ``response`` itself is returned. Otherwise reading
    stops once more than ``limit`` bytes (decoded) have come, the connection is closed (httpx does not
    reuse one whose answer was not read to its end), and a copy of the response is returned holding those
    bytes, cut to ``limit`` and marked (``body_cut``) when the body went on. A gzip or deflate body is
    inflated here, never past the limit: httpx inflates each network chunk whole, and a 64 KiB chunk
    of gzip may hold 64 MB.
    """
    try:
        if whole(response.status_code):
            response.read()
            return response
        kept = _decoded_start(response.iter_raw(), response.headers.get("Content-Encoding", ""), limit)
    finally:
        response.close()
    cut = len(kept) > limit
    # The bytes kept are decoded already, and their length is not the answer's.
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=bytes(kept[:limit]),
        request=response.request,
        extensions={**response.extensions, BODY_CUT: cut},
    )


def _decoded_start(raw: Iterable[bytes], coding: str, limit: int) -> bytearray:
    """At most ``limit`` + 1 bytes of the body ``raw`` brings, inflated when ``coding`` is gzip or deflate
    (the codings httpx asks for here); other codings are kept as they come, as httpx keeps them. A body
    that stops inflating keeps what did."""
    coding = coding.strip().lower()
    inflating = coding in ("gzip", "x-gzip", "deflate")
    inflater = None
    kept = bytearray()
    for chunk in raw:
        if not inflating:
            kept += chunk
        else:
            inflater = inflater or _inflater(coding, chunk)
            try:
                kept += inflater.decompress(chunk, limit + 1 - len(kept))
            except zlib.error:
                break
        if len(kept) > limit:
            break
    return kept


def _inflater(coding: str, first: bytes) -> zlib._Decompress:
    """A zlib inflater for a body starting with ``first``: gzip; deflate zlib-wrapped (RFC 9110), or raw
    deflate, which some servers send and httpx reads too (told apart by the zlib header's check)."""
    if coding != "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
    return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)


def body_cut(response: httpx.Response) -> bool:
    """Whether only the start of the response's body was read (``read_bounded``)."""
    return bool(response.extensions.get(BODY_CUT, False))


def retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (see ``adapters.retry_after``), a date measured from the
    response's own Date header when it has one; None if absent or bad."""
    return retry_after_seconds(response.headers.get("Retry-After"), date=response.headers.get("Date"))


def excerpt(
    response: httpx.Response, limit: int = EXCERPT_CHARS, *, scrub: Callable[[str], str] = str
) -> str:
    """``": <the body's start>"`` with white space collapsed, for error messages; empty for an empty body.

    Only the first ``EXCERPT_BYTES`` are decoded. ``scrub`` cleans them before they are cut: cut first, a
    secret straddling the cut would keep its start. When the body goes on past them (or was cut when
    read, ``body_cut``), their last 1,024 characters are dropped after cleaning: a secret the window
    cuts short is not matched whole.
    """
    window = response.content[:EXCERPT_BYTES]
    text = scrub(window.decode(response.encoding or "utf-8", errors="replace"))
    if len(response.content) > len(window) or body_cut(response):
        text = text[:-_WINDOW_GUARD]
    text = " ".join(text.split())
    if not text:
        return ""
    return ": " + (text if len(text) <= limit else text[:limit] + "...")

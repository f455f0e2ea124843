"""``http_retry.excerpt``: the start of a far side's answer for an error message, cleaned of secrets, from
a bounded window of the body (an answer may be megabytes; a message shows 200 characters of it)."""

from __future__ import annotations

import tracemalloc

import httpx

from adapters.http_retry import EXCERPT_BYTES, excerpt

SECRET = "Zm9yLXRlc3RzLW9ubHktbm90LWEtcmVhbC1zaWc"


def scrub(text: str) -> str:
    return text.replace(SECRET, "[redacted]")


def test_a_short_body_is_shown_whole_with_white_space_collapsed() -> None:
    answer = httpx.Response(500, content=b"  Internal\n\tServer   Error ")
    assert excerpt(answer) == ": Internal Server Error"
    assert excerpt(httpx.Response(500)) == ""


def test_a_long_body_is_cut_after_it_is_cleaned() -> None:
    body = "." * 190 + f" sig={SECRET} and more"
    shown = excerpt(httpx.Response(400, text=body), scrub=scrub)
    assert shown == ": " + body[:195] + "[redacted]"[:5] + "..."


def test_only_the_start_of_a_huge_body_is_decoded() -> None:
    answer = httpx.Response(502, content="\u00e9".encode() * 5_000_000)  # 10 MB
    tracemalloc.start()
    try:
        shown = excerpt(answer)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert shown == ": " + "\u00e9" * 200 + "..."
    assert peak < 200_000  # decoding the whole body takes megabytes


def test_what_lies_past_the_window_is_not_shown() -> None:
    body = " " * EXCERPT_BYTES + "far down the body"
    assert excerpt(httpx.Response(500, text=body)) == ""


def test_a_secret_cut_by_the_window_is_not_shown_in_part() -> None:
    """The window may end inside a secret, which a scrubber matching whole secrets would then miss."""
    for cut in (6, 20, len(SECRET) - 1):
        body = " " * (EXCERPT_BYTES - len("sig=") - cut) + f"sig={SECRET}&sv=1.0"
        shown = excerpt(httpx.Response(500, text=body), scrub=scrub)
        assert SECRET[:6] not in shown


def test_a_character_cut_by_the_window_is_not_shown_as_a_replacement() -> None:
    body = "a" * (EXCERPT_BYTES - 1) + "\u00e9" * 10
    assert "\ufffd" not in excerpt(httpx.Response(500, text=body), limit=100_000)

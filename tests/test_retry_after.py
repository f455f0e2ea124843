"""Retry-After as RFC 9110 has it: delay-seconds or an HTTP date in any of the three forms a recipient
must accept (IMF-fixdate, the obsolete RFC 850 and asctime), read alike by the HTTP adapters (measured
from the answer's own Date header) and by the Graph adapters."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from adapters.graph.errors import retry_after as graph_retry_after
from adapters.http_retry import retry_after

SENT = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)
DATES = {  # each form of SENT, and of two minutes later
    "IMF-fixdate": ("Sun, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:51:37 GMT"),
    "RFC 850": ("Sunday, 06-Nov-94 08:49:37 GMT", "Sunday, 06-Nov-94 08:51:37 GMT"),
    "asctime": ("Sun Nov  6 08:49:37 1994", "Sun Nov  6 08:51:37 1994"),
}


@pytest.mark.parametrize("later", DATES)
@pytest.mark.parametrize("sent", DATES)
def test_a_date_in_any_http_form_counts_from_a_date_header_in_any_form(sent: str, later: str) -> None:
    headers = {"Retry-After": DATES[later][1], "Date": DATES[sent][0]}
    assert retry_after(httpx.Response(503, headers=headers)) == 120.0
    assert graph_retry_after(headers) == 120.0


@pytest.mark.parametrize("later", DATES)
def test_without_a_date_header_a_date_counts_from_the_clock(later: str) -> None:
    assert graph_retry_after({"retry-after": DATES[later][1]}, now=SENT) == 120.0
    assert retry_after(httpx.Response(429, headers={"Retry-After": DATES[later][1]})) == 0.0  # long past


def test_a_date_header_that_is_no_date_leaves_the_clock_to_count_from() -> None:
    headers = {"Retry-After": DATES["asctime"][1], "Date": "yesterday"}
    assert graph_retry_after(headers, now=SENT) == 120.0


@pytest.mark.parametrize("value", ["soon", "", "Sun Nov 31 08:51:37 1994", "inf", "nan"])
def test_what_is_neither_seconds_nor_a_date_is_ignored(value: str) -> None:
    assert retry_after(httpx.Response(503, headers={"Retry-After": value})) is None
    assert graph_retry_after({"Retry-After": value}) is None

"""Retry-After, read one way by every adapter: delay-seconds or an HTTP date (RFC 9110, 10.2.3).

Standard library only, so that the Graph adapters can share it without importing httpx's retry helpers.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def http_date(value: str) -> datetime | None:
    """An HTTP date in any form RFC 9110 says a recipient must accept (IMF-fixdate, RFC 850, asctime);
    None if ``value`` is none of them. A date without a zone (asctime's) is UTC: every HTTP date is."""
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def retry_after_seconds(
    value: str | None, *, date: str | None = None, now: datetime | None = None
) -> float | None:
    """Seconds to wait, from a Retry-After header's ``value``; None if absent, not finite or not a date.

    A date is measured from ``date``, the answer's own Date header, when that is a date (so that the
    two clocks differing neither shortens nor lengthens the wait), else from ``now`` (the clock's time).
    """
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None  # "inf" and "nan" parse as floats
    until = http_date(value)
    if until is None:
        return None
    sent = http_date(date) if date else None
    start = sent or now or datetime.now(UTC)
    return max(0.0, (until - start).total_seconds())

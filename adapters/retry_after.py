"""What an HTTP answer says about trying again, read one way by every adapter: whether its status is
one that may change (``is_transient``), and its Retry-After, delay-seconds or an HTTP date (RFC 9110, 10.2.3).

Standard library only, so that the Graph adapters can share it without importing httpx's retry helpers.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def is_transient(status: int) -> bool:
    """Whether the same request may succeed later: 408, 429 and every 5xx. A 501 will not change, but a
    few retries of one cost little, and gateways in front of the far side answer 5xx codes of their own."""
    return status in (408, 429) or status >= 500


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

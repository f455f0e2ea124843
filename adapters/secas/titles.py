"""What the title rows above the header say about a publication: when it was published."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

UK = ZoneInfo("Europe/London")
"""SECAS writes publication times as UK wall-clock time (GMT in winter, BST in summer)."""

_PUBLISHED = re.compile(r"\bpublished\b(?:\s+on\b)?\s*:?\s*(?P<when>.*)$", re.IGNORECASE)
_FORMATS = ("%d %B %Y %H:%M", "%d %b %Y %H:%M", "%d/%m/%Y %H:%M", "%d %B %Y", "%d %b %Y", "%d/%m/%Y")


def published_at(rows: Sequence[Sequence[object]]) -> datetime | None:
    """When a publication says it was published, from a title row such as "Published 20 November
    2026 09:00" (or "Published:" followed by a date cell), as an aware time: written in UK time,
    it must compare with the instants the bridge records (UTC) without guessing."""
    found = _published_naive(rows)
    if found is None or found.tzinfo is not None:
        return found
    return found.replace(tzinfo=UK)


def _published_naive(rows: Sequence[Sequence[object]]) -> datetime | None:
    for cells in rows:
        for position, cell in enumerate(cells):
            match = _PUBLISHED.search(cell.strip()) if isinstance(cell, str) else None
            if match is None:
                continue
            when = " ".join(match["when"].replace(" at ", " ").split())
            if not when and position + 1 < len(cells):
                following = cells[position + 1]
                if isinstance(following, datetime):
                    return following
                if isinstance(following, date):
                    return datetime(following.year, following.month, following.day)
            found = _parse(when)
            if found is not None:
                return found
    return None


def _parse(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None

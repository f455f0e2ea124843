"""Tables exported for people to open in a spreadsheet: CSV with every cell safe from formula injection.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return
ahead of one) as a formula: ``=HYPERLINK(...)`` leaks data, ``+cmd|' /C calc'!A0`` runs a program
(DDE). Supplier-typed text reaches exports, so ``safe_cell`` prefixes such text with a single quote,
as OWASP's CSV injection guidance says; the spreadsheet shows the text as it was typed. Numbers are
not text: ``-5`` stays the number ``-5``, while the text ``"-2+3"`` is neutralised (and so is a
float that is not a number, ``-inf``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """``value`` as the text of one cell: numbers as numbers, text that a spreadsheet would run as a
    formula prefixed with ``'``; ``None`` as an empty cell, booleans as ``true`` / ``false``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) or (isinstance(value, float | Decimal) and math.isfinite(value)):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value.value) if isinstance(value, Enum) else str(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as CSV text (RFC 4180: quoted where needed, CRLF line ends) with a header of ``columns``.

    Each row gives one line, its cells in ``columns`` order (a missing key is an empty cell, other keys
    are left out); every cell, the header's too, passes through ``safe_cell``. The whole text is built
    before it is returned: a row that fails leaves nothing half-written.
    """
    if not columns:
        raise ValueError("to_csv needs at least one column")
    if len(set(columns)) != len(columns):
        repeated = sorted({c for c in columns if list(columns).count(c) > 1})
        raise ValueError(f"to_csv: column(s) named more than once: {', '.join(repeated)}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(column) for column in columns])
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise TypeError(f"to_csv: row {number} is a {type(row).__name__}, not a mapping of columns")
        writer.writerow([safe_cell(row.get(column)) for column in columns])
    return buffer.getvalue()

"""Reads a SECAS CPL publication (xlsx or CSV) into a ``CplPublication`` of its SMETS1 entries.

The SMETS1 sheet is found by its columns (a sheet whose name contains "SMETS1" is preferred), the
header row by its cells, each column by its header; every row must be valid or nothing is returned,
but for a Date Added that is not a date, read as none and reported (``CplPublication.unread``)
(``adapters.secas.entries`` reads the rows themselves).

Formulas are never evaluated: a formula cell reads as the value the file saved with it (Excel always
saves one), and one saved without a value reads as blank, so in a required column it is an error
naming the cell. An xlsx is checked for zip bombs, damage and XML entities before it is parsed
(``adapters.secas.archive``).
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import chain

from adapters.secas.columns import (
    MIN_HEADER_FIELDS,
    REQUIRED_FIELDS,
    SMETS1_MARKERS,
    HeaderMatcher,
    HeaderRow,
)
from adapters.secas.entries import build_entries
from adapters.secas.errors import CplFormatError
from adapters.secas.settings import ReaderSettings
from adapters.secas.sources import Rows, Sheet, open_sheets
from adapters.secas.titles import published_at
from flows.domain.cpl import CplPublication
from flows.domain.identifiers import loose_name


def read_cpl(data: bytes, *, name: str = "", settings: ReaderSettings | None = None) -> CplPublication:
    """The SMETS1 entries of one CPL publication, read from the raw bytes of an xlsx or CSV file.

    Raises ``CplFormatError`` (a ``BadInput``) naming what is wrong and where: a file that is too big
    or not a workbook, no SMETS1 list, no header row, a missing required column, an invalid value.
    """
    settings = settings or ReaderSettings()
    where = f"{name}: " if name else ""
    if len(data) > settings.max_bytes:
        limit = settings.max_bytes
        raise CplFormatError(f"{where}the file is {len(data):,} bytes, over the limit of {limit:,} bytes")
    with _cycle_collector_paused():
        return _read(data, name, where, settings)


def _read(data: bytes, name: str, where: str, settings: ReaderSettings) -> CplPublication:
    matcher = HeaderMatcher(settings.aliases)
    scan = settings.header_scan_rows

    def score(rows: Sequence[Sequence[object]]) -> int:
        header = matcher.find_header(rows)
        return 0 if header is None else len(header.columns)

    sheets = open_sheets(data, where=where, csv_name="CSV", score=score, settings=settings)
    sheet, header = _smets1_sheet(sheets, matcher, scan, where)
    published, columns = _title_and_columns(sheet.rows(), header)
    by_id, unread = build_entries(columns, header, sheet.name, where)
    return CplPublication.indexed(
        by_id,
        source_sha256=hashlib.sha256(data).hexdigest(),
        source_name=name,
        published_at=published,
        unread=tuple(unread),
    )


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector during a read, and restore it after.

    A read builds a few hundred thousand objects (cells, columns, entries and their dicts) and no
    reference cycles. As they pile up the collector walks all of them again and again and frees
    nothing: over a third of the time of a 100,000-row read. Reference counting frees them as usual;
    the collector meets the entries once, after the read (``_read`` has let go of everything else).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _title_and_columns(rows: Rows, header: HeaderRow) -> tuple[datetime | None, list[Sequence[object]]]:
    """When the title rows say it was published, and the rows under the header as columns (the rows
    themselves are let go on return: a big sheet is held once, by column)."""
    body = rows[header.index + 1 :]
    columns = _columns(body) or [() for _ in header.cells]
    return published_at(rows[: header.index]), columns


def _columns(body: Rows) -> list[Sequence[object]]:
    """The columns of rows of one width (as calamine and the CSV reader give them).

    All cells go into one flat list, read row after row, and each column is every ``width``-th cell
    of it: faster than ``zip(*body)``, which makes an iterator per row and hops between the rows."""
    width = len(body[0]) if body else 0
    if set(map(len, body)) != {width}:
        return list(zip(*body, strict=True))  # no rows, or rows of unequal width (raises, as ever)
    flat = list(chain.from_iterable(body))
    return [flat[start::width] for start in range(width)]


def _smets1_sheet(
    sheets: Sequence[Sheet], matcher: HeaderMatcher, scan: int, where: str
) -> tuple[Sheet, HeaderRow]:
    """The one sheet holding the SMETS1 list: sheets named like it are tried first, and one of them
    that qualifies wins without looking further."""
    named = [sheet for sheet in sheets if "smets1" in loose_name(sheet.name)]
    others = [sheet for sheet in sheets if sheet not in named]
    problems: list[CplFormatError] = []
    seen: list[str] = []
    for group in (named, others):
        qualified: list[tuple[Sheet, HeaderRow]] = []
        for sheet in group:
            header = matcher.find_header(sheet.head(scan))
            seen.append(repr(sheet.name) + (f" (headers: {', '.join(header.headers)})" if header else ""))
            candidate = (
                sheet.is_csv
                or group is named
                or (header is not None and all(marker in header.columns for marker in SMETS1_MARKERS))
            )
            if not candidate:
                continue
            problem = _problem(sheet.name, header, matcher, scan, where)
            if problem is None and header is not None:
                qualified.append((sheet, header))
            elif problem is not None:
                problems.append(problem)
        if len(qualified) == 1:
            return qualified[0]
        if qualified:
            names = ", ".join(repr(sheet.name) for sheet, _ in qualified)
            raise CplFormatError(f"{where}several sheets hold a SMETS1 list ({names}); expected one")
    if problems:
        raise problems[0]
    markers = " and ".join(repr(matcher.spellings(marker)[0]) for marker in SMETS1_MARKERS)
    raise CplFormatError(
        f"{where}no SMETS1 list found: no sheet has a header row with {markers} columns; "
        f"sheets seen: {'; '.join(seen) or 'none'}"
    )


def _problem(
    sheet: str, header: HeaderRow | None, matcher: HeaderMatcher, scan: int, where: str
) -> CplFormatError | None:
    """Why a sheet that should hold the SMETS1 list cannot be read as one, if it cannot."""
    if header is None:
        examples = ", ".join(repr(matcher.spellings(field)[0]) for field in ("entry_id", "firmware_version"))
        return CplFormatError(
            f"{where}sheet {sheet!r} has no header row: none of its first {scan} rows names at least "
            f"{MIN_HEADER_FIELDS} CPL columns (such as {examples})",
            sheet=sheet,
        )
    missing = header.missing(REQUIRED_FIELDS)
    if missing:
        wanted = "; ".join(
            f"{field} (a header such as {' / '.join(repr(s) for s in matcher.spellings(field)[:3])})"
            for field in missing
        )
        plural = "s" if len(missing) > 1 else ""
        return CplFormatError(
            f"{where}sheet {sheet!r}: required column{plural} not found: {wanted}; "
            f"headers found in row {header.index + 1}: {', '.join(map(repr, header.headers))}",
            sheet=sheet,
            row=header.index + 1,
        )
    if header.duplicates:
        clashes = "; ".join(
            f"{field}: {', '.join(map(repr, names))}" for field, names in header.duplicates.items()
        )
        return CplFormatError(
            f"{where}sheet {sheet!r}: several columns read as the same field ({clashes}); keep one of each",
            sheet=sheet,
            row=header.index + 1,
        )
    return None

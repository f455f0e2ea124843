"""The area a worksheet's cells really span, read from its XML before python-calamine sees it.

python-calamine allocates one slot per cell of the rectangle from the first cell to the last: a
1.5 KB workbook with a cell at ``A1`` and one at ``XFD1048576`` asks for 17 billion slots, and the
Rust allocator aborts the whole process (no exception to catch). A sheet's ``<dimension>`` is only a
claim, so the cells' own references are what count.

The part is inflated chunk by chunk (never held whole) and scanned with regular expressions: the
``r`` references of cells and rows give the rectangle. Cells or rows without ``r`` (optional in
OOXML, and written by no mainstream writer) follow the one before, so each widens or lengthens the
bound by one; the bound is then an over-estimate, never an under-estimate.
"""

from __future__ import annotations

import bisect
import re
import zlib
from collections import Counter
from dataclasses import dataclass

CHUNK = 1024 * 1024
_CARRY_LIMIT = 64 * 1024
"""The longest unfinished tag kept from one chunk for the next: a start tag is never longer."""

_CELL_REFERENCE = re.compile(rb"""<(?:\w+:)?c\s[^>]*?(?<=\s)r\s*=\s*["']([A-Za-z]+)([0-9]+)["']""")
"""Any letters and digits, however many: ``ACCC0423030`` is past Excel's last cell, but python-calamine
still reads it (and aborts on the rectangle it asks for), so the span must count it."""
_CELL_START = re.compile(rb"<(?:\w+:)?c[\s/>]")
_ROW_WITH_NUMBER = re.compile(rb"""<(?:\w+:)?row\s[^>]*?(?<=\s)r\s*=\s*["']([0-9]+)["']""")
_ROW_START = re.compile(rb"<(?:\w+:)?row[\s/>]")


@dataclass
class CellSpan:
    """The rows and columns a worksheet's cells cover, as calamine will lay them out (at most)."""

    first_row: int = 0
    last_row: int = 0
    first_column: int = 0
    last_column: int = 0
    unnumbered_cells_in_a_row: int = 0
    """The most cells without ``r`` in any one row (each may take the next column)."""
    unnumbered_rows: int = 0

    @property
    def rows(self) -> int:
        if self.unnumbered_rows:  # they may start at the top
            return self.last_row + self.unnumbered_rows
        return self.last_row - self.first_row + 1 if self.last_row else 0

    @property
    def columns(self) -> int:
        if self.unnumbered_cells_in_a_row:  # they may start at column A
            return self.last_column + self.unnumbered_cells_in_a_row
        return self.last_column - self.first_column + 1 if self.last_column else 0

    @property
    def cells(self) -> int:
        return self.rows * self.columns


_CELL_TAG_UNLESS_SMALL = re.compile(rb'<c(?! r="[A-Z][0-9]{1,5}")(?: r="([A-Z]+[0-9]+)")?')
"""A ``<c`` tag (or any tag starting so) unless its first attribute is a reference within ``Z99999``:
a larger reference is captured; an empty capture means some other spelling (exact path)."""
_ROW_TAG_UNLESS_SMALL = re.compile(rb'<row(?! r="[0-9]{1,5}")(?: r="([0-9]+)")?')
"""The same for ``<row`` tags and row numbers past 99,999."""
_PREFIXED_TAG = re.compile(rb":(?:c|row)[\s/>]")
_SMALL_TAGS = (b'<c r="', b'<row r="')
_QUICK_BOUND = b"Z99999"
"""How far a reference that the quick path does not capture may reach."""
_REFERENCE_PARTS = re.compile(rb"([A-Za-z]*)([0-9]+)")
BEYOND = 10**12
"""Where a reference too long to be any sheet's puts its cell: far enough to be refused."""


class _Scanner:
    """Feeds chunks of worksheet XML through the patterns, carrying an unfinished tag across chunks.

    The quick path (a chunk where every cell and row tag starts ``<c r="B7"`` or ``<row r="7"``, as
    Excel and every mainstream writer write them) passes over the references within ``Z99999`` in C,
    captures only larger ones, and assumes the others may reach ``Z99999``; a chunk with any other
    spelling takes the exact path, which reads every reference. The exact path takes a tag's first
    well-formed reference, so where that is the tag's first attribute the two read the same one."""

    def __init__(self, *, exact: bool) -> None:
        self.span = CellSpan()
        self._always_exact = exact
        self._carry = b""
        self._open_row_unnumbered = 0

    def feed(self, chunk: bytes) -> None:
        text = self._carry + chunk
        cut = text.rfind(b"<")
        if cut == -1 or text.find(b">", cut) != -1 or len(text) - cut > _CARRY_LIMIT:
            cut = len(text)
        text, self._carry = text[:cut], text[cut:]
        self._scan(text)

    def finish(self) -> CellSpan:
        """Scan what was carried (a file that ends inside a tag) and give the span."""
        text, self._carry = self._carry, b""
        self._scan(text)
        return self.span

    def _scan(self, text: bytes) -> None:
        quick = not self._always_exact and (b":" not in text or _PREFIXED_TAG.search(text) is None)
        if not (quick and self._quick(text)):
            self._exact(text)

    def _quick(self, text: bytes) -> bool:
        """Widen the span over a canonical chunk's references; False (and nothing done) otherwise."""
        cells = _CELL_TAG_UNLESS_SMALL.findall(text)
        rows = _ROW_TAG_UNLESS_SMALL.findall(text)
        if b"" in cells or b"" in rows:
            return False
        self._widen(set(cells))
        self._widen(set(rows))
        if any(tag in text for tag in _SMALL_TAGS):  # the other references are within A1:Z99999
            self._widen({b"A1", _QUICK_BOUND})
        return True

    def _exact(self, text: bytes) -> None:
        self._widen({letters + number for letters, number in set(_CELL_REFERENCE.findall(text))})
        self._widen(set(_ROW_WITH_NUMBER.findall(text)))
        cells = len(_CELL_START.findall(text))
        if cells > len(_CELL_REFERENCE.findall(text)):
            self._unnumbered(text)
        self.span.unnumbered_rows += len(_ROW_START.findall(text)) - len(_ROW_WITH_NUMBER.findall(text))

    def _widen(self, references: set[bytes]) -> None:
        """Stretch the span over references such as ``B7`` (a cell) or ``7`` (a row)."""
        span = self.span
        for reference in references:
            match = _REFERENCE_PARTS.fullmatch(reference)
            if match is None:
                continue
            letters, digits = match.groups()
            row = int(digits) if len(digits) <= 12 else BEYOND
            span.first_row = min(span.first_row or row, row)
            span.last_row = max(span.last_row, row)
            if letters:
                column = _column(letters.upper()) if len(letters) <= 8 else BEYOND
                span.first_column = min(span.first_column or column, column)
                span.last_column = max(span.last_column, column)

    def _unnumbered(self, text: bytes) -> None:
        """The most cells without ``r`` between one row's start and the next."""
        rows = [match.start() for match in _ROW_START.finditer(text)]
        numbered = {match.start() for match in _CELL_REFERENCE.finditer(text)}
        per_row = Counter(
            bisect.bisect(rows, match.start())
            for match in _CELL_START.finditer(text)
            if match.start() not in numbered
        )
        per_row[0] += self._open_row_unnumbered  # the row the last chunk ended in
        self._open_row_unnumbered = per_row[len(rows)]
        self.span.unnumbered_cells_in_a_row = max(self.span.unnumbered_cells_in_a_row, *per_row.values())


def scan_cell_span(
    stored: bytes | memoryview, *, deflated: bool, limit: int, exact: bool = False
) -> CellSpan:
    """The span of a worksheet part's cells, inflating it (when ``deflated``) at most ``limit`` bytes.

    By default a bound (see ``_Scanner``): exact where it matters, past column Z or row 99,999; with
    ``exact`` every reference is read (several times slower), to say what is wrong with a sheet.

    Raises ``zlib.error`` for a damaged stream and ``OverflowError`` past ``limit`` (the caller names
    the part); both are checked before this runs, so they mean the file changed its story."""
    scanner = _Scanner(exact=exact)
    if not deflated:
        for start in range(0, len(stored), CHUNK):
            scanner.feed(bytes(stored[start : start + CHUNK]))
    else:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        pending: bytes | memoryview = stored
        total = 0
        while pending and not inflater.eof:
            chunk = inflater.decompress(pending, CHUNK)
            pending = inflater.unconsumed_tail
            total += len(chunk)
            if total > limit:
                raise OverflowError(total)
            scanner.feed(chunk)
    return scanner.finish()


def _column(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number

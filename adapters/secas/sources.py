"""The raw bytes of a publication as sheets of cells: an xlsx through python-calamine, or CSV text
(one list) through the csv module. Which one is decided by content, never by the file's name."""

from __future__ import annotations

import csv
import io
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from itertools import islice

from python_calamine import CalamineError, CalamineSheet, CalamineWorkbook, SheetTypeEnum

from adapters.secas.archive import check_xlsx, is_encrypted_ole2
from adapters.secas.errors import CplFormatError
from adapters.secas.settings import ReaderSettings

Rows = Sequence[Sequence[object]]
HeaderScore = Callable[[Sequence[Sequence[object]]], int]
"""How well some rows' best row reads as a CPL header row (0: not at all)."""

ZIP_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_SIGNATURES = {
    b"%PDF": "a PDF document",
    b"\xd0\xcf\x11\xe0": "an Excel 97-2003 (.xls) or other OLE2 file; save it as .xlsx or CSV",
    b"\x1f\x8b": "a gzip archive",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
}
# Comments before the first tag are skipped possessively: "(<!--.*?-->\s*)*" backtracked through
# every way of splitting a run of comments, and 28 empty ones kept a worker for minutes.
_HTML = re.compile(
    r"\ufeff?\s*(?:<!--(?:(?!-->).)*+-->\s*)*+<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.I | re.S
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DELIMITERS = (",", ";", "\t", "|")


class Sheet(ABC):
    """One sheet: its name, its first rows (for finding the header) and all its rows.

    Rows start at A1 (leading blank rows and columns kept), so row ``i`` is Excel's row ``i + 1``.
    """

    is_csv = False

    def __init__(self, name: str) -> None:
        self.name = name

    def head(self, count: int) -> Rows:
        return self.rows()[:count]

    @abstractmethod
    def rows(self) -> Rows:
        """Every row, each as wide as the widest."""


class _XlsxSheet(Sheet):
    def __init__(self, workbook: CalamineWorkbook, name: str, where: str) -> None:
        super().__init__(name)
        self._workbook = workbook
        self._where = where
        self._sheet: CalamineSheet | None = None

    def _loaded(self) -> CalamineSheet:
        if self._sheet is None:
            try:
                self._sheet = self._workbook.get_sheet_by_name(self.name)
            except CalamineError as error:
                message = f"{self._where}sheet {self.name!r} cannot be read: {error}"
                raise CplFormatError(message, sheet=self.name) from error
        return self._sheet

    def head(self, count: int) -> Rows:
        return self._loaded().to_python(skip_empty_area=False, nrows=count)

    def rows(self) -> Rows:
        rows = self._loaded().to_python(skip_empty_area=False)
        self._sheet = None  # calamine's copy of the sheet is not needed again: let it go
        return rows


class _CsvSheet(Sheet):
    is_csv = True

    def __init__(self, name: str, cells: Rows) -> None:
        super().__init__(name)
        self._cells = cells

    def rows(self) -> Rows:
        return self._cells


def open_sheets(
    data: bytes, *, where: str, csv_name: str, score: HeaderScore, settings: ReaderSettings
) -> list[Sheet]:
    """The sheets of an xlsx, or the one sheet of a CSV file; ``CplFormatError`` for anything else."""
    if not data:
        raise CplFormatError(f"{where}the file is empty")
    if data.startswith(ZIP_MAGIC):
        check_xlsx(data, where=where, settings=settings)
        return _xlsx_sheets(data, where)
    if data.startswith(OLE2_MAGIC) and is_encrypted_ole2(data):
        raise CplFormatError(f"{where}a password-protected (encrypted) workbook; save it without a password")
    scan = settings.header_scan_rows
    text = _text(data, where)
    return [_CsvSheet(csv_name, _csv_rows(text, score, scan, where, settings.max_sheet_cells))]


def _xlsx_sheets(data: bytes, where: str) -> list[Sheet]:
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except CalamineError as error:
        message = f"{where}not a CPL workbook: a zip archive that is not a readable xlsx workbook ({error})"
        raise CplFormatError(message) from error
    return [
        _XlsxSheet(workbook, meta.name, where)
        for meta in workbook.sheets_metadata
        if meta.typ == SheetTypeEnum.WorkSheet
    ]


def _text(data: bytes, where: str) -> str:
    not_workbook = f"{where}not a CPL workbook: neither an xlsx workbook (zip) nor CSV text"
    for signature, what in _SIGNATURES.items():
        if data.startswith(signature):
            raise CplFormatError(f"{not_workbook}; it looks like {what}")
    text = _decoded(data, not_workbook)
    if _HTML.match(text):  # read as CSV it had "no header row", which sent people to the columns
        raise CplFormatError(
            f"{not_workbook}; it is an HTML page (a sign-in or error page served in the file's place?)"
        )
    control = _CONTROL.search(text)
    if control is not None:
        where_in = f"control character {control.group()!r} at offset {control.start()}"
        raise CplFormatError(f"{not_workbook}; it holds binary data ({where_in})")
    return text


def _decoded(data: bytes, not_workbook: str) -> str:
    """UTF-16 with a byte order mark (Excel's "Unicode Text"), else UTF-8, else Windows-1252."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise CplFormatError(
                f"{not_workbook}; it starts as UTF-16 text but {_bad(error, 'UTF-16')}"
            ) from error
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError as error:
            raise CplFormatError(
                f"{not_workbook}; it is neither UTF-8 nor Windows-1252 text: {_bad(error, 'Windows-1252')}; "
                "save it as CSV UTF-8"
            ) from error


def _bad(error: UnicodeDecodeError, encoding: str) -> str:
    return f"byte 0x{error.object[error.start]:02X} at offset {error.start:,} is not valid {encoding}"


def _csv_rows(text: str, score: HeaderScore, scan: int, where: str, max_cells: int) -> Rows:
    """All rows, split on whichever delimiter makes the best header row, padded to one width.

    Padded, the rows hold rows x width cells, however few the file's bytes: one line of commas and
    many blank lines made gigabytes of a few kilobytes. That count is held to the same limit as a
    worksheet's, as the rows are read.
    """
    rows: list[list[str]] = []
    width = 0
    try:
        delimiter = max(
            _DELIMITERS,
            key=lambda delimiter: score(list(islice(_reader(text, delimiter), scan))),
        )
        for row in _reader(text, delimiter):
            rows.append(row)
            width = max(width, len(row))
            if len(rows) * width > max_cells:
                raise CplFormatError(
                    f"{where}the CSV text spans more than {max_cells:,} cells (row {len(rows):,} of a "
                    f"table {width:,} columns wide); delete the unused rows and columns"
                )
    except csv.Error as error:
        raise CplFormatError(f"{where}the CSV text cannot be read: {error}") from error
    return [row if len(row) == width else [*row, *[""] * (width - len(row))] for row in rows]


def _reader(text: str, delimiter: str) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)

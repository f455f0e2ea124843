"""Hostile and broken CPL files: each is refused with a ``CplFormatError`` naming what is wrong, fast
and within a small memory bound, and a refused file leaves nothing behind."""

from __future__ import annotations

import io
import random
import signal
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from python_calamine import CalamineError, CalamineWorkbook

from adapters.embedded.idempotency import SqliteIdempotencyStore
from adapters.embedded.publications import SqlitePublicationStore
from adapters.embedded.sqlite import BridgeDatabase
from adapters.secas import CplFormatError, ReaderSettings, read_cpl
from adapters.secas.cell_span import CHUNK, scan_cell_span
from flows.domain.cpl import CplPublication
from flows.engine.registry import ActionContext
from flows.operations.secas import SecasOperations
from flows.settings import PROJECT_ROOT
from tests.support.cpl_workbooks import STANDARD_HEADERS, synthetic_rows
from tests.support.hostile_files import (
    ole2,
    repeated_deflate,
    rows_xml,
    sheet_xml,
    xlsx,
    xlsx_with_sheet_stream,
)

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "cpl" / "cpl-2026-11-20.xlsx"
MiB = 1024 * 1024
CELLS = b'<row r="1"><c r="A1"><v>1</v></c><c r="B1"><v>2</v></c></row>' * 16_384  # 1 MiB


@contextmanager
def bounded(seconds: float = 2.0, peak: int = 16 * MiB) -> Iterator[None]:
    """The block runs within ``seconds`` and its Python allocations peak under ``peak`` bytes."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert top < peak, f"peak {top:,} bytes"


def refused(data: bytes, says: str, settings: ReaderSettings | None = None) -> CplFormatError:
    with bounded(), pytest.raises(CplFormatError, match=says) as caught:
        read_cpl(data, name="cpl.xlsx", settings=settings)
    return caught.value


# 1. Not a zip


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"<!DOCTYPE html><html><head><title>Error</title></head><body>502</body></html>", "an HTML page"),
        (b"<html><body>Service unavailable</body></html>\n", "an HTML page"),
        (b"\x00\x01\x02PK" + bytes(100), "holds binary data"),
    ],
)
def test_an_html_error_page_or_binary_junk_is_not_a_cpl(data: bytes, says: str) -> None:
    refused(data, says)


def test_a_run_of_html_comments_before_a_csv_is_read_at_once() -> None:
    """The HTML check backtracked through every split of a run of comments: 28 empty ones kept a worker
    for minutes, and the action's time-out cannot stop a thread. In a subprocess, so that the old
    pattern fails the test by its time-out instead of hanging the suite."""
    script = (
        "from adapters.secas import read_cpl\n"
        "from adapters.secas.errors import CplFormatError\n"
        "try:\n"
        "    read_cpl(b'<!---->' * 200 + b'\\nEntry ID,Manufacturer\\n', name='cpl.csv')\n"
        "except CplFormatError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "an HTML page" not in done.stdout  # comments alone do not make a page


# 2. A truncated download


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.99])
def test_a_truncated_workbook(fraction: float) -> None:
    data = SAMPLE.read_bytes()
    refused(data[: int(len(data) * fraction)], r"incomplete or damaged \(a truncated download\?\)")


# 3. Zip bombs


def test_a_sheet_declared_to_inflate_to_2_gb_is_refused_from_the_directory() -> None:
    packed = repeated_deflate(b"", CELLS, 1, b"")
    error = refused(xlsx_with_sheet_stream(packed, 2 * 1024 * MiB), "over the limit of 209,715,200 bytes")
    assert "xl/worksheets/sheet1.xml" in str(error)


def test_a_sheet_that_inflates_a_thousand_times_is_refused() -> None:
    head, tail = sheet_xml("<!--x-->").encode().split(b"<!--x-->")
    packed = repeated_deflate(head, CELLS, 50, tail)  # 50 MiB of cells from ~150 KB
    declared = len(head) + len(CELLS) * 50 + len(tail)
    assert len(packed) < 200_000
    refused(xlsx_with_sheet_stream(packed, declared), r"would inflate \d[\d,]* times .* a zip bomb")


def test_a_huge_shared_strings_part_is_refused() -> None:
    strings = "<sst><si><t>" + "A" * (300 * MiB // 8) + "</t></si></sst>"
    data = xlsx(sheet_xml(rows_xml([["x"]])), extra={"xl/sharedStrings.xml": strings})
    refused(data, "sharedStrings.xml'.*a zip bomb")


def test_a_sheet_whose_declared_size_lies_is_refused_at_that_size() -> None:
    head, tail = sheet_xml("<!--x-->").encode().split(b"<!--x-->")
    packed = repeated_deflate(head, CELLS, 50, tail)
    declared = 100 * len(packed)  # a believable ratio; the stream inflates more than three times that
    # Its head inflates at a believable ratio too; the sheet's cells are read through (chunk by
    # chunk) before python-calamine sees them, and that stops at the declared size.
    refused(xlsx_with_sheet_stream(packed, declared), f"inflates beyond its declared size of {declared:,}")


def test_a_small_part_that_lies_about_its_size_is_refused() -> None:
    packed = repeated_deflate(b"", CELLS, 1, b"")
    refused(xlsx_with_sheet_stream(packed, 1000), "is damaged: 2,9[0-9]{2} bytes cannot hold 1,000 bytes")
    refused(xlsx_with_sheet_stream(packed, 10_000), "inflates beyond its declared size of 10,000 bytes")


def test_the_limits_are_settings() -> None:
    settings = ReaderSettings(max_uncompressed_bytes=10_000)
    refused(SAMPLE.read_bytes(), "over the limit of 10,000 bytes", settings)
    assert ReaderSettings().max_uncompressed_bytes == 200 * MiB
    assert ReaderSettings().max_ratio == 200


# 4. A huge declared dimension


def test_a_sheet_declaring_every_cell_of_excel_is_refused() -> None:
    sheet = sheet_xml(rows_xml([["x"]]), dimension="A1:XFD1048576")
    refused(xlsx(sheet), r"declares a sheet of 1,048,576 rows by 16,384 columns \(A1:XFD1048576\)")


def test_calamine_does_not_allocate_by_a_declared_dimension() -> None:
    sheet = sheet_xml(rows_xml([["x"]]), dimension="A1:XFD1048576")
    with bounded(peak=MiB):
        rows = CalamineWorkbook.from_filelike(io.BytesIO(xlsx(sheet))).get_sheet_by_name("SMETS1").to_python()
    assert rows == [["x"]]


# 4b. Cells far apart, whatever the dimension says


FAR_APART = '<row r="1"><c r="A1"><v>1</v></c></row><row r="1048576"><c r="XFD1048576"><v>2</v></c></row>'


def test_calamine_aborts_the_process_on_two_cells_far_apart() -> None:
    """Why the reader scans cell references itself: python-calamine allocates the whole rectangle
    between the cells and the Rust allocator aborts (no exception reaches Python). Run in a child
    process, as it takes the process with it."""
    data = xlsx(sheet_xml(FAR_APART))
    assert len(data) < 2_000
    code = (
        "import io, sys; from python_calamine import CalamineWorkbook; "
        "CalamineWorkbook.from_filelike(io.BytesIO(sys.stdin.buffer.read())).get_sheet_by_name('SMETS1')"
    )
    child = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=60)
    assert child.returncode == -signal.SIGABRT, child.stderr.decode(errors="replace")[-500:]


def test_two_cells_far_apart_are_refused_before_calamine_sees_them() -> None:
    error = refused(xlsx(sheet_xml(FAR_APART)), r"cells spread over 1,048,576 rows by 16,384 columns")
    assert "'xl/worksheets/sheet1.xml'" in str(error) and "10,000,000 cells" in str(error)


@pytest.mark.parametrize(
    "far_cell",
    [
        "<c\nr='XFD1048576'><v>2</v></c>",  # other white space and quotes
        '<c s="0" r = "XFD1048576"><v>2</v></c>',  # r not first, spaces round "="
        '<x:c xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main" r="XFD1048576"/>',
    ],
)
def test_a_far_cell_spelled_unusually_is_found(far_cell: str) -> None:
    sheet = sheet_xml(f'<row r="1"><c r="A1"><v>1</v></c></row><row r="1048576">{far_cell}</row>')
    refused(xlsx(sheet), r"cells spread over 1,048,576 rows by 16,384 columns")


@pytest.mark.parametrize(
    ("far_cell", "says"),
    [
        ('<c r="ACCC0423030"/>', "423,030 rows by 19,685 columns"),  # four letters: past Excel, read anyway
        ('<c r="xfd1048576"/>', "1,048,576 rows by 16,384 columns"),  # lower case
        ('<c r="A' + "9" * 40 + '"/>', "1,000,000,000,000 rows"),  # too long for any sheet
    ],
)
def test_a_reference_past_excel_s_last_cell_is_refused(far_cell: str, says: str) -> None:
    sheet = sheet_xml(f'<row r="1"><c r="A1"><v>1</v></c></row><row r="2">{far_cell}</row>')
    refused(xlsx(sheet), says)


def test_a_zip_needing_a_feature_no_workbook_uses_is_named() -> None:
    data = bytearray(xlsx(sheet_xml(rows_xml([["x"]]))))
    at = data.find(b"PK\x01\x02")
    while at != -1:  # every central directory entry: "version needed to extract" 8.4
        data[at + 6 : at + 8] = (84).to_bytes(2, "little")
        at = data.find(b"PK\x01\x02", at + 4)
    refused(bytes(data), "the zip archive needs zip file version 8.4")


def test_cells_without_references_count_as_the_columns_they_take() -> None:
    """A cell without ``r`` takes the next column: 2,000 of them in one row, 10,000 rows down."""
    wide = '<row r="1">' + "<c><v>1</v></c>" * 2_000 + '</row><row r="10000"><c r="A10000"/></row>'
    # 2,001: the bound counts the numbered column and every unnumbered cell after it.
    refused(xlsx(sheet_xml(wide)), r"cells spread over 10,000 rows by 2,001 columns")


def test_rows_without_references_count_as_the_rows_they_take() -> None:
    tall = '<row r="1"><c r="CV1"/></row>' + "".join(
        f"<row><c><v>{n * 7919 % 100_003}</v></c></row>" for n in range(120_000)
    )
    # Not under ``bounded``: tracemalloc slows the exact scan of 120,000 rows twentyfold.
    with pytest.raises(CplFormatError, match=r"cells spread over 120,001 rows by 101 columns"):
        read_cpl(xlsx(sheet_xml(tall)), name="cpl.xlsx")


def test_a_reference_cut_by_a_chunk_boundary_is_still_read() -> None:
    filler = '<row r="1"><c r="A1"><v>1</v></c></row>'
    head = sheet_xml("<!--x-->").split("<!--x-->")[0]
    pad = CHUNK - len(head) - len(filler) - len('<row r="1048576"><c r="XF')
    sheet = sheet_xml(
        filler
        + f"<!--{random.Random(5).randbytes((pad - 7) // 2).hex()}-->"
        + '<row r="1048576"><c r="XFD1048576"/></row>'
    )
    at = sheet.index('r="XFD1048576"')
    assert at < CHUNK < at + 14  # the reference straddles the first chunk's end
    refused(xlsx(sheet), r"cells spread over 1,048,576 rows by 16,384 columns")


@pytest.mark.parametrize("last", ["Z99999", "P100004", "AB7"])
def test_sheets_of_ordinary_size_pass_the_cell_check(last: str) -> None:
    span = scan_cell_span(
        sheet_xml(f'<row r="2"><c r="B2"/><c r="{last}"/></row>').encode(), deflated=False, limit=MiB
    )
    assert span.cells <= ReaderSettings().max_sheet_cells


def test_the_cell_span_is_a_setting() -> None:
    sheet = sheet_xml('<row r="1"><c r="A1"/></row><row r="100"><c r="J100"/></row>')
    refused(xlsx(sheet), r"cells spread over 100 rows by 10 columns", ReaderSettings(max_sheet_cells=999))


# 5. XML entities


XXE = '<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
LAUGHS = (
    '<!DOCTYPE sst [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
)


def test_an_external_entity_in_a_sheet_is_refused() -> None:
    sheet = sheet_xml('<row r="1"><c r="A1" t="inlineStr"><is><t>&xxe;</t></is></c></row>', prolog=XXE)
    refused(xlsx(sheet), "part 'xl/worksheets/sheet1.xml' of the workbook has a DOCTYPE declaration")


def test_a_billion_laughs_in_shared_strings_is_refused() -> None:
    strings = f'<?xml version="1.0"?>{LAUGHS}<sst><si><t>&c;</t></si></sst>'
    data = xlsx(sheet_xml(rows_xml([["x"]])), extra={"xl/sharedStrings.xml": strings})
    refused(data, "'xl/sharedStrings.xml' of the workbook has a DOCTYPE declaration")


def test_calamine_itself_neither_resolves_nor_expands_entities() -> None:
    sheet = sheet_xml('<row r="1"><c r="A1" t="inlineStr"><is><t>&xxe;</t></is></c></row>', prolog=XXE)
    with pytest.raises(CalamineError, match="unrecognized entity"):
        CalamineWorkbook.from_filelike(io.BytesIO(xlsx(sheet))).get_sheet_by_name("SMETS1").to_python()


# 6. A password-protected workbook


def test_a_password_protected_workbook() -> None:
    refused(ole2(["EncryptionInfo", "EncryptedPackage"]), r"password-protected \(encrypted\) workbook")


def test_an_old_xls_is_not_called_encrypted() -> None:
    error = refused(ole2(["Workbook"]), "Excel 97-2003")
    assert "password" not in str(error)


# 7. Duplicate entry ids: tests/test_cpl_reader.py::test_a_repeated_entry_id_is_an_error


# 8. Formulas: saved values are data, nothing is evaluated


def formula_workbook(entry_id: object, firmware: object) -> bytes:
    row: dict[str, object] = dict(synthetic_rows(1)[0])
    row["entry_id"], row["firmware_version"] = entry_id, firmware
    cells = [row[field] if isinstance(row[field], tuple) else str(row[field]) for field in STANDARD_HEADERS]
    return xlsx(sheet_xml(rows_xml([list(STANDARD_HEADERS.values()), cells])))  # type: ignore[list-item]


def test_formula_cells_read_as_their_saved_values() -> None:
    hyperlink = ('HYPERLINK("https://example.org","S1-000001")', "S1-000001")
    publication = read_cpl(formula_workbook(hyperlink, ("1+1", "2")))
    assert publication.entries[0].entry_id == "S1-000001"
    assert publication.entries[0].firmware_version == "2"


def test_a_formula_without_a_saved_value_in_an_identifier_column_names_the_cell() -> None:
    says = r"sheet 'SMETS1', row 2, column 'Firmware Version': blank, .*formula saved without its value"
    refused(formula_workbook("S1-000001", ("1+1", None)), says)


# 9. CSV in other encodings


def csv_text() -> str:
    rows = [list(STANDARD_HEADERS.values())]
    rows.append([str(value) for value in synthetic_rows(1)[0].values()])
    rows[1][2] = "Société Générale"
    return "\r\n".join("\t".join(row) for row in rows) + "\r\n"


def test_utf16_csv_with_a_byte_order_mark_is_read() -> None:
    publication = read_cpl(csv_text().encode("utf-16"), name="cpl.txt")
    assert publication.entries[0].manufacturer_name == "Société Générale"


def test_latin1_csv_is_read_as_windows_1252() -> None:
    publication = read_cpl(csv_text().encode("latin-1"))
    assert publication.entries[0].manufacturer_name == "Société Générale"


def test_a_stray_byte_undefined_in_windows_1252_is_named() -> None:
    data = csv_text().encode("latin-1").replace(b"Soci", b"So\x81ci")
    refused(
        data, r"neither UTF-8 nor Windows-1252 text: byte 0x81 at offset [\d,]+ is not valid Windows-1252"
    )


def test_broken_utf16_is_named() -> None:
    refused(b"\xff\xfe" + "CPL Entry ID".encode("utf-16-le") + b"\x00\xd8", "starts as UTF-16 text but")


# Nothing half-written


@pytest.mark.parametrize(
    "hostile",
    [
        SAMPLE.read_bytes()[:5000],
        xlsx(sheet_xml(rows_xml([["x"]]), prolog=XXE)),
        ole2(["EncryptionInfo", "EncryptedPackage"]),
        xlsx_with_sheet_stream(repeated_deflate(b"", CELLS, 1, b""), 2 * 1024 * MiB),
    ],
)
def test_a_refused_file_leaves_the_store_as_it_was(tmp_path: Path, hostile: bytes) -> None:
    def read(data: bytes, name: str) -> CplPublication:
        return read_cpl(data, name=name)

    answers = [SAMPLE.read_bytes(), hostile]
    with BridgeDatabase(tmp_path / "bridge.sqlite3") as database:
        publications = SqlitePublicationStore(database)
        sync = SecasOperations(_Source(answers), publications, read, SqliteIdempotencyStore(database))
        now = datetime(2026, 11, 24, 9, 5, tzinfo=UTC)
        assert sync.sync(ActionContext("secas-sync", "r1", "fetch", "sync/1", now), "cpl.xlsx")["changed"]
        kept = publications.latest()
        with pytest.raises(CplFormatError):
            sync.sync(ActionContext("secas-sync", "r2", "fetch", "sync/2", now), "cpl.xlsx")
        assert publications.latest() == kept


class _Source:
    def __init__(self, answers: list[bytes]) -> None:
        self._answers = answers

    def fetch(self, location: str) -> bytes | None:
        return self._answers.pop(0)


def test_deflate_of_repeated_chunks_inflates_as_built() -> None:
    packed = repeated_deflate(b"<a>", b"xy", 3, b"</a>")
    assert zlib.decompress(packed, -zlib.MAX_WBITS) == b"<a>xyxyxy</a>"


def test_a_csv_whose_padded_rows_would_pass_the_cell_limit_is_refused_as_it_is_read() -> None:
    """One line of 4,000 commas and 4,000 blank lines: 8 KB of file, 16 million cells once every row
    is padded to the widest (found by review: 24 KB took 1.1 GB)."""
    data = b"," * 4000 + b"\n" * 4000
    refused(
        data, r"the CSV text spans more than 10,000,000 cells \(row 2,500 of a table 4,001 columns wide\)"
    )

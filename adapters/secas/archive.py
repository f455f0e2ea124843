"""Checks on an xlsx (a zip) before python-calamine sees it, reading the zip's central directory and
the first few KiB of each XML part only (never a whole part unless its ratio is suspicious).

Refused, each with a ``CplFormatError`` naming the part: a truncated or damaged archive; declared
sizes over ``max_uncompressed_bytes``; a part over 1 MiB that inflates more than ``max_ratio`` times
(a zip bomb); declared sizes that lie (a part that inflates beyond its declared size); encrypted or
unusually compressed parts; a DOCTYPE or ENTITY declaration in any XML part (OOXML never has one);
a worksheet whose ``<dimension>`` or whose cells (``adapters.secas.cell_span``) span more than
``max_sheet_cells`` cells.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib

from adapters.secas.cell_span import scan_cell_span
from adapters.secas.errors import CplFormatError
from adapters.secas.settings import ReaderSettings

HEAD_BYTES = 64 * 1024
"""How much of each XML part is inflated: its prolog (where a DOCTYPE must be) and a sheet's dimension."""
RATIO_FLOOR = 1024 * 1024
"""Parts smaller than this may compress as well as they like (empty sheets, styles)."""
_CHUNK = 1024 * 1024
_LOCAL_HEADER = struct.Struct("<4s22xHH")
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_ROOT = re.compile(rb"<[A-Za-z_]")
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\s+ref="([A-Z]{1,3})(\d{1,7})(?::([A-Z]{1,3})(\d{1,7}))?"')
ENCRYPTED_OLE2_NAMES = ("EncryptedPackage".encode("utf-16-le"), "EncryptionInfo".encode("utf-16-le"))


def check_xlsx(data: bytes, *, where: str, settings: ReaderSettings) -> None:
    """Refuse an xlsx that is damaged or hostile, before any of it is parsed."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, struct.error) as error:
        raise CplFormatError(
            f"{where}not a readable xlsx workbook: the zip archive is incomplete or damaged "
            f"(a truncated download?): {error}"
        ) from error
    except NotImplementedError as error:  # a zip feature (version, compression) no workbook uses
        raise CplFormatError(f"{where}not a readable xlsx workbook: the zip archive needs {error}") from error
    total = sum(info.file_size for info in infos)
    if total > settings.max_uncompressed_bytes:
        biggest = max(infos, key=lambda info: info.file_size)
        raise CplFormatError(
            f"{where}the workbook would inflate to {total:,} bytes, over the limit of "
            f"{settings.max_uncompressed_bytes:,} bytes (largest part {biggest.filename!r}: "
            f"{biggest.file_size:,} bytes from {biggest.compress_size:,})"
        )
    for info in infos:
        _check_part(data, info, where, settings)


def _check_part(data: bytes, info: zipfile.ZipInfo, where: str, settings: ReaderSettings) -> None:
    part = f"{where}part {info.filename!r} of the workbook"
    if info.flag_bits & 0x1:
        raise CplFormatError(f"{part} is encrypted; save the workbook without a password")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise CplFormatError(f"{part} uses compression method {info.compress_type}, not one xlsx uses")
    declared, packed = info.file_size, info.compress_size
    if declared > RATIO_FLOOR and declared > settings.max_ratio * packed:
        raise CplFormatError(
            f"{part} would inflate {declared // max(packed, 1):,} times ({packed:,} bytes to {declared:,}),"
            f" over the limit of {settings.max_ratio} times: a zip bomb?"
        )
    stored = info.compress_type == zipfile.ZIP_STORED
    if packed > declared + declared // 100 + 64 or (stored and packed != declared):
        raise CplFormatError(f"{part} is damaged: {packed:,} bytes cannot hold {declared:,} bytes")
    body = _body(data, info, part)
    if info.filename.endswith((".xml", ".rels", ".vml")):
        _check_xml(_head(body, info, part, settings), info, part, settings)
    if info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml"):
        _check_cells(body, info, part, settings)


def _check_cells(body: memoryview, info: zipfile.ZipInfo, part: str, settings: ReaderSettings) -> None:
    """Refuse a sheet whose cells lie far apart: python-calamine would allocate the whole rectangle
    between them and abort the process (a Rust allocation failure is not an exception)."""
    deflated = info.compress_type == zipfile.ZIP_DEFLATED
    try:
        span = scan_cell_span(body, deflated=deflated, limit=info.file_size)
        if span.cells > settings.max_sheet_cells:  # the quick bound may overstate: look closely
            span = scan_cell_span(body, deflated=deflated, limit=info.file_size, exact=True)
    except zlib.error as error:
        raise CplFormatError(f"{part} cannot be inflated: the file is damaged ({error})") from error
    except OverflowError:
        _lies(info, part)
    if span.cells > settings.max_sheet_cells:
        raise CplFormatError(
            f"{part} has cells spread over {span.rows:,} rows by {span.columns:,} columns, over the limit "
            f"of {settings.max_sheet_cells:,} cells (a cell far from the others?); delete the stray cells"
        )


def _body(data: bytes, info: zipfile.ZipInfo, part: str) -> memoryview:
    """The part's bytes as stored (compressed), after its local header; an error if they are cut off."""
    start = info.header_offset
    header = data[start : start + _LOCAL_HEADER.size]
    if len(header) < _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise CplFormatError(f"{part} is missing from the archive: the file is incomplete or damaged")
    name_length, extra_length = _LOCAL_HEADER.unpack(header)[1:]
    begin = start + _LOCAL_HEADER.size + name_length + extra_length
    if begin + info.compress_size > len(data):
        raise CplFormatError(f"{part} is cut off: the file is incomplete (a truncated download?)")
    return memoryview(data)[begin : begin + info.compress_size]


def _head(body: memoryview, info: zipfile.ZipInfo, part: str, settings: ReaderSettings) -> bytes:
    """The part's first ``HEAD_BYTES`` inflated; the whole part is inflated (with a cap) only when
    its head inflates suspiciously well, to hold it to its declared size."""
    if info.compress_type == zipfile.ZIP_STORED:
        return bytes(body[:HEAD_BYTES])
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        head = inflater.decompress(body, HEAD_BYTES)
        consumed = len(body) - len(inflater.unconsumed_tail)
        if len(head) == HEAD_BYTES and len(head) > settings.max_ratio * consumed:
            _inflate_capped(inflater, info, part)
    except zlib.error as error:
        raise CplFormatError(f"{part} cannot be inflated: the file is damaged ({error})") from error
    if len(head) > info.file_size:
        _lies(info, part)
    return head


def _inflate_capped(inflater: zlib._Decompress, info: zipfile.ZipInfo, part: str) -> None:
    """Inflate the rest of a part chunk by chunk, never holding more than one chunk, and refuse it
    as soon as it passes its declared size."""
    total = HEAD_BYTES
    while inflater.unconsumed_tail and not inflater.eof:
        total += len(inflater.decompress(inflater.unconsumed_tail, _CHUNK))
        if total > info.file_size:
            _lies(info, part)


def _lies(info: zipfile.ZipInfo, part: str) -> None:
    raise CplFormatError(
        f"{part} inflates beyond its declared size of {info.file_size:,} bytes: a zip bomb or a damaged file"
    )


def _check_xml(head: bytes, info: zipfile.ZipInfo, part: str, settings: ReaderSettings) -> None:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        head = head.decode("utf-16", errors="replace").encode("utf-8")
    declaration = _DECLARATION.search(head)
    if declaration is not None:
        kind = declaration.group(1).decode().upper()
        raise CplFormatError(
            f"{part} has a {kind} declaration (entities that could read files or expand without end);"
            " an xlsx never needs one"
        )
    if _ROOT.search(head) is None and info.file_size > len(head):
        raise CplFormatError(f"{part} has no XML element in its first {HEAD_BYTES:,} bytes")
    dimension = _DIMENSION.search(head) if info.filename.startswith("xl/worksheets/") else None
    if dimension is not None:
        first_col, first_row, last_col, last_row = dimension.groups()
        rows = int(last_row or first_row) - int(first_row) + 1
        columns = _column(last_col or first_col) - _column(first_col) + 1
        if rows * columns > settings.max_sheet_cells:
            ref = dimension.group(0).decode().split('"')[1]
            raise CplFormatError(
                f"{part} declares a sheet of {rows:,} rows by {columns:,} columns ({ref}), over the limit "
                f"of {settings.max_sheet_cells:,} cells; delete the unused rows and columns"
            )


def _column(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def is_encrypted_ole2(data: bytes) -> bool:
    """Whether an OLE2 compound file is an encrypted (password-protected) Office document: its
    directory names an ``EncryptedPackage`` or ``EncryptionInfo`` stream (a plain .xls has neither)."""
    return any(name in data for name in ENCRYPTED_OLE2_NAMES)

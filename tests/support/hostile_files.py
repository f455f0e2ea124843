"""Hostile and broken CPL files, built for real: minimal xlsx packages with hand-written XML parts,
hand-written zips whose declared sizes say what a test wants, deflate streams of repeated data that
inflate far beyond their size, and an encrypted-workbook (OLE2) container."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Sequence

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override '
    'PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
    'spreadsheetml.sheet.main+xml"/></Types>'
)
PACKAGE_PARTS = {
    "[Content_Types].xml": CONTENT_TYPES,
    "_rels/.rels": f'<?xml version="1.0"?><Relationships xmlns="{_RELS}"><Relationship Id="rId1" '
    f'Type="{_DOC}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
    "xl/workbook.xml": f'<?xml version="1.0"?><workbook xmlns="{_MAIN}" xmlns:r="{_DOC}"><sheets>'
    '<sheet name="SMETS1" sheetId="1" r:id="rId1"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels": f'<?xml version="1.0"?><Relationships xmlns="{_RELS}"><Relationship '
    f'Id="rId1" Type="{_DOC}/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" '
    f'Type="{_DOC}/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
}
SHEET = "xl/worksheets/sheet1.xml"
Formula = tuple[str, str | None]
"""A formula cell: the formula (without "=") and the value saved with it, if any."""


def sheet_xml(body: str, *, dimension: str | None = None, prolog: str = "") -> str:
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    return f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<worksheet xmlns="{_MAIN}">{dim}<sheetData>{body}</sheetData></worksheet>'  # noqa: E501


def rows_xml(rows: Sequence[Sequence[str | Formula | None]]) -> str:
    """Rows of inline strings, and formula cells (with or without a saved value)."""
    out = []
    for r, cells in enumerate(rows, start=1):
        xml = []
        for c, cell in enumerate(cells):
            ref = f"{chr(65 + c)}{r}"
            if isinstance(cell, tuple):
                formula, cached = cell
                value = "" if cached is None else f"<v>{cached}</v>"
                xml.append(f'<c r="{ref}" t="str"><f>{formula}</f>{value}</c>')
            elif cell is not None:
                xml.append(f'<c r="{ref}" t="inlineStr"><is><t>{cell}</t></is></c>')
        out.append(f'<row r="{r}">{"".join(xml)}</row>')
    return "".join(out)


def xlsx(sheet: str, *, extra: dict[str, str] | None = None) -> bytes:
    """A one-sheet ("SMETS1") xlsx package with the given worksheet XML."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in {**PACKAGE_PARTS, SHEET: sheet, **(extra or {})}.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def repeated_deflate(head: bytes, chunk: bytes, times: int, tail: bytes) -> bytes:
    """A raw deflate stream of ``head + chunk * times + tail`` without compressing it all: each piece
    is compressed on its own and flushed to a byte boundary, so the chunk's blocks can be repeated."""

    def piece(data: bytes, final: bool) -> bytes:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        return compressor.compress(data) + compressor.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)

    return piece(head, False) + piece(chunk, False) * times + piece(tail, True)


def raw_zip(members: Sequence[tuple[str, bytes, int, int]]) -> bytes:
    """A zip of (name, deflated bytes, declared size, crc) members, exactly as declared."""
    out = io.BytesIO()
    central = []
    for name, packed, size, crc in members:
        encoded = name.encode()
        offset = out.tell()
        fields = (20, 0, 8, 0, 0x21, crc, len(packed), size, len(encoded))
        out.write(struct.pack("<4s5HIIIHH", b"PK\x03\x04", *fields, 0) + encoded + packed)
        central.append(
            struct.pack("<4s6HIIIHHHHHII", b"PK\x01\x02", 20, *fields, 0, 0, 0, 0, 0, offset) + encoded
        )
    directory = b"".join(central)
    end = struct.pack(
        "<4s4HIIH", b"PK\x05\x06", 0, 0, len(central), len(central), len(directory), out.tell(), 0
    )
    return out.getvalue() + directory + end


def xlsx_with_sheet_stream(packed_sheet: bytes, declared_size: int, crc: int = 0) -> bytes:
    """An xlsx whose worksheet is the given deflate stream, declared as ``declared_size`` bytes."""

    def deflated(text: str) -> tuple[bytes, int, int]:
        data = text.encode()
        compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        return compressor.compress(data) + compressor.flush(), len(data), zlib.crc32(data)

    members = [(name, *deflated(text)) for name, text in PACKAGE_PARTS.items()]
    return raw_zip([*members, (SHEET, packed_sheet, declared_size, crc)])


def ole2(stream_names: Sequence[str]) -> bytes:
    """A minimal OLE2 compound file (512-byte sectors: one FAT sector, one directory sector) whose
    directory holds a root entry and the named (empty) streams, as an encrypted workbook's does."""
    header = bytearray(512)
    header[:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHH", header, 24, 0x3E, 3, 0xFFFE, 9)
    struct.pack_into("<H", header, 32, 6)
    struct.pack_into("<IIIIIIII", header, 44, 1, 1, 0, 0x1000, 0xFFFFFFFE, 0, 0xFFFFFFFE, 0)
    struct.pack_into("<I", header, 76, 0)
    header[80:512] = b"\xff" * 432
    fat = struct.pack("<II", 0xFFFFFFFD, 0xFFFFFFFE) + b"\xff" * 504
    entries = []
    for index, (name, kind) in enumerate([("Root Entry", 5), *((n, 2) for n in stream_names)][:4]):
        encoded = (name + "\0").encode("utf-16-le")
        right = index + 1 if 0 < index < len(stream_names) else 0xFFFFFFFF
        child = 1 if index == 0 and stream_names else 0xFFFFFFFF
        entry = bytearray(128)
        entry[: len(encoded)] = encoded
        struct.pack_into("<HBB III", entry, 64, len(encoded), kind, 1, 0xFFFFFFFF, right, child)
        struct.pack_into("<II", entry, 116, 0xFFFFFFFE, 0)
        entries.append(bytes(entry))
    directory = b"".join(entries).ljust(512, b"\0")
    return bytes(header) + fat + directory

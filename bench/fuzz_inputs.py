"""Bounded fuzzing of the bridge's two readers of outside input: the SECAS CPL reader
(``adapters.secas.read_cpl``) and the form intake (``adapters.forms.notification_from_any`` with
``samples/forms/form-definition.json``).

    .venv/bin/python bench/fuzz_inputs.py [--seconds 60] [--shrink-seconds S] [--case-timeout 5]
        [--save-dir DIR]

Hypothesis generates the inputs, one generator at a time in short rounds, until ``--seconds`` are up:

- CPL reader: random bytes (some behind a zip, BOM or other file signature); the sample workbooks
  (``samples/cpl/*.xlsx``, and a small one written from their first rows) with bytes flipped, set,
  inserted, deleted, duplicated or cut off; the same workbooks with one zip member (sheet XML,
  ``workbook.xml``, ...) edited, dropped or its attribute values and text replaced, and the archive
  rebuilt; CSV text with random headers (alias spellings, mangled or not) and cells; workbooks
  written by XlsxWriter from typed cells (text, numbers, booleans, dates, times, formulas).
- intake: random JSON values; Forms- and SharePoint-shaped objects with random answers; the sample
  responses (``samples/forms/responses.json``, ``list-items-delta.json``) with values replaced,
  removed, retyped or edited (hidden characters, case, length) and keys renamed.

A case passes when the reader returns its result (a ``CplPublication``, an ``EmergencyNotification``)
or raises a ``flows.errors.BadInput`` with a non-empty message. Anything else is a finding: another
exception (a ``BaseException`` such as a Rust panic included), a result of another type, an empty
message, or a case still running after ``--case-timeout`` (a hang). Hypothesis shrinks a finding to a
minimal input, for at most ``--shrink-seconds`` after ``--seconds`` (10% of it by default); the script
prints it with its traceback, and at the end exits 1. Findings are told apart by exception type and
place; once reported, one is passed over so that the rest of the run looks for others.

Prints, last, one JSON line: ``{"bench": "fuzz_inputs", "seconds": ..., "cpl_cases": N,
"intake_cases": M, "findings": K}`` (cases counts every call of a reader, shrinking included).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import faulthandler
import hashlib
import io
import json
import logging
import mmap
import multiprocessing
import os
import pickle
import re
import resource
import signal
import struct
import sys
import tempfile
import threading
import time
import traceback
import zipfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any, Literal, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import xlsxwriter
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from python_calamine import CalamineWorkbook

from adapters.forms import FormDefinition, load_form_definition, notification_from_any
from adapters.secas import CANONICAL_FIELDS, DEFAULT_ALIASES, REQUIRED_FIELDS, read_cpl
from flows.domain.cpl import CplPublication
from flows.domain.notification import EmergencyNotification
from flows.errors import BadInput

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
Target = Literal["cpl", "intake"]
SLICE_SECONDS = 2.0  # one generator's turn, at most
SHOWN_BYTES = 600  # inputs up to this size are printed whole
MAX_TEXT = 20_000  # the longest text an edit makes: past every limit the intake has, short of gigabytes


# --- cases and findings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    target: Target
    recipe: str
    """How the input was made, enough to make it again."""
    data: Any
    """Bytes for the CPL reader, a JSON-shaped value for the intake."""

    def __repr__(self) -> str:  # Hypothesis shows the cases it runs: the recipe says it, not the data
        return f"Case({self.target!r}, {self.recipe!r})"

    def shown(self) -> str:
        if isinstance(self.data, bytes):
            digest = hashlib.sha256(self.data).hexdigest()[:16]
            whole = f"\n    bytes: {self.data!r}" if len(self.data) <= SHOWN_BYTES else ""
            return f"{self.recipe}\n    ({len(self.data)} bytes, sha256 {digest}...){whole}"
        text = json.dumps(self.data, ensure_ascii=True)
        return f"{self.recipe}\n    payload: {text if len(text) <= 4000 else text[:4000] + ' ...'}"


@dataclass(frozen=True)
class Generator:
    name: str
    target: Target
    cases: st.SearchStrategy[Case]


@dataclass(frozen=True)
class Finding:
    signature: str
    generator: str
    case: Case
    trace: str
    """The traceback as it was when the reader failed (before it went up through Hypothesis)."""

    @classmethod
    def of(cls, signature: str, generator: str, case: Case, error: BaseException) -> Finding:
        return cls(signature, generator, case, "".join(traceback.format_exception(error)).rstrip())

    def report(self, number: int) -> str:
        head = f"finding {number}: {self.signature} [{self.generator}]"
        return f"{head}\n  input: {self.case.shown()}\n    {self.trace.replace(chr(10), chr(10) + '    ')}"


class Unacceptable(Exception):
    """An outcome a reader must never have (raised so that Hypothesis shrinks the input)."""


class CaseTimeout(BaseException):
    """A case ran past the timeout; a BaseException, so that no ``except Exception`` can swallow it."""


class OutOfTime(BaseException):
    """The time budget is spent: ends a round at once (Hypothesis lets a BaseException through)."""


def _outside(filename: str) -> bool:
    """A file of the fuzzer's, or of a library installed in the project's virtualenv."""
    return any(part in Path(filename).relative_to(ROOT).parts[:1] for part in ("bench", ".venv"))


def signature_of(target: Target, error: BaseException) -> str:
    """Which finding an error is: its type, where it was raised and the last place in our code."""
    if isinstance(error, Unacceptable) and error.__cause__ is None:
        return f"{target}: {error}"  # a result of the wrong type: the reader is the place
    origin = error.__cause__ if isinstance(error, Unacceptable) and error.__cause__ else error
    frames = traceback.extract_tb(origin.__traceback__)
    ours = [f for f in frames if Path(f.filename).is_relative_to(ROOT) and not _outside(f.filename)]

    def place(frame: traceback.FrameSummary) -> str:
        path = Path(frame.filename)
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else Path(*path.parts[-2:])
        return f"{shown}:{frame.lineno}"

    where = place(frames[-1]) if frames else "?"
    if ours and ours[-1] is not frames[-1]:
        where += f" via {place(ours[-1])}"
    kind = type(origin).__name__
    if origin is not error:
        kind = f"{error} ({kind})"
    return f"{target}: {kind} at {where}"


# --- byte edits ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    kind: str
    at: int
    value: int

    def apply(self, data: bytes) -> bytes:
        at = self.at % (len(data) + 1)
        if self.kind == "flip" and data:
            at %= len(data)
            return data[:at] + bytes([data[at] ^ (1 << (self.value % 8))]) + data[at + 1 :]
        if self.kind == "set" and data:
            at %= len(data)
            return data[:at] + bytes([self.value]) + data[at + 1 :]
        if self.kind == "insert":
            return data[:at] + bytes([self.value]) + data[at:]
        if self.kind == "delete":
            return data[:at] + data[at + 1 + self.value % 64 :]
        if self.kind == "duplicate":
            return data[:at] + data[at : at + 1 + self.value] + data[at:]
        return data[:at] if self.kind == "truncate" else data

    def __str__(self) -> str:
        return f"{self.kind}@{self.at}:{self.value}"


def edits(anchors: Sequence[int] = ()) -> st.SearchStrategy[list[Edit]]:
    """Byte edits, their places anywhere or (``anchors``) just after a structure that matters."""
    places = st.integers(0, 1 << 24)
    if anchors:
        places = places | st.tuples(st.sampled_from(anchors), st.integers(0, 64)).map(sum)
    kinds = st.sampled_from(("flip", "set", "insert", "delete", "duplicate", "truncate"))
    return st.lists(st.builds(Edit, kinds, places, st.integers(0, 255)), min_size=1, max_size=6)


def edited(data: bytes, changes: Sequence[Edit]) -> bytes:
    for change in changes:
        data = change.apply(data)
    return data


# --- the corpus ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workbook:
    name: str
    data: bytes
    members: dict[str, bytes]
    anchors: tuple[int, ...]
    """Offsets of the zip's local headers, central directory entries and end record."""
    spans: dict[str, tuple[tuple[int, int], ...]]
    """Per member: the attribute values and text nodes of its XML, as (start, end)."""
    cells: dict[str, tuple[tuple[int, int], ...]]
    """Per worksheet: its cells' references (``<c r="B7">``), as (start, end)."""


_ZIP_SIGNATURES = re.compile(rb"PK\x01\x02|PK\x03\x04|PK\x05\x06")
_XML_VALUES = re.compile(rb'"([^"]*)"|>([^<]+)<')
_CELL_REFERENCES = re.compile(rb'<c r="([A-Z]+[0-9]+)"')


def workbook(name: str, data: bytes) -> Workbook:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    spans = {
        member: tuple(
            match.span(1) if match.group(1) is not None else match.span(2)
            for match in _XML_VALUES.finditer(content)
        )
        for member, content in members.items()
    }
    cells = {
        member: tuple(match.span(1) for match in _CELL_REFERENCES.finditer(content))
        for member, content in members.items()
        if member.startswith("xl/worksheets/")
    }
    anchors = tuple(match.start() for match in _ZIP_SIGNATURES.finditer(data))
    return Workbook(name, data, members, anchors, spans, cells)


def small_workbook(sample: Path, rows: int = 8) -> bytes:
    """A workbook of the sample's SMETS1 title, header and first rows, with a short decoy sheet."""
    book = CalamineWorkbook.from_path(str(sample))
    sheets = [
        (name, book.get_sheet_by_name(name).to_python(skip_empty_area=False)) for name in book.sheet_names
    ]
    return xlsx_bytes([(name, cells[: rows + 4]) for name, cells in sheets])


def xlsx_bytes(sheets: Sequence[tuple[str, Sequence[Sequence[object]]]]) -> bytes:
    """An xlsx written by XlsxWriter from typed cells; a string starting with "=" is a formula."""
    stream = io.BytesIO()
    book = xlsxwriter.Workbook(
        stream, {"in_memory": True, "nan_inf_to_errors": True, "strings_to_numbers": False}
    )
    formats = {kind: book.add_format({"num_format": pattern}) for kind, pattern in _FORMATS.items()}
    for name, rows in sheets:
        sheet = book.add_worksheet(name)
        for r, cells in enumerate(rows):
            for c, value in enumerate(cells):
                if value is None:
                    continue
                if isinstance(value, str) and value.startswith("="):
                    sheet.write_formula(r, c, value)
                elif isinstance(value, str):
                    sheet.write_string(r, c, value)
                elif isinstance(value, bool):
                    sheet.write_boolean(r, c, value)
                elif isinstance(value, datetime | date | clock_time | timedelta):
                    sheet.write_datetime(r, c, value, formats[type(value).__name__])
                else:
                    sheet.write_number(r, c, value)
    book.close()
    return stream.getvalue()


_FORMATS = {"datetime": "yyyy-mm-dd hh:mm", "date": "yyyy-mm-dd", "time": "hh:mm:ss", "timedelta": "[h]:mm"}


@dataclass(frozen=True)
class Corpus:
    workbooks: tuple[Workbook, ...]
    payloads: tuple[tuple[str, Any], ...]
    form: FormDefinition
    answers: dict[str, tuple[Any, ...]]
    """Per notification field, the answers the samples give it."""
    only: frozenset[str] = frozenset()
    """The generators to run (by name); all when empty."""

    @classmethod
    def load(cls) -> Corpus:
        samples = sorted((SAMPLES / "cpl").glob("*.xlsx"))
        books = [workbook(path.name, path.read_bytes()) for path in samples]
        books.append(workbook(f"small workbook from {samples[0].name}", small_workbook(samples[0])))
        form = load_form_definition(SAMPLES / "forms" / "form-definition.json")
        responses = json.loads((SAMPLES / "forms" / "responses.json").read_text())
        items = json.loads((SAMPLES / "forms" / "list-items-delta.json").read_text())["value"]
        payloads = [(f"responses.json[{i}]", r) for i, r in enumerate(responses)]
        payloads += [(f"list-items-delta.json value[{i}]", item) for i, item in enumerate(items)]
        answers: dict[str, set[Any]] = {}
        for question in form.questions:
            found = [r["answers"].get(question.id) for r in responses]
            found += [item.get("fields", {}).get(question.column) for item in items]
            answers[question.field] = {json.dumps(value) for value in found if value is not None}
        return cls(
            tuple(books),
            tuple(payloads),
            form,
            {field: tuple(json.loads(v) for v in sorted(values)) for field, values in answers.items()},
        )


# --- CPL inputs ------------------------------------------------------------------------------------

FIELD_TEXTS: dict[str, tuple[str, ...]] = {
    "entry_id": ("S1-000001", "S1-000316", " S1-000317 ", "s1-000001", "N/A"),
    "device_type": ("ESME", "GSME", "ppmid", "CHF", "GPF", "ESME\u00a0", "SMETS2"),
    "manufacturer_name": ("Corrie Controls", "Albion Meters Ltd", "Fenwick\u202fGas"),
    "manufacturer_id": ("10F4", " 3a11", "0A1B", "1E07", "0x10F4"),
    "model_name": ("Corrie GSME 2", "Albion ESME 1"),
    "model_id": ("F4010002", "11030001 ", "0102", "102"),
    "hardware_version": ("0003", "0100", "0001", "1.2"),
    "firmware_version": ("01020001", "01020011", "0102", "0\u2007102"),
    "smets_version": ("SMETS1", "SMETS1 v1.2"),
    "s1sp": ("FOC", "IOC", "MOC", "foc"),
    "epcl_status": ("EPCL", "Non-EPCL", "non epcl", "NON_EPCL", "Pending"),
    "cpl_status": ("Active", "Withdrawn", "Cancelled", "canceled", "Expired", "Suspended"),
    "date_added": (
        "2026-11-18",
        "18/11/2026",
        "18-11-2026",
        "18.11.2026",
        "18 November 2026",
        "18 Nov 2026",
        "2026/11/18",
        "31/02/2026",
        "45000",
        "2026-11-18T09:00:00+01:00",
    ),
    "previous_entry_ids": ("N/A", "S1-000110, S1-000111", "S1-000001;S1-000002", "-", "none", ",,"),
    "image_hash": ("4EA21ED919D2E75C52D1D84B0192E08314FAB5627E8412BC64AA7674C2311E13", "abc", ""),
    "secas_reference": ("ECPL-2026-0031", "ecpl 2026 0031", ""),
}
TITLES = (
    "Central Products List",
    "Published 20 November 2026 09:00",
    "Published:",
    "Published on 2026-11-20T09:00:00+01:00",
    "published 31/02/2026",
    "Published 20 Nov 2026 25:00",
)
spellings = st.sampled_from(
    [(field, spelling) for field in CANONICAL_FIELDS for spelling in (*DEFAULT_ALIASES.get(field, ()), field)]
)
spaces = st.sampled_from(("", " ", "  ", "_", "-", "\u00a0", "\t", "/", "."))
field_texts = {field: st.sampled_from(texts) for field, texts in FIELD_TEXTS.items()}
junk_text = st.text(max_size=24)
printable_text = st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=24)
"""Text a CSV may hold: a control character anywhere makes the reader refuse the file outright."""
title_texts = st.sampled_from(TITLES) | printable_text
typed_cells: st.SearchStrategy[object] = st.one_of(
    st.none(),
    junk_text,
    st.integers(-(2**53), 2**53),
    st.floats(),
    st.booleans(),
    st.datetimes(datetime(1900, 1, 1), datetime(9999, 12, 31)),
    st.dates(date(1900, 1, 1), date(9999, 12, 31)),
    st.times(),
    st.timedeltas(timedelta(0), timedelta(days=9_000)),
    st.sampled_from(("=1/0", "=NA()", "=1+1", '="0102"', "=TODAY()")),
)


@st.composite
def headers(draw: st.DrawFn) -> tuple[str | None, str]:
    """A header cell: a spelling of a field (its words re-spaced, its case changed) or anything."""
    if draw(st.integers(0, 5)) == 0:
        return None, draw(printable_text)
    field, spelling = draw(spellings)
    words = re.split(r"[\s_]+", spelling)
    text = draw(spaces).join(words) if draw(st.booleans()) else spelling
    return field, text.upper() if draw(st.booleans()) else text


@st.composite
def tables(draw: st.DrawFn, cells: st.SearchStrategy[object]) -> tuple[str, list[list[object]]]:
    """Title rows, a header row (the required fields, usually) and data rows, as one list of rows."""
    chosen = [draw(headers()) for _ in range(draw(st.integers(0, 18)))]
    if draw(st.integers(0, 3)):
        named = {field for field, _ in chosen}
        chosen += [(field, field.replace("_", " ").title()) for field in sorted(REQUIRED_FIELDS - named)]
    chosen = draw(st.permutations(chosen))
    titles = draw(st.lists(title_texts, max_size=3))
    rows: list[list[object]] = [[title] for title in titles]
    rows.append([text for _, text in chosen])
    for _ in range(draw(st.integers(0 if draw(st.integers(0, 9)) == 0 else 1, 8))):
        row = [
            draw(field_texts[field]) if field in field_texts and draw(st.integers(0, 3)) else draw(cells)
            for field, _ in chosen
        ]
        rows.append(row[: draw(st.integers(0, len(row)))] if draw(st.integers(0, 9)) == 0 else row)
    return f"{len(titles)} title rows, headers {[text for _, text in chosen]!r}", rows


csv_cells = printable_text | st.sampled_from(("", " ", '"', "a,b", "x\ny", "N/A", "\u00a0"))
encodings = st.sampled_from(("utf-8", "utf-8", "utf-8-sig", "cp1252", "utf-16"))


@st.composite
def csv_cases(draw: st.DrawFn) -> Case:
    if draw(st.integers(0, 4)) == 0:
        text = draw(st.text(max_size=400))
        return Case("cpl", f"text {text!r} as UTF-8", text.encode("utf-8", "surrogatepass"))
    description, rows = draw(tables(csv_cells))
    delimiter = draw(st.sampled_from(",;\t|"))
    terminator = draw(st.sampled_from(("\r\n", "\n", "\r")))
    if draw(st.booleans()):
        out = io.StringIO()
        quote_all = draw(st.booleans())
        if quote_all:
            writer = csv.writer(out, delimiter=delimiter, lineterminator=terminator, quoting=csv.QUOTE_ALL)
        else:
            writer = csv.writer(out, delimiter=delimiter, lineterminator=terminator)
        writer.writerows(rows)
        text, how = out.getvalue(), "csv.writer"
    else:
        text, how = terminator.join(delimiter.join(map(str, row)) for row in rows), "joined without quoting"
    encoding = draw(encodings)
    data = text.encode(encoding, "replace" if encoding == "cp1252" else "surrogatepass")
    return Case("cpl", f"CSV ({how}, {delimiter!r}, {terminator!r}, {encoding}): {description}", data)


@st.composite
def typed_workbook_cases(draw: st.DrawFn) -> Case:
    names = st.sampled_from(("SMETS1", "SMETS2+", "Notes", "smets 1 list", "Sheet1", "CPL"))
    sheets = []
    for name in draw(st.lists(names, min_size=1, max_size=3, unique_by=str.casefold)):
        _, rows = draw(tables(typed_cells))
        sheets.append((name, rows))
    return Case("cpl", f"typed workbook {sheets!r}", xlsx_bytes(sheets))


#: What random bytes may start with: nothing, or a zip, UTF-8 BOM, PDF, OLE or gzip signature.
FILE_SIGNATURES = (b"", b"PK\x03\x04", b"\xef\xbb\xbf", b"%PDF", b"\xd0\xcf\x11\xe0", b"\x1f\x8b")


def random_byte_cases() -> st.SearchStrategy[Case]:
    prefixes = st.sampled_from(FILE_SIGNATURES)
    return st.builds(
        lambda prefix, rest: Case("cpl", "random bytes", prefix + rest), prefixes, st.binary(max_size=800)
    )


def mutated_workbook_cases(corpus: Corpus) -> st.SearchStrategy[Case]:
    anchored = {book.name: edits(book.anchors) for book in corpus.workbooks}

    @st.composite
    def cases(draw: st.DrawFn) -> Case:
        book = draw(st.sampled_from(corpus.workbooks))
        changes = draw(anchored[book.name])
        return Case(
            "cpl",
            f"{book.name} with bytes edited: {', '.join(map(str, changes))}",
            edited(book.data, changes),
        )

    return cases()


member_names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=24)


def member_edit_cases(corpus: Corpus) -> st.SearchStrategy[Case]:
    actions = st.sampled_from(("values", "values", "cells", "cells", "bytes", "drop", "rename"))
    xml_values = st.sampled_from(XML_VALUES) | junk_text
    cell_references = st.sampled_from(CELL_REFERENCES) | st.from_regex(
        r"[A-Z]{1,4}[0-9]{1,8}", fullmatch=True
    )
    any_edits = edits()

    @st.composite
    def cases(draw: st.DrawFn) -> Case:
        book = draw(st.sampled_from(corpus.workbooks))
        names = sorted(book.members)
        action = draw(actions)
        member = draw(st.sampled_from(sorted(book.cells) if action == "cells" else names))
        members = dict(book.members)
        content = members[member]
        spans = book.cells[member] if action == "cells" else book.spans[member]
        if action in ("values", "cells") and spans:
            values = cell_references if action == "cells" else xml_values
            count = draw(st.integers(1, 3))
            replaced = {spans[draw(st.integers(0, len(spans) - 1))]: draw(values) for _ in range(count)}
            for (start, end), text in sorted(replaced.items(), reverse=True):
                content = content[:start] + text.encode("utf-8", "surrogatepass") + content[end:]
            members[member], how = content, f"values at (start, end) replaced: {sorted(replaced.items())!r}"
        elif action == "drop":
            del members[member]
            how = "dropped"
        elif action == "rename":
            new_name = draw(st.sampled_from(names) | member_names)
            members[new_name] = members.pop(member)
            how = f"renamed to {new_name!r}"
        else:
            changes = draw(any_edits)
            members[member], how = edited(content, changes), f"bytes edited: {', '.join(map(str, changes))}"
        stored = draw(st.booleans())
        stream = io.BytesIO()
        with zipfile.ZipFile(stream, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as archive:
            for name, body in members.items():
                archive.writestr(name, body)
        packed = "stored" if stored else "deflated"
        return Case("cpl", f"{book.name}, member {member!r} {how}, re-zipped {packed}", stream.getvalue())

    return cases()


CELL_REFERENCES = ("XFD1048576", "A1048576", "XFD1", "XFE1", "A0", "A1048577", "Z60000", "XFD300", "AAAA1")
"""Where a cell may claim to be: the last cell, row or column a sheet can have, and past them."""
# fmt: off
XML_VALUES = (
    "", "s", "n", "b", "e", "str", "inlineStr", "d", "A1", "XFD1048576", "XFE1", "A0", "1:1048577",
    "A1:XFD1048576", "-1", "1e308", "NaN", "2026-11-20T09:00:00", "#DIV/0!", "&amp;", "&#0;", "&bogus;",
    "<", "]]>", "999999999999",
)
# fmt: on
"""Cell types, references, numbers and entities to put where the XML has a value or text."""


# --- intake inputs ---------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(), junk_text, st.text(max_size=200)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(junk_text, inner, max_size=4),
    max_leaves=12,
)
HIDDEN = tuple("\u00a0\u202f\u200b\ufeff\u202e\x00\x85\u0301\U0001f4a9\ud800\n")
"""No-break spaces, zero-width space, BOM, right-to-left override, NUL, NEL, a combining mark, an emoji,
a lone surrogate (JSON can carry one: "\\ud800") and a new line."""


@dataclass(frozen=True)
class JsonEdit:
    path: int
    action: str
    value: Any
    at: int
    char: str

    def __str__(self) -> str:
        return f"{self.action}@{self.path}:{self.at}:{self.value!r}:{self.char!r}"


json_edits = st.lists(
    st.builds(
        JsonEdit,
        st.integers(0, 200),
        st.sampled_from(("set", "delete", "rename", "retype", "insert", "case", "repeat", "cut")),
        json_values,
        st.integers(0, 100),
        st.sampled_from(HIDDEN) | junk_text,
    ),
    min_size=1,
    max_size=5,
)


def json_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += json_paths(item, (*prefix, index))
    return found


def apply_json_edit(payload: Any, change: JsonEdit) -> Any:
    paths = json_paths(payload)[1:]  # not the whole payload: "random JSON" covers that
    if not paths:
        return payload
    path = paths[change.path % len(paths)]
    parent = payload
    for step in path[:-1]:
        parent = parent[step]
    key = path[-1]
    old = parent[key]
    if change.action == "delete":
        del parent[key]
    elif change.action == "rename" and isinstance(parent, dict):
        parent[f"{key}{change.char}" if change.at % 2 else change.char] = parent.pop(key)
    elif change.action == "retype":
        parent[key] = _retyped(old, change.at)
    elif isinstance(old, str) and change.action in ("insert", "case", "repeat", "cut"):
        at = change.at % (len(old) + 1)
        parent[key] = {
            "insert": old[:at] + change.char + old[at:],
            "case": old.swapcase(),
            "repeat": (old * (1 + change.at * 50))[:MAX_TEXT],
            "cut": old[:at],
        }[change.action]
    else:
        parent[key] = change.value
    return payload


def _retyped(value: Any, choice: int) -> Any:
    text = value if isinstance(value, str) else json.dumps(value)
    options: list[Any] = [text, [value], {"value": value}, None, bool(value), len(text), float(len(text))]
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 300:
        options.append(int(value))
    return options[choice % len(options)]


def mutated_payload_cases(corpus: Corpus) -> st.SearchStrategy[Case]:
    @st.composite
    def cases(draw: st.DrawFn) -> Case:
        name, sample = draw(st.sampled_from(corpus.payloads))
        payload = json.loads(json.dumps(sample))
        changes = draw(json_edits)
        for change in changes:
            payload = apply_json_edit(payload, change)
        return Case("intake", f"{name} with edits {', '.join(map(str, changes))}", payload)

    return cases()


extra_answers = st.dictionaries(st.text(max_size=24), json_values, max_size=2)


def shaped_payload_cases(corpus: Corpus) -> st.SearchStrategy[Case]:
    form = corpus.form
    answers_for = {
        q.field: st.sampled_from(corpus.answers[q.field]) if corpus.answers.get(q.field) else junk_text
        for q in form.questions
    }
    any_answer = json_scalars | json_values
    metadata_values = {
        "form": st.just(form.form_id) | json_scalars,
        "id": st.integers(0, 10**6) | json_scalars,
        "responder": st.sampled_from(RESPONDERS) | json_scalars,
        "when": st.sampled_from(WHEN) | json_scalars,
    }

    @st.composite
    def cases(draw: st.DrawFn) -> Case:
        forms = draw(st.booleans())
        answers = {
            (q.id if forms else q.column): draw(answers_for[q.field] if draw(st.booleans()) else any_answer)
            for q in form.questions
            if draw(st.integers(0, 7))
        }
        answers.update(draw(extra_answers))
        metadata = {
            "formId" if forms else "id": draw(metadata_values["form"]),
            "responseId" if forms else "ResponseId": draw(metadata_values["id"]),
            "responder" if forms else "Responder": draw(metadata_values["responder"]),
            "submitDate" if forms else "SubmitDate": draw(metadata_values["when"]),
        }
        kept = {key: value for key, value in metadata.items() if draw(st.integers(0, 5))}
        payload = (
            {**kept, "answers": answers}
            if forms
            else {"id": kept.pop("id", "1"), "fields": {**kept, **answers}}
        )
        return Case("intake", f"{'Forms' if forms else 'SharePoint'}-shaped payload", payload)

    return cases()


RESPONDERS = (
    "priya.natarajan@amberline-energy.example",
    "a@b.c",
    "@",
    "x@y",
    "PRIYA@AMBERLINE-ENERGY.EXAMPLE ",
)
WHEN = (
    "2026-11-19T10:02:11Z",
    "2026-11-19T10:02:11",
    "2026-11-19",
    "19/11/2026 10:02",
    "2026-13-45T99:99:99Z",
)


def generators(corpus: Corpus) -> list[Generator]:
    """Every generator, or those ``corpus.only`` names."""
    every = [
        Generator("random bytes", "cpl", random_byte_cases()),
        Generator("mutated workbook bytes", "cpl", mutated_workbook_cases(corpus)),
        Generator("mutated workbook member", "cpl", member_edit_cases(corpus)),
        Generator("CSV text", "cpl", csv_cases()),
        Generator("typed workbook", "cpl", typed_workbook_cases()),
        Generator(
            "random JSON", "intake", json_values.map(lambda value: Case("intake", "random JSON", value))
        ),
        Generator("shaped payload", "intake", shaped_payload_cases(corpus)),
        Generator("mutated sample payload", "intake", mutated_payload_cases(corpus)),
    ]
    return [generator for generator in every if not corpus.only or generator.name in corpus.only]


# --- running ---------------------------------------------------------------------------------------

Reader = Callable[[Any], object]
FUZZ_HEALTH_CHECKS = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
]


@dataclass
class Report:
    seconds: float
    cases: dict[str, int]
    by_generator: dict[str, int]
    """Cases per generator, for the human line."""
    findings: list[Finding]

    def summary(self) -> dict[str, object]:
        return {
            "bench": "fuzz_inputs",
            "seconds": round(self.seconds, 1),
            "cpl_cases": self.cases["cpl"],
            "intake_cases": self.cases["intake"],
            "findings": len(self.findings),
        }


class InFlight:
    """The case the worker is reading, in memory the supervisor shares (an anonymous mapping survives
    the fork): when the worker dies in native code (an abort on a failed allocation, a segfault) or
    hangs there, no Python code of its own can say on what input; the supervisor reads it here."""

    _HEADER = struct.Struct("<QQqq")  # length of the pickled case (0: none), case number, case counts

    def __init__(self, size: int = 32 << 20) -> None:
        self._map = mmap.mmap(-1, size)
        self._number = 0

    def start(self, generator: str, case: Case, counts: Mapping[str, int]) -> None:
        blob = pickle.dumps((generator, case))
        if self._HEADER.size + len(blob) > len(self._map):
            blob = pickle.dumps((generator, Case(case.target, f"{case.recipe} (input too big to keep)", b"")))
        self._number += 1
        self._map[self._HEADER.size : self._HEADER.size + len(blob)] = blob
        self._write(len(blob), counts)

    def finish(self, counts: Mapping[str, int]) -> None:
        self._write(0, counts)

    def _write(self, length: int, counts: Mapping[str, int]) -> None:
        header = self._HEADER.pack(length, self._number, counts["cpl"], counts["intake"])
        self._map[: self._HEADER.size] = header

    def running(self) -> int | None:
        """The number of the case being read, if one is (the supervisor times how long it stays)."""
        length, number, _, _ = self._HEADER.unpack_from(self._map)
        return number if length else None

    def case(self) -> tuple[str, Case] | None:
        length = self._HEADER.unpack_from(self._map)[0]
        if not length:
            return None
        generator, case = pickle.loads(self._map[self._HEADER.size : self._HEADER.size + length])
        return str(generator), case

    def counts(self) -> dict[str, int]:
        _, _, cpl, intake = self._HEADER.unpack_from(self._map)
        return {"cpl": cpl, "intake": intake}


class Fuzzer:
    """Runs the generators in turn against the readers, in the worker process; sends each finding
    (``("finding", Finding)``) and each round's count (``("round", name, count)``) to the supervisor."""

    def __init__(
        self,
        corpus: Corpus,
        *,
        readers: Mapping[Target, Reader],
        case_timeout: float,
        in_flight: InFlight,
        known: set[str],
        send: Callable[[tuple[Any, ...]], None],
    ) -> None:
        expected: dict[Target, type] = {"cpl": CplPublication, "intake": EmergencyNotification}
        self._readers = {target: (readers[target], expected[target]) for target in expected}
        self._generators = generators(corpus)
        self._case_timeout = case_timeout
        self._in_flight = in_flight
        self._known = known
        self._send = send
        self._cases = in_flight.counts()
        self._latest: dict[str, Finding] = {}
        self._stop_at = 0.0
        self._round_cases = 0

    def run(self, seconds: float, shrink_seconds: float, first_turn: int) -> None:
        deadline = time.monotonic() + seconds
        turn_seconds = min(SLICE_SECONDS, seconds / len(self._generators))  # each has a turn, however short
        turn = first_turn
        # Every generator has at least one round, each of at least one case, however loaded the
        # machine (a slow start must not leave a reader unexercised): the budget may run over by that.
        while time.monotonic() < deadline or turn - first_turn < len(self._generators):
            generator = self._generators[turn % len(self._generators)]
            self._send(("turn", turn))
            turn += 1
            before = sum(self._cases.values())
            shrink_end = max(deadline, time.monotonic()) + shrink_seconds  # a late round still shrinks
            self._round(generator, min(deadline, time.monotonic() + turn_seconds), shrink_end)
            self._send(("round", generator.name, sum(self._cases.values()) - before))

    def _round(self, generator: Generator, slice_end: float, shrink_end: float) -> None:
        self._latest = {}
        self._stop_at = slice_end
        self._round_cases = 0

        @settings(
            max_examples=1_000_000,
            deadline=None,
            database=None,
            phases=(Phase.generate, Phase.shrink),
            suppress_health_check=FUZZ_HEALTH_CHECKS,
            verbosity=Verbosity.quiet,
        )
        @given(generator.cases)
        def attempt(case: Case) -> None:
            if time.monotonic() >= self._stop_at and self._round_cases > 0:
                raise OutOfTime
            self._round_cases += 1
            self._attempt(generator, case, shrink_end)

        # A round ends when its time is up, on a hang, or with Hypothesis raising the shrunk failures:
        # those are in self._latest already, recorded as they happened. Anything else is the fuzzer's own.
        try:
            attempt()
        except (OutOfTime, CaseTimeout):
            pass
        except Exception as error:
            if not self._latest:
                raise RuntimeError(f"the fuzzer's generator {generator.name!r} broke") from error
        for signature, finding in self._latest.items():
            self._known.add(signature)
            self._send(("finding", finding))

    def _attempt(self, generator: Generator, case: Case, shrink_end: float) -> None:
        self._cases[case.target] += 1
        self._in_flight.start(generator.name, case, self._cases)
        try:
            self._run(case)
        except CaseTimeout as error:
            signature = f"{case.target}: hang, over {self._case_timeout:g} s"
            if signature not in self._known:
                self._latest[signature] = Finding.of(signature, generator.name, case, error)
            raise
        except Exception as error:
            signature = signature_of(case.target, error)
            if signature in self._known:
                return  # reported already: let Hypothesis look for something else
            self._latest[signature] = Finding.of(signature, generator.name, case, error)
            self._stop_at = shrink_end  # time to shrink it
            raise
        finally:
            self._in_flight.finish(self._cases)

    def _run(self, case: Case) -> None:
        read, expected = self._readers[case.target]
        try:
            with time_limit(self._case_timeout):
                result = read(case.data)
        except BadInput as error:
            if not str(error).strip():
                raise Unacceptable(f"{type(error).__name__} with an empty message") from error
            return
        except Exception:
            raise
        except BaseException as error:  # a Rust panic (pyo3's PanicException) and the like
            if isinstance(error, CaseTimeout | OutOfTime | KeyboardInterrupt | SystemExit | GeneratorExit):
                raise
            raise Unacceptable(f"{type(error).__name__}, a BaseException, escaped") from error
        if not isinstance(result, expected):
            raise Unacceptable(f"returned {type(result).__name__}, not {expected.__name__}")


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ``CaseTimeout`` after ``seconds`` (in the main thread; elsewhere the supervisor's watch)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise CaseTimeout(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Supervisor:
    """Runs the fuzzer in a forked worker and watches it: a worker that dies (a native crash, a failed
    allocation past ``memory_mb``) or hangs in native code (past the case timeout plus ``hang_grace``,
    where SIGALRM cannot reach) is a finding on the case it was reading; a new worker then goes on,
    up to ``MAX_WORKERS`` in one run."""

    MAX_WORKERS = 6

    def __init__(
        self,
        corpus: Corpus,
        readers: Mapping[Target, Reader],
        *,
        case_timeout: float,
        hang_grace: float,
        memory_mb: int,
        out: TextIO,
        save_dir: Path | None,
    ) -> None:
        self._corpus = corpus
        self._readers = readers
        self._case_timeout = case_timeout
        self._hang_grace = hang_grace
        self._memory_mb = memory_mb
        self._out = out
        self._save_dir = save_dir
        self._known: set[str] = set()
        self._turn = 0
        self.findings: list[Finding] = []
        self.cases = {"cpl": 0, "intake": 0}
        self._generators = [generator.name for generator in generators(corpus)]
        self.by_generator = dict.fromkeys(self._generators, 0)
        self._counted = 0

    def _generator_of(self, turn: int) -> str:
        return self._generators[turn % len(self._generators)]

    def run(self, seconds: float, shrink_seconds: float) -> Report:
        started = time.monotonic()
        deadline = started + seconds
        for _ in range(self.MAX_WORKERS):
            finished = self._work(deadline - time.monotonic(), shrink_seconds)
            # After a worker died, the next one goes on past the deadline until every generator has
            # had a turn: a crash early in a short run must not leave the other reader untried.
            if finished or (time.monotonic() >= deadline and self._turn >= len(self._generators)):
                break
        return Report(time.monotonic() - started, self.cases, self.by_generator, self.findings)

    def _work(self, seconds: float, shrink_seconds: float) -> bool:
        """One worker, to its end; whether it finished (rather than died or was stopped)."""
        with tempfile.TemporaryFile() as stacks:  # where faulthandler writes the worker's stack if it dies
            return self._watch(stacks, seconds, shrink_seconds)

    def _watch(self, stacks: IO[bytes], seconds: float, shrink_seconds: float) -> bool:
        context = multiprocessing.get_context("fork")  # the worker shares the corpus and the readers
        receive, send = context.Pipe(duplex=False)
        in_flight = InFlight()
        args = (send, in_flight, stacks, seconds, shrink_seconds)
        worker = context.Process(target=self._worker, args=args, daemon=True)
        worker.start()
        send.close()
        give_up_at = time.monotonic() + seconds + shrink_seconds + self._case_timeout + self._hang_grace
        finished, stopped = False, ""
        watched: tuple[int, float] | None = None  # the case being read and since when (our clock)
        self._counted = 0  # this worker's cases already in by_generator
        while not finished:
            if receive.poll(0.2):
                try:
                    finished = self._receive(receive.recv())
                except EOFError:
                    break
                continue
            if not worker.is_alive():
                break
            number, now = in_flight.running(), time.monotonic()
            if number is None or watched is None or watched[0] != number:
                watched = None if number is None else (number, now)
            if watched is not None and now - watched[1] > self._case_timeout + self._hang_grace:
                stopped = f"hang in native code, over {self._case_timeout + self._hang_grace:g} s"
            elif now > give_up_at:
                stopped = "worker did not stop in time"
            if stopped:
                os.kill(worker.pid or 0, signal.SIGUSR1)  # faulthandler writes where it is stuck
                time.sleep(0.3)
                worker.kill()
                break
        worker.join()
        counts = in_flight.counts()
        for target, count in counts.items():
            self.cases[target] += count
        if finished:
            return True
        # The round it died in never reported its count.
        self.by_generator[self._generator_of(self._turn)] += sum(counts.values()) - self._counted
        self._turn += 1  # the next worker starts with the next generator
        current = in_flight.case()
        how = stopped or describe_exit(worker.exitcode)
        generator, case = current if current else ("?", Case("cpl", "(no case in flight)", b""))
        signature = f"{case.target}: {how}"
        if signature not in self._known:
            stacks.seek(0)
            trace = (
                f"the worker process {how} while reading this input (a message from native code, if any, "
                f"is on stderr); its Python stack then:\n{stacks.read().decode(errors='replace').strip()}"
            )
            self._report(Finding(signature, generator, case, trace))
        return False

    def _worker(
        self, send: Connection, in_flight: InFlight, stacks: IO[bytes], seconds: float, shrink_seconds: float
    ) -> None:
        faulthandler.enable(stacks)
        faulthandler.register(signal.SIGUSR1, stacks)
        limit = self._memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        logging.disable(logging.WARNING)  # the intake logs every answer to an unknown question id
        fuzzer = Fuzzer(
            self._corpus,
            readers=self._readers,
            case_timeout=self._case_timeout,
            in_flight=in_flight,
            known=set(self._known),
            send=send.send,
        )
        fuzzer.run(seconds, shrink_seconds, self._turn)
        send.send(("done",))
        send.close()

    def _receive(self, message: tuple[Any, ...]) -> bool:
        kind, *rest = message
        if kind == "finding":
            self._report(rest[0])
        elif kind == "round":
            self.by_generator[rest[0]] += rest[1]
            self._counted += rest[1]
        elif kind == "turn":
            self._turn = rest[0]
        return bool(kind == "done")

    def _report(self, finding: Finding) -> None:
        self._known.add(finding.signature)
        self.findings.append(finding)
        number = len(self.findings)
        print(finding.report(number), file=self._out, flush=True)
        if self._save_dir is not None:
            self._save_dir.mkdir(parents=True, exist_ok=True)
            data = finding.case.data
            path = self._save_dir / f"finding-{number}.{'bin' if isinstance(data, bytes) else 'json'}"
            path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
            print(f"  saved to {path}", file=self._out, flush=True)


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"died of {signal.Signals(-code).name}"
    return f"exited with status {code}"


def fuzz(
    seconds: float,
    *,
    shrink_seconds: float | None = None,
    case_timeout: float = 5.0,
    hang_grace: float = 10.0,
    memory_mb: int = 4096,
    out: TextIO = sys.stdout,
    save_dir: Path | None = None,
    readers: Mapping[Target, Reader] | None = None,
    only: Collection[str] = (),
) -> Report:
    """Fuzz both readers for ``seconds`` (plus at most ``shrink_seconds`` to shrink a late finding).

    ``readers`` stands in for ``read_cpl`` and ``notification_from_any`` (the tests check the fuzzer
    with readers that fail on purpose); ``only`` names the generators to run (all by default).
    """
    corpus = dataclasses.replace(Corpus.load(), only=frozenset(only))
    every = {generator.name for generator in generators(dataclasses.replace(corpus, only=frozenset()))}
    unknown = set(only) - every
    if unknown:
        raise ValueError(f"no generator named {sorted(unknown)}")
    form = corpus.form
    chosen: dict[Target, Reader] = {
        "cpl": lambda data: read_cpl(data, name="fuzz"),
        "intake": lambda payload: notification_from_any(payload, form),
        **(readers or {}),
    }
    supervisor = Supervisor(
        corpus,
        chosen,
        case_timeout=case_timeout,
        hang_grace=hang_grace,
        memory_mb=memory_mb,
        out=out,
        save_dir=save_dir,
    )
    return supervisor.run(seconds, max(2.0, seconds / 10) if shrink_seconds is None else shrink_seconds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to look (default 60)")
    parser.add_argument("--shrink-seconds", type=float, help="extra time to shrink a late finding (10%%)")
    parser.add_argument("--case-timeout", type=float, default=5.0, help="seconds one case may take (5)")
    parser.add_argument("--memory-mb", type=int, default=4096, help="address space a worker may use (4096)")
    parser.add_argument("--save-dir", type=Path, help="write each finding's input to this folder")
    args = parser.parse_args(argv)
    report = fuzz(
        args.seconds,
        shrink_seconds=args.shrink_seconds,
        case_timeout=args.case_timeout,
        memory_mb=args.memory_mb,
        save_dir=args.save_dir,
    )
    counts = ", ".join(f"{name} {count}" for name, count in report.by_generator.items())
    print(f"fuzz_inputs: {len(report.findings)} finding(s) in {report.seconds:.0f} s; cases: {counts}")
    print(json.dumps(report.summary()), flush=True)
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())

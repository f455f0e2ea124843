"""Cell values as the domain wants them: identifiers normalised, statuses matched loosely, dates as
dates, previous ids as a tuple.

Each converter takes one cell as calamine or the CSV reader gave it and returns the field's value,
``BLANK`` for an empty or white-space cell, or raises ``CellError`` saying why it cannot be used.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from enum import Enum, StrEnum
from typing import Final

from flows.domain.cpl import CplStatus, EpclStatus, parse_previous_ids
from flows.domain.identifiers import (
    character_name,
    hidden_character_at,
    is_hex,
    loose_name,
    non_ascii_character_at,
    normalise_identifier,
)

IDENTIFIER_FIELDS = frozenset(
    {
        "device_type",
        "manufacturer_id",
        "model_id",
        "hardware_version",
        "firmware_version",
        "image_hash",
        "s1sp",
        "secas_reference",  # compared exactly with the notification's normalised values
    }
)
HEX_FIELDS = frozenset({"manufacturer_id", "model_id", "image_hash"})
"""Identifiers that are hexadecimal on every CPL: ASCII 0-9 and A-F once normalised. Versions are held
to what any identifier is (ASCII, no invisible character) but not to hex: a version written otherwise
on an EPCL row would stop every sync."""
STATUS_FIELDS = frozenset({"epcl_status", "cpl_status"})
_DATE_FORMATS = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d %B %Y", "%d %b %Y", "%Y/%m/%d")
"""Text dates other than ISO: day first, as SECAS (a GB body) writes them."""
_EXCEL_EPOCH = date(1899, 12, 30)
Converter = Callable[[object], object]


class _Blank(Enum):
    BLANK = "blank"


BLANK: Final = _Blank.BLANK
"""What an empty or white-space-only cell converts to, whatever the field."""


class CellError(ValueError):
    """A cell value that cannot become its field; the message is the reason."""


def _kind(value: object) -> str:
    if isinstance(value, datetime | date):
        return f"the date {value.isoformat()}"
    return f"{type(value).__name__} value {value!r}"


def to_identifier(value: object) -> str | _Blank:
    """An identifier as the form would take it: no invisible character and nothing but ASCII, beyond
    white space, which goes (``normalise_identifier``). A look-alike ("3А11" with a Cyrillic А) or a
    zero-width space would show operators two values that look the same, and reach the SMI."""
    if isinstance(value, str):
        # Plain ASCII letters and digits need only upper-casing: the common case, done cheaply.
        if value.isascii() and value.isalnum():
            return value.upper()
        _refuse_hidden_or_non_ascii(value)
        return normalise_identifier(value) or BLANK
    if isinstance(value, int | float) and not isinstance(value, bool):
        # A numeric cell, whole or not: Excel dropped any leading zeros when the value was stored
        # ("0003" became 3) and read "1E07" as 10000000, and nothing can recover them here. Read as
        # text, it would pair as another device model and an acceptance would load it into the SMI.
        raise CellError(
            f"the number {_number(value)} is not an identifier: the cell holds a number, not text, "
            "and a number has lost any leading zeros (0003 is stored as 3) or letters (1E07 as "
            "10000000); format the column as text and type its values again"
        )
    raise CellError(f"{_kind(value)} is not an identifier")


def to_hex_identifier(value: object) -> str | _Blank:
    """A hexadecimal identifier: ``to_identifier``, then nothing but 0-9 and A-F."""
    identifier = to_identifier(value)
    if isinstance(identifier, str) and not is_hex(identifier):
        assert isinstance(value, str)  # to_identifier makes text of nothing else
        position, character = next(
            (position, character)
            for position, character in enumerate(value, start=1)
            if not character.isspace() and character.upper() not in _HEX_DIGITS
        )
        raise CellError(
            f"{value!r} is not hexadecimal: {character!r} at character {position} is not 0-9 or A-F"
        )
    return identifier


_HEX_DIGITS = frozenset("0123456789ABCDEF")


def _refuse_hidden_or_non_ascii(value: str) -> None:
    found = hidden_character_at(value)
    if found is not None:
        position, character = found
        raise CellError(
            f"{value!r} contains an invisible or control character, {character_name(character)}, "
            f"at character {position}: an identifier must be only what it shows"
        )
    found = non_ascii_character_at(value)  # no-break spaces go with white space
    if found is not None:
        position, character = found
        raise CellError(
            f"{value!r} contains a non-ASCII character, {character_name(character)}, at character "
            f"{position}: identifiers are ASCII, and this one may look like an ASCII letter or digit"
        )


def _number(value: int | float) -> str:
    """A number as Excel shows it in a General cell that is wide enough: 3, not 3.0."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else repr(value)


def to_text(value: object) -> str | _Blank:
    if isinstance(value, str):
        return " ".join(value.split()) or BLANK
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _status(kind: str, enum: type[StrEnum], extra: dict[str, str] | None = None) -> Converter:
    """Matches loosely: "non epcl", "Non-EPCL" and "NON_EPCL" are all ``EpclStatus.NON_EPCL``."""
    table = {loose_name(member.value): member for member in enum}
    table.update({spelling: enum(value) for spelling, value in (extra or {}).items()})
    expected = ", ".join(member.value for member in enum)

    def convert(value: object) -> StrEnum | _Blank:
        member = table.get(loose_name(value)) if isinstance(value, str) else None
        if member is None and isinstance(value, str) and not value.strip():
            return BLANK
        if member is None:
            raise CellError(f"unknown {kind} {value!r} (expected one of: {expected})")
        return member

    return convert


def _date(value: object) -> date | _Blank:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        return _text_date(text) if text else BLANK
    if isinstance(value, int | float) and not isinstance(value, bool) and 1 <= value < 2_958_466:
        # A date cell without a date format arrives as its Excel serial number (days since 1899-12-30).
        return _EXCEL_EPOCH + timedelta(days=int(value))
    raise CellError(f"{_kind(value)} is not a date")


def _text_date(text: str) -> date:
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise CellError(f"{text!r} is not a date (expected e.g. 2026-11-18 or 18/11/2026)")


def to_previous_ids(value: object) -> tuple[str, ...] | _Blank:
    text = to_text(value)
    return text if isinstance(text, _Blank) else parse_previous_ids(text)


_CONVERTERS: dict[str, Converter] = {
    "date_added": _date,
    "epcl_status": _status("EPCL status", EpclStatus),
    "cpl_status": _status("CPL status", CplStatus, {"canceled": "Cancelled"}),
    "previous_entry_ids": to_previous_ids,
}
_DEFAULTS: dict[str, object] = {"date_added": None, "previous_entry_ids": ()}


def converter_for(field: str) -> Converter:
    """How one cell becomes the value of ``field`` (``BLANK`` if it is blank); raises ``CellError``."""
    if field in HEX_FIELDS:
        return to_hex_identifier
    return _CONVERTERS.get(field, to_identifier if field in IDENTIFIER_FIELDS else to_text)


def default_for(field: str) -> object:
    """The value of an optional field whose cell is blank or whose column is absent."""
    return _DEFAULTS.get(field, "")

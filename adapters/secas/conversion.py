"""A column converted through its distinct values, in one go.

A CPL repeats the same device types, manufacturers, versions, statuses and dates thousands of times,
so each distinct value is converted once (``values.converter_for``). The columns where nearly every
value is distinct (entry ids, image hashes, previous ids) are usually plain: ASCII letters and digits,
or text without white space, or one entry id (or "N/A") per cell. For those one check over the whole
column (``str.join``, then ``bytes.isalnum`` or ``str.split``, all in C) replaces a Python call per
value, with the same result; a test holds the two to the same result.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import cast

from adapters.secas.values import (
    BLANK,
    CellError,
    converter_for,
    to_hex_identifier,
    to_identifier,
    to_previous_ids,
    to_text,
)
from flows.domain.cpl import NO_PREVIOUS_IDS, parse_previous_ids


@dataclass(frozen=True)
class ColumnValues:
    """What each distinct value of one column becomes."""

    converted: dict[object, object]
    """Each usable, non-blank distinct value -> the field's value (empty when ``unchanged``)."""
    blanks: set[object] = field(default_factory=set)
    """The distinct values that are blank (empty or white space)."""
    problems: dict[object, str] = field(default_factory=dict)
    """The distinct values that cannot be used -> why."""
    unchanged: bool = False
    """Every value is already what the field wants: the column can be used as it is."""
    one_token_each: bool = False
    """Previous ids, one token per cell: ``converted`` holds the placeholders and makes any other
    token ``(token,)`` on lookup, so no table of the (nearly all distinct) ids is built."""


class _Tokens(dict[object, object]):
    """Every spelling of a placeholder -> ``()``; any other token (an entry id) -> ``(token,)``."""

    def __missing__(self, token: object) -> tuple[object, ...]:
        return (token,)


_ASCII_PLACEHOLDERS = frozenset(
    "".join(letters)
    for placeholder in NO_PREVIOUS_IDS
    for letters in product(*zip(placeholder.lower(), placeholder.upper(), strict=True))
)
"""Every ASCII spelling of a placeholder, in any mix of cases ("N/A", "n/a", "None", "nONE", ...)."""
_SLASH_PLACEHOLDERS = frozenset(spelling for spelling in _ASCII_PLACEHOLDERS if "/" in spelling)
"""The spellings of "N/A": each holds one slash, which is not a separator there."""
UNCHANGED = ColumnValues({}, unchanged=True)
ONE_TOKEN_EACH = ColumnValues(_Tokens(dict.fromkeys(_ASCII_PLACEHOLDERS, ())), one_token_each=True)
_SEPARATOR = "\0"
_UPPER_HEX = b"0123456789ABCDEF"
_HEX = _UPPER_HEX + b"abcdef"


def convert_column(field: str, column: Sequence[object]) -> ColumnValues:
    """Each distinct value of one column converted for ``field``."""
    convert = converter_for(field)
    if convert in (to_identifier, to_hex_identifier, to_text, to_previous_ids):
        # Most text and identifier columns are already as the field wants them, and most previous ids
        # are one token per cell: one look at the whole column (no set of its values needed) tells.
        joined = _cells_joined(column)
        if joined is not None and _as_they_are(convert, joined):
            return UNCHANGED
        if joined is not None and convert is to_previous_ids and _one_ascii_token_each(joined, column):
            return ONE_TOKEN_EACH
    distinct = set(column)
    plain = _plain(distinct)
    if plain is not None:
        fast = _convert_plain(convert, *plain)
        if fast is not None:
            return fast
    result = ColumnValues({})
    for value in distinct:
        try:
            converted = convert(value)
        except CellError as error:
            result.problems[value] = str(error)
            continue
        if converted is BLANK:
            result.blanks.add(value)
        else:
            result.converted[value] = converted
    return result


def _joined(values: Iterable[object]) -> str | None:
    """All values joined, if every one is a string (``str.join`` checks that, in C)."""
    try:
        return "".join(values)  # type: ignore[arg-type]
    except TypeError:
        return None


def _cells_joined(column: Sequence[object]) -> str | None:
    """All cells joined, if every one is a non-empty string.

    Joined with a separator, so that one pass over the cells (each a cache miss on a big sheet) also
    finds an empty one: two separators in a row, or one at either end. A cell holding the separator
    (NUL: never in an xlsx, and refused in CSV text) makes the count of separators wrong."""
    try:
        separated = _SEPARATOR.join(column)  # type: ignore[arg-type]
    except TypeError:
        return None
    if (
        separated.count(_SEPARATOR) != len(column) - 1
        or _SEPARATOR * 2 in f"{_SEPARATOR}{separated}{_SEPARATOR}"
    ):
        return None
    return separated.replace(_SEPARATOR, "")


def _one_ascii_token_each(joined: str, column: Sequence[object]) -> bool:
    """Whether the cells of ``column`` (``joined``, none empty) each hold one ASCII token: no white
    space and no separator ("," ";" "/") but the slash of a whole-cell "N/A", so that
    ``to_previous_ids`` makes one id of each, or none of a placeholder."""
    if not (joined.isascii() and _no_white_space(joined) and "," not in joined and ";" not in joined):
        return False
    # Each "N/A" cell (in any case) has one slash: when they account for every slash, no cell has another.
    slashes = joined.count("/")
    return not slashes or slashes == sum(map(column.count, _SLASH_PLACEHOLDERS))


def _plain(distinct: Collection[object]) -> tuple[list[str], str] | None:
    """The values and all of them joined, if every one is a non-empty string."""
    if "" in distinct:
        return None
    values = list(distinct)
    joined = _joined(values)
    return None if joined is None else (cast(list[str], values), joined)


def _as_they_are(convert: object, joined: str) -> bool:
    """Whether ``convert`` leaves every (non-empty) string that ``joined`` was made of as it is."""
    if convert is to_identifier or convert is to_hex_identifier:
        # ASCII letters and digits only, none lower case: bytes.isalnum knows only ASCII.
        if not joined.isascii():
            return False
        ascii_bytes = joined.encode("ascii")
        if convert is to_hex_identifier:
            return not ascii_bytes.translate(None, _UPPER_HEX)  # nothing but 0-9 and A-F
        return ascii_bytes.isalnum() and ascii_bytes.upper() == ascii_bytes
    # Text without any white space: to_text only trims and collapses white space.
    return convert is to_text and _no_white_space(joined)


def _no_white_space(text: str) -> bool:
    # split() drops white space at either end too, so only text without any comes back whole.
    return text.split(maxsplit=1) == [text]


def _convert_plain(convert: object, values: list[str], joined: str) -> ColumnValues | None:
    """What ``convert`` makes of each value, worked out for the whole column at once; None when the
    column is not plain enough for that."""
    if _as_they_are(convert, joined):
        return UNCHANGED
    if convert is to_identifier and joined.isascii() and joined.encode("ascii").isalnum():
        return ColumnValues(dict(zip(values, map(str.upper, values), strict=True)))
    if convert is to_hex_identifier and joined.isascii() and not joined.encode("ascii").translate(None, _HEX):
        return ColumnValues(dict(zip(values, map(str.upper, values), strict=True)))
    if convert is not to_previous_ids or not _no_white_space(joined):
        return None
    if "," in joined or ";" in joined or joined.count("/") != len(_SLASH_PLACEHOLDERS.intersection(values)):
        return None  # several ids in a cell (a slash is a separator but in "N/A": one per distinct value)
    # One token per cell: an entry id, or a placeholder ("N/A") that parse_previous_ids drops.
    converted: dict[object, object] = dict(zip(values, zip(values, strict=True), strict=True))
    converted.update(dict.fromkeys(set(values).difference(parse_previous_ids(values)), ()))
    return ColumnValues(converted)

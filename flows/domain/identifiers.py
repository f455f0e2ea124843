"""Normalisation of the identifiers that a person types into a form or SECAS into a workbook.

Hex identifiers (manufacturer and model ids, hardware and firmware versions, image hashes) are
compared after trimming, dropping every kind of white space (non-breaking spaces included) and
upper-casing. Leading zeros are significant: ``0102`` and ``102`` are different versions.
"""

from __future__ import annotations

import re
import unicodedata

_WHITE_SPACE = re.compile(r"\s+", flags=re.UNICODE)
_HEX = re.compile(r"[0-9A-F]+")
_NOT_WORD = re.compile(r"[\W_]+", flags=re.UNICODE)


def normalise_identifier(value: str) -> str:
    r"""Trim, drop all white space (including U+00A0 and U+202F) and upper-case.

    Never pads or strips zeros, so ``normalise_identifier(" 0102 ")`` is ``"0102"``. No Unicode
    folding beyond that: NFKC would turn a superscript or full-width zero into a "0" (more zeros than
    were typed) and is not idempotent once upper-casing has run; any white space (``\s`` covers the
    no-break and figure spaces) is simply dropped, and what is left is upper-cased.
    """
    return _WHITE_SPACE.sub("", value).upper()


ORDINARY_WHITE_SPACE = frozenset("\t\n\r")
"""The control characters that are plain white space: an identifier drops them, free text keeps them."""


def hidden_character_at(value: str) -> tuple[int, str] | None:
    """The first control, format or other invisible character of ``value`` (Unicode category "Other":
    zero-width spaces, bidi controls, soft hyphens, BOMs), with its position counted from 1; tab, CR and
    LF aside (``ORDINARY_WHITE_SPACE``)."""
    if value.isprintable():  # no "Other" (C*) character at all: the usual answer, without the loop
        return None
    for position, character in enumerate(value, start=1):
        if character not in ORDINARY_WHITE_SPACE and unicodedata.category(character).startswith("C"):
            return position, character
    return None


def non_ascii_character_at(value: str) -> tuple[int, str] | None:
    """The first character of ``value`` that is neither ASCII nor white space (a no-break space is white
    space, a Cyrillic "А" or a ligature "ﬀ" is not), with its position counted from 1."""
    if value.isascii():
        return None
    for position, character in enumerate(value, start=1):
        if not character.isascii() and not character.isspace():
            return position, character
    return None


def character_name(character: str) -> str:
    """``U+200B (ZERO WIDTH SPACE)``: a character named so that a person can tell it from a look-alike."""
    return f"U+{ord(character):04X} ({unicodedata.name(character, 'a control character')})"


def is_hex(value: str) -> bool:
    """Whether an already normalised identifier is non-empty hexadecimal."""
    return bool(_HEX.fullmatch(value))


def loose_name(value: str) -> str:
    """A name reduced for loose comparison: case, spacing and punctuation ignored."""
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", value)).casefold()


def names_agree(left: str, right: str) -> bool:
    """Whether two names (manufacturer, model, supplier) are the same but for formatting."""
    return loose_name(left) == loose_name(right)

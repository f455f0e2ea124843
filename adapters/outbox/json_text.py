"""JSON indented for people: the text ``json.dumps(value, indent=2, ensure_ascii=False,
allow_nan=False)`` writes.

The standard library encodes with an indent in pure Python, through a generator per level: for a
Teams card that cost as much as rendering it. ``indented`` writes the same text for JSON-shaped
data (dicts with string keys, lists, strings, numbers, booleans, ``None``) with one call per value
and the C string escaper; anything else is handed to ``json.dumps`` itself. The test suite checks
the two agree.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring  # the C escaper where it is built (CPython)
from typing import Any

INDENT = "  "


class _NotPlain(Exception):
    """A value ``indented`` leaves to ``json.dumps``."""


def indented(value: Any) -> str:
    try:
        parts: list[str] = []
        _write(value, parts, "\n")
        return "".join(parts)
    except _NotPlain:
        return json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)


def _write(value: Any, parts: list[str], newline: str) -> None:
    kind = type(value)
    if kind is str:
        parts.append(encode_basestring(value))
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif kind is int:
        parts.append(int.__repr__(value))
    elif kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise _NotPlain  # json.dumps raises its own ValueError for these
        parts.append(float.__repr__(value))
    elif kind is dict:
        if not value:
            parts.append("{}")
            return
        inner = newline + INDENT
        separator = "{" + inner
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            parts.append(separator)
            parts.append(encode_basestring(key))
            parts.append(": ")
            if type(item) is str:  # most values: written here, without a call
                parts.append(encode_basestring(item))
            else:
                _write(item, parts, inner)
            separator = "," + inner
        parts.append(newline + "}")
    elif kind is list or kind is tuple:
        if not value:
            parts.append("[]")
            return
        inner = newline + INDENT
        separator = "[" + inner
        for item in value:
            parts.append(separator)
            if type(item) is str:
                parts.append(encode_basestring(item))
            else:
                _write(item, parts, inner)
            separator = "," + inner
        parts.append(newline + "]")
    else:
        raise _NotPlain

"""Parsed cases kept by their stored document, so that reading an unchanged case skips pydantic.

A case is parsed from its JSON document several times per action (the operation reads it, the
message it sends reads it again), and parsing runs every notification rule again: most of the cost
of a read. The cache is keyed by response id and checked against the **document text** read from
the file on every ``get``: a hit needs the very same bytes, so a write by another store or process
(or a row replaced at the same version) can never return a stale case. The row is still read each
time; only the parse is saved.

``Case`` is mutable (operations change it and then save it), so callers get a copy whose mutable
parts (its lists, the timeline's evidence) are their own; the notification is frozen and shared.

A store that writes a document keeps the case it wrote it from (``keep``), so the next read of that
same document is not parsed either: a case's JSON round trip gives back an equal case (tested).
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import Any

from flows.domain.case import Case

DEFAULT_SIZE = 1024  # cases; an action touches one or two, a flow a handful at a time


class ParsedCases:
    """A bounded, thread-safe map of response id to (document, parsed case)."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[str, Case]] = OrderedDict()
        self._lock = threading.Lock()

    def parse(self, document: str) -> Case:
        """The case stored as ``document``: parsed once per distinct document, copied per call."""
        case = Case.model_validate_json(document)
        self._put(document, case)
        return copy_case(case)

    def keep(self, document: str, case: Case) -> None:
        """``case``, just written as ``document``: kept as if parsed from it (a copy: the caller's
        case stays the caller's)."""
        self._put(document, copy_case(case))

    def _put(self, document: str, case: Case) -> None:
        with self._lock:
            self._entries[case.response_id] = (document, case)
            self._entries.move_to_end(case.response_id)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def get(self, response_id: str, document: str) -> Case:
        with self._lock:
            entry = self._entries.get(response_id)
            if entry is not None and entry[0] == document:
                self._entries.move_to_end(response_id)
                return copy_case(entry[1])
        return self.parse(document)

    def forget(self, response_id: str) -> None:
        with self._lock:
            self._entries.pop(response_id, None)


def copy_case(case: Case) -> Case:
    """A copy the caller may change without touching the cached case (see the module's docstring)."""
    timeline = [
        entry.model_copy(update={"evidence": _copy_data(entry.evidence)}) if entry.evidence else entry
        for entry in case.timeline
    ]
    return case.model_copy(update={"problems": list(case.problems), "timeline": timeline})


_IMMUTABLE = frozenset({str, int, float, bool, type(None)})


def _copy_data(value: Any) -> Any:
    """A deep copy of JSON-shaped data (what evidence is: read from JSON, or about to be written as
    JSON), a third of ``copy.deepcopy``'s time, which a case's every read pays; any other type is
    left to ``copy.deepcopy``."""
    kind = type(value)
    if kind is dict:
        return {key: _copy_data(item) for key, item in value.items()}
    if kind is list:
        return [_copy_data(item) for item in value]
    if kind in _IMMUTABLE:
        return value
    return copy.deepcopy(value)

"""The rows under the header row as ``CplEntry`` objects: all of them valid, or an error naming the
first bad cell (sheet, Excel row, header, reason). A cell of a column no rule reads (Date Added) that
cannot be read is left out instead, and reported: it must not hold back the whole publication.

Work goes column by column and converts each distinct cell value once: a CPL repeats the same device
types, manufacturers, versions, statuses and dates thousands of times, so a 100,000-row list has far
fewer distinct values than cells. Entries are then built with ``CplEntry.model_construct``, without
pydantic validation (which would call ``normalise_identifier`` six times a row), and that is sound
because every value has already been made what validation would make of it: identifiers through
``normalise_identifier``, statuses as the enums, dates as ``date``, previous ids as tuples. A test
holds the two routes to the same result.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from itertools import repeat
from typing import Any, cast

from adapters.secas.columns import CANONICAL_FIELDS, REQUIRED_FIELDS, HeaderRow
from adapters.secas.conversion import ColumnValues, convert_column
from adapters.secas.errors import CplFormatError
from adapters.secas.values import STATUS_FIELDS, default_for
from flows.domain.cpl import CplEntry

Column = Sequence[object]
_BLANK_REQUIRED = "blank, but every row must have it (a formula saved without its value reads as blank)"


LEFT_OUT_WHEN_UNREADABLE = {"date_added": "read as no date"}
"""Fields no rule reads (shown to people only), with what a value that cannot be read becomes: the
field's default, as for a blank cell, reported, not a reason to refuse the publication. A refused
publication holds back every entry in it, an emergency one among them, until SECAS mends the file."""


def build_entries(
    columns: Sequence[Column], header: HeaderRow, sheet: str, where: str
) -> tuple[dict[str, CplEntry], list[str]]:
    """Entries by id, in sheet order, from the body columns of a sheet (``columns[i]`` is sheet column
    ``i`` below the header), and the cells left out (``LEFT_OUT_WHEN_UNREADABLE``), each said where
    and why."""
    fields = [field for field in CANONICAL_FIELDS if field in header.columns]
    chosen = [columns[header.columns[field]] for field in fields]
    tables = [convert_column(field, column) for field, column in zip(fields, chosen, strict=True)]
    unreadable = [
        (position, table.problems)
        for position, (field, table) in enumerate(zip(fields, tables, strict=True))
        if field in LEFT_OUT_WHEN_UNREADABLE and table.problems
    ]
    for position, problems in unreadable:
        table = tables[position]
        tables[position] = replace(table, blanks=table.blanks | problems.keys(), problems={})
    kept = _non_blank_rows(chosen, tables)
    if kept is not None:
        chosen = [tuple(column[index] for index in kept) for column in chosen]

    def excel_row(index: int) -> int:
        return header.index + 2 + (index if kept is None else kept[index])

    unread = [
        f"sheet {sheet!r}, row {excel_row(index)}, column {header.header_of(fields[position])!r}: "
        f"{reason}, {LEFT_OUT_WHEN_UNREADABLE[fields[position]]}"
        + (f" (also in {more} more row{'s' if more > 1 else ''})" if (more := count - 1) else "")
        for index, position, count, reason in sorted(
            (chosen[position].index(value), position, chosen[position].count(value), reason)
            for position, problems in unreadable
            for value, reason in problems.items()
            if value in chosen[position]  # not only on rows dropped as blank
        )
    ]

    failures: list[tuple[int, int, str]] = []
    for position, (field, column, table) in enumerate(zip(fields, chosen, tables, strict=True)):
        failures += _failures(position, field, column, table)
    if failures:
        index, position, reason = min(failures)
        raise _row_error(where, sheet, excel_row(index), header.header_of(fields[position]), reason)

    values = [_values(*triple) for triple in zip(fields, chosen, tables, strict=True)]
    entry_ids = values[0]  # CANONICAL_FIELDS starts with the (required) entry id
    # Every entry gets every field; those without a column keep their default, placed first in each
    # entry's __dict__ (whose order repr follows).
    defaults: dict[str, Any] = {f: default_for(f) for f in CANONICAL_FIELDS if f not in header.columns}
    count = len(entry_ids)
    rows = zip(*(repeat(value, count) for value in defaults.values()), *values, strict=True)
    entries = _assembled((*defaults, *fields), rows, count)
    # The index by id doubles as the check for repeated ids (a set of them would cost as much).
    by_id = dict(zip(cast(Sequence[str], entry_ids), entries, strict=True))
    if len(by_id) != count:
        _duplicate_id(entry_ids, excel_row, where, sheet, header.header_of("entry_id"))
    return by_id, unread


_NEW_ENTRY = CplEntry.__new__
_SET = object.__setattr__


def _assembled(
    names: tuple[str, ...], rows: Iterable[tuple[object, ...]], count: int
) -> tuple[CplEntry, ...]:
    """``CplEntry`` objects from rows of values already converted and checked (``names`` says which
    field each value is), set as ``model_construct`` sets them but without its per-field loop.

    Each step runs over all entries at once through ``map`` with C callables, with no Python call per
    entry: on a 100,000-row list that helps pay for the cell-span check. A test in
    ``tests/test_cpl_reader.py`` holds the result to what validation makes.
    """
    entries = tuple(map(_NEW_ENTRY, repeat(CplEntry, count)))
    dicts = map(dict, map(zip, repeat(names), rows))
    _each(entries, "__dict__", dicts)
    # One set of field names shared by all entries as their ``model_fields_set``: a frozen model never
    # changes it, and its own set per entry would double the memory a 100,000-row list takes.
    _each(entries, "__pydantic_fields_set__", repeat(set(CANONICAL_FIELDS)))
    _each(entries, "__pydantic_extra__", repeat(None))
    _each(entries, "__pydantic_private__", repeat(None))
    return entries


def _each(entries: tuple[CplEntry, ...], name: str, values: Iterable[object]) -> None:
    """Set attribute ``name`` of each entry to the next value, bypassing the frozen model's guard."""
    deque(map(_SET, entries, repeat(name), values), maxlen=0)  # deque(maxlen=0): run the map, keep nothing


def _values(field: str, column: Column, table: ColumnValues) -> Column:
    """The column's cells as the field's values."""
    if table.unchanged:
        return column
    if table.one_token_each:
        # Each cell's own 1-tuple unless it is a placeholder: one pass, in C, with no table of the ids.
        return tuple(map(table.converted.get, column, zip(column)))
    converted = table.converted
    if table.blanks:
        converted = {**converted, **dict.fromkeys(table.blanks, default_for(field))}
    # A column whose every value converts to an equal one is used as it is. (A status equals its
    # text, "EPCL" == EpclStatus.EPCL, but must become the enum.)
    if field not in STATUS_FIELDS and all(map(operator.eq, converted, converted.values())):
        return column
    return tuple(map(converted.__getitem__, column))


def _non_blank_rows(columns: Sequence[Column], tables: Sequence[ColumnValues]) -> list[int] | None:
    """The indices of the rows with something in a CPL column, or None when no row is blank.

    A blank row has a blank entry id, so only rows with one are looked at across every column.
    """
    blank_ids = tables[0].blanks
    if not blank_ids:
        return None
    blank = {
        index
        for index, value in enumerate(columns[0])
        if value in blank_ids
        and all(column[index] in table.blanks for column, table in zip(columns, tables, strict=True))
    }
    return [index for index in range(len(columns[0])) if index not in blank] if blank else None


def _failures(position: int, field: str, column: Column, table: ColumnValues) -> list[tuple[int, int, str]]:
    """(first row index, column position, reason) for each value of a column that cannot be used."""
    failures = [(column.index(value), position, reason) for value, reason in table.problems.items()]
    if field in REQUIRED_FIELDS and table.blanks:
        first = next((index for index, value in enumerate(column) if value in table.blanks), None)
        if first is not None:
            failures.append((first, position, _BLANK_REQUIRED))
    return failures


def _duplicate_id(
    entry_ids: Column, excel_row: Callable[[int], int], where: str, sheet: str, column: str
) -> None:
    first_index: dict[object, int] = {}
    for index, entry_id in enumerate(entry_ids):
        if entry_id in first_index:
            reason = f"entry id {entry_id!r} appears again (first in row {excel_row(first_index[entry_id])})"
            raise _row_error(where, sheet, excel_row(index), column, reason)
        first_index[entry_id] = index


def _row_error(where: str, sheet: str, row: int, column: str, reason: str) -> CplFormatError:
    message = f"{where}sheet {sheet!r}, row {row}, column {column!r}: {reason}"
    return CplFormatError(message, sheet=sheet, row=row, column=column)

"""Which column holds which CPL field: header spellings, matched loosely, and the header row itself.

Headers are compared after ``loose_name`` (case, spacing and punctuation ignored), so "Manufacturer
ID", "manufacturer_id" and "MANUFACTURER-ID" are one spelling. The defaults below cover the
published layout and likely variants of it; settings (``ReaderSettings.aliases``) add more per field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flows.domain.cpl import CplEntry
from flows.domain.identifiers import loose_name

CANONICAL_FIELDS: tuple[str, ...] = tuple(CplEntry.model_fields)
REQUIRED_FIELDS: frozenset[str] = frozenset(
    {
        "entry_id",
        "device_type",
        "manufacturer_id",
        "model_id",
        "hardware_version",
        "firmware_version",
        "s1sp",
        "epcl_status",
        "cpl_status",
    }
)
SMETS1_MARKERS: tuple[str, ...] = ("s1sp", "epcl_status")
"""Fields only the SMETS1 list has: a sheet with them (and the required ones) is the SMETS1 list."""

DEFAULT_ALIASES: Mapping[str, tuple[str, ...]] = {
    "entry_id": ("CPL Entry ID", "Entry ID", "CPL Entry Identifier", "CPL ID"),
    "device_type": ("Device Type", "Type"),
    "manufacturer_name": ("Manufacturer Name", "Manufacturer"),
    "manufacturer_id": ("Manufacturer Identifier", "Manufacturer ID", "Mfr ID"),
    "model_name": ("Model Name", "Model"),
    "model_id": ("Model Identifier", "Model ID"),
    "hardware_version": ("Hardware Version", "HW Version", "Hardware", "HW"),
    "firmware_version": ("Firmware Version", "FW Version", "Firmware", "FW"),
    "smets_version": ("SMETS/CHTS Version", "SMETS Version", "CHTS Version", "SMETS"),
    "s1sp": ("SMETS1 Service Provider", "S1SP", "Service Provider", "S1 Service Provider"),
    "epcl_status": ("EPCL Status", "EPCL"),
    "cpl_status": ("CPL Status", "Status"),
    "date_added": ("Date Added", "Added", "Date Added to CPL"),
    "previous_entry_ids": (
        "Previous CPL Entry IDs",
        "Previous Entry IDs",
        "Previous CPL Entry ID",
        "Previous Entry ID",
        "Previous IDs",
    ),
    "image_hash": ("Manufacturer Image Hash", "Image Hash", "Firmware Image Hash", "Hash"),
    "secas_reference": ("SECAS Reference", "SECAS Ref", "Reference"),
}

MIN_HEADER_FIELDS = 3
"""A row naming fewer known fields than this is not taken for a header row."""


@dataclass(frozen=True)
class HeaderRow:
    """The header row of a sheet: where it is and which column holds each field it names."""

    index: int
    """0-based row index within the sheet."""
    columns: Mapping[str, int]
    """Canonical field -> 0-based column index."""
    cells: tuple[str, ...]
    """Every cell of the row as trimmed text ("" where blank or not text)."""
    duplicates: Mapping[str, tuple[str, ...]]
    """Fields that two columns name equally well (the same spelling twice), with their headers."""

    @property
    def headers(self) -> tuple[str, ...]:
        """The non-blank header cells in column order, for messages."""
        return tuple(cell for cell in self.cells if cell)

    def header_of(self, field: str) -> str:
        return self.cells[self.columns[field]]

    def missing(self, fields: frozenset[str] | Sequence[str]) -> list[str]:
        """The given fields this row has no column for, in canonical order."""
        return [field for field in CANONICAL_FIELDS if field in fields and field not in self.columns]


class HeaderMatcher:
    """Maps header cells to canonical fields through configured spellings and the defaults.

    When two columns name the same field, the better spelling wins: a configured one over a default
    one, an earlier default over a later ("Device Type" over "Type"). The same spelling twice is a
    duplicate the reader refuses.
    """

    def __init__(self, extra_aliases: Mapping[str, Sequence[str]] | None = None) -> None:
        extra = extra_aliases or {}
        unknown = sorted(set(extra) - set(CANONICAL_FIELDS))
        if unknown:
            raise ValueError(f"aliases for unknown fields {unknown}; known fields: {list(CANONICAL_FIELDS)}")
        self._spellings: dict[str, tuple[str, ...]] = {
            field: tuple(dict.fromkeys((*extra.get(field, ()), *DEFAULT_ALIASES.get(field, ()), field)))
            for field in CANONICAL_FIELDS
        }
        lookup: dict[str, tuple[str, int]] = {}
        # Defaults first and configured spellings last, so that a configured one takes over a loose
        # name; a loose name keeps the field's best (lowest) rank.
        for field in CANONICAL_FIELDS:
            for rank, spelling in reversed(list(enumerate(self._spellings[field]))):
                if spelling not in extra.get(field, ()):
                    lookup[loose_name(spelling)] = (field, rank)
        for field, spellings in extra.items():
            for spelling in spellings:
                lookup[loose_name(spelling)] = (field, self._spellings[field].index(spelling))
        lookup.pop("", None)
        self._lookup = lookup

    def spellings(self, field: str) -> tuple[str, ...]:
        """How a field's header may be written, best first (configured spellings, then defaults)."""
        return self._spellings[field]

    def field_of(self, cell: object) -> str | None:
        found = self._lookup.get(loose_name(cell)) if isinstance(cell, str) else None
        return None if found is None else found[0]

    def read_header(self, index: int, cells: Sequence[object]) -> HeaderRow:
        texts = tuple(cell.strip() if isinstance(cell, str) else "" for cell in cells)
        best: dict[str, tuple[int, int]] = {}  # field -> (rank, column)
        duplicates: dict[str, tuple[str, ...]] = {}
        for position, text in enumerate(texts):
            found = self._lookup.get(loose_name(text)) if text else None
            if found is None:
                continue
            field, rank = found
            if field not in best or rank < best[field][0]:
                best[field] = (rank, position)
                duplicates.pop(field, None)
            elif rank == best[field][0]:
                duplicates[field] = (*duplicates.get(field, (texts[best[field][1]],)), text)
        columns = {field: position for field, (_, position) in best.items()}
        return HeaderRow(index, columns, texts, duplicates)

    def find_header(self, rows: Sequence[Sequence[object]]) -> HeaderRow | None:
        """The row among ``rows`` that names the most known fields (the first, on a tie), if any
        names at least ``MIN_HEADER_FIELDS``."""
        best: HeaderRow | None = None
        for index, cells in enumerate(rows):
            candidate = self.read_header(index, cells)
            if len(candidate.columns) >= MIN_HEADER_FIELDS and (
                best is None or len(candidate.columns) > len(best.columns)
            ):
                best = candidate
        return best

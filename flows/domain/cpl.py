"""The Central Products List as the domain sees it: entries, device models and publications."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from enum import StrEnum
from functools import cached_property
from operator import attrgetter
from typing import Annotated, Any, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from flows.domain.identifiers import normalise_identifier

Identifier = Annotated[str, AfterValidator(normalise_identifier)]
"""A hex identifier or version, normalised on the way in (see ``normalise_identifier``)."""


class EpclStatus(StrEnum):
    EPCL = "EPCL"
    NON_EPCL = "Non-EPCL"


class CplStatus(StrEnum):
    ACTIVE = "Active"
    CANCELLED = "Cancelled"
    EXPIRED = "Expired"
    WITHDRAWN = "Withdrawn"


NEVER_LOADABLE = frozenset({CplStatus.WITHDRAWN, CplStatus.CANCELLED, CplStatus.EXPIRED})


class DeviceModel(NamedTuple):
    """What identifies a device model independent of its firmware."""

    device_type: str
    manufacturer_id: str
    model_id: str
    hardware_version: str


class DeviceModelCombination(NamedTuple):
    """A device model with one firmware version: the unit the SMI is keyed by."""

    device_type: str
    manufacturer_id: str
    model_id: str
    hardware_version: str
    firmware_version: str

    @property
    def key(self) -> str:
        """A stable, readable key for stores and idempotency."""
        return "/".join(self)


class CplEntry(BaseModel):
    """One SMETS1 row of a CPL publication."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entry_id: str = Field(min_length=1)
    device_type: Identifier
    manufacturer_name: str
    manufacturer_id: Identifier
    model_name: str
    model_id: Identifier
    hardware_version: Identifier
    firmware_version: Identifier
    smets_version: str = ""
    s1sp: Identifier
    epcl_status: EpclStatus
    cpl_status: CplStatus
    date_added: date | None = None
    previous_entry_ids: tuple[str, ...] = ()
    image_hash: Identifier = ""
    secas_reference: Identifier = ""

    @property
    def device_model(self) -> DeviceModel:
        return DeviceModel(self.device_type, self.manufacturer_id, self.model_id, self.hardware_version)

    @property
    def dmc(self) -> DeviceModelCombination:
        return DeviceModelCombination(*self.device_model, self.firmware_version)

    @property
    def is_emergency(self) -> bool:
        """A Non-EPCL entry: added through the emergency (security) route."""
        return self.epcl_status is EpclStatus.NON_EPCL

    @property
    def is_loadable(self) -> bool:
        """Only an active entry may ever reach the SMI."""
        return self.cpl_status not in NEVER_LOADABLE


class CplPublication(BaseModel):
    """One published CPL file, reduced to its SMETS1 entries, with where it came from."""

    model_config = ConfigDict(frozen=True)

    source_sha256: str
    source_name: str = ""
    published_at: datetime | None = None
    entries: tuple[CplEntry, ...]
    unread: tuple[str, ...] = Field(default=(), exclude=True)
    """Cells the reader could not read and left out, each with where it is and why (a Date Added that
    is not a date: no rule reads it). Reported by the sync that read the file; not kept with it."""

    @classmethod
    def indexed(
        cls,
        by_id: dict[str, CplEntry],
        *,
        source_sha256: str,
        source_name: str = "",
        published_at: datetime | None = None,
        unread: tuple[str, ...] = (),
    ) -> CplPublication:
        """A publication of the entries of ``by_id`` (in its order), each under its own ``entry_id``,
        keeping ``by_id`` as the index ``by_id()`` returns: a reader that built one to find repeated
        ids spares the first caller building it again (100,000 entries: a tenth of a second)."""
        publication = cls(
            source_sha256=source_sha256,
            source_name=source_name,
            published_at=published_at,
            entries=tuple(by_id.values()),
            unread=unread,
        )
        publication.__dict__["_index_by_id"] = by_id  # where the cached_property keeps its value
        return publication

    def by_id(self) -> Mapping[str, CplEntry]:
        return self._index_by_id

    def emergency_entries(self) -> Iterator[CplEntry]:
        return iter(self._emergency)

    def emergency_candidates(self, secas_reference: str, device_model: DeviceModel) -> list[CplEntry]:
        """Non-EPCL entries with this SECAS reference or this device model, in file order."""
        # Positions in ``_emergency``, not a pass over it: a case's look-up costs its few candidates,
        # not every emergency entry of the publication (which grows with the cases).
        by_reference = self._emergency_by_reference.get(secas_reference, ()) if secas_reference else ()
        chosen = set(by_reference).union(self._emergency_by_model.get(device_model, ()))
        emergency = self._emergency
        return [emergency[position] for position in sorted(chosen)]

    def on_epcl(self, dmc: DeviceModelCombination) -> CplEntry | None:
        """The active EPCL entry listing exactly this combination (the last in the file), or None:
        a combination suppliers may upgrade to by the usual route."""
        entries = self._active_epcl_by_dmc.get(dmc)
        return entries[-1] if entries else None

    def reissue_of(self, entry: CplEntry) -> CplEntry | None:
        """The entry that re-issues ``entry``: the same device model combination under another id,
        Non-EPCL and loadable (the last in the file if several), or None."""
        same_model = (
            self._emergency[position] for position in self._emergency_by_model.get(entry.device_model, ())
        )
        reissues = [
            other
            for other in same_model
            if other.entry_id != entry.entry_id and other.dmc == entry.dmc and other.is_loadable
        ]
        return reissues[-1] if reissues else None

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> CplPublication:
        """A copy whose indexes are built afresh: the entries may be the ones that changed."""
        copy = super().model_copy(update=update, deep=deep)
        for name in _CACHED_INDEXES:
            copy.__dict__.pop(name, None)
        return copy

    # A publication never changes once read, so its indexes are built once, on first use: every case
    # assessment looks entries up, and scanning 100,000 rows per case would make the bridge quadratic.

    @cached_property
    def _index_by_id(self) -> dict[str, CplEntry]:
        # Built in C (no Python loop over 100,000 entries); a repeated id keeps its last entry, as a
        # dict display would.
        return dict(zip(map(_ENTRY_ID, self.entries), self.entries, strict=True))

    @cached_property
    def _emergency(self) -> tuple[CplEntry, ...]:
        return tuple(entry for entry in self.entries if entry.is_emergency)

    @cached_property
    def _emergency_by_reference(self) -> dict[str, list[int]]:
        """Positions in ``_emergency`` of the entries of each SECAS reference, in file order."""
        index: dict[str, list[int]] = {}
        for position, entry in enumerate(self._emergency):
            if entry.secas_reference:
                index.setdefault(entry.secas_reference, []).append(position)
        return index

    @cached_property
    def _emergency_by_model(self) -> dict[DeviceModel, list[int]]:
        """Positions in ``_emergency`` of the entries of each device model, in file order."""
        index: dict[DeviceModel, list[int]] = {}
        for position, entry in enumerate(self._emergency):
            index.setdefault(entry.device_model, []).append(position)
        return index

    @cached_property
    def _active_epcl_by_dmc(self) -> dict[DeviceModelCombination, list[CplEntry]]:
        # Built only when a case finds no emergency entry (most of a publication's entries are EPCL).
        index: dict[DeviceModelCombination, list[CplEntry]] = {}
        for entry in self.entries:
            if not entry.is_emergency and entry.is_loadable:
                index.setdefault(entry.dmc, []).append(entry)
        return index

    def predecessors(self, entry: CplEntry) -> list[CplEntry]:
        """The entries an entry lists as its predecessors that this publication has, in listed order."""
        index = self.by_id()
        return [index[previous] for previous in entry.previous_entry_ids if previous in index]

    def predecessor_firmware(self, entry: CplEntry) -> set[str]:
        """Firmware versions of the entry's listed predecessors of its own device model: one of another
        model (a slip in the list) says nothing about which firmware this model is upgraded from."""
        return {
            previous.firmware_version
            for previous in self.predecessors(entry)
            if previous.device_model == entry.device_model
        }


_ENTRY_ID = attrgetter("entry_id")
_CACHED_INDEXES = (
    "_index_by_id", "_emergency", "_emergency_by_reference", "_emergency_by_model",
    "_active_epcl_by_dmc",
)  # fmt: skip


NO_PREVIOUS_IDS = frozenset({"N/A", "NA", "NONE", "-"})
"""What a previous-ids cell holds (in any letter case) when an entry has no predecessor."""


_PREVIOUS_ID = re.compile(r"N/A(?![^,;/\s])|[^,;/\s]+", flags=re.IGNORECASE)
"""A token between separators (commas, semicolons, slashes, any white space, line breaks included);
"N/A" is one token, never split at its slash."""


def parse_previous_ids(raw: str | Iterable[str]) -> tuple[str, ...]:
    """``"S1-000110, S1-000111"``, ``"S1-000110 / S1-000111"``, one id per line, or ``"N/A"`` as a
    tuple of entry ids (an iterable is taken as the cells' tokens, each trimmed)."""
    parts = _PREVIOUS_ID.findall(raw) if isinstance(raw, str) else (part.strip() for part in raw)
    return tuple(part for part in parts if part and part.upper() not in NO_PREVIOUS_IDS)

"""What changed between two CPL publications, in the terms the process reacts to."""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping
from itertools import compress, repeat
from typing import Any, cast

from pydantic import BaseModel, ConfigDict

from flows.domain.cpl import CplEntry, CplPublication, EpclStatus


class FieldChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    old: Any
    new: Any


class EntryChange(BaseModel):
    """An entry present in both publications whose fields differ."""

    model_config = ConfigDict(frozen=True)

    entry_id: str
    before: CplEntry
    after: CplEntry
    fields: tuple[FieldChange, ...]

    def changed(self, field: str) -> bool:
        return any(change.field == field for change in self.fields)


IDENTITY_FIELDS = (
    "device_type", "manufacturer_id", "model_id", "hardware_version", "firmware_version", "s1sp",
    "image_hash", "secas_reference",
)  # fmt: skip
"""What identifies the firmware an entry allows (the fields compared exactly with a notification): a
change to one of them changes what a case loaded from the entry stands on."""


class PublicationDiff(BaseModel):
    """Added, removed and changed entries, with the two changes that matter most picked out:
    ``withdrawn`` (CPL status became Withdrawn, Cancelled or Expired) and ``promoted`` (moved from
    Non-EPCL to EPCL: fast-track PPCT done)."""

    model_config = ConfigDict(frozen=True)

    added: tuple[CplEntry, ...] = ()
    removed: tuple[CplEntry, ...] = ()
    changed: tuple[EntryChange, ...] = ()

    @property
    def withdrawn(self) -> tuple[EntryChange, ...]:
        return tuple(
            change
            for change in self.changed
            if change.changed("cpl_status") and change.before.is_loadable and not change.after.is_loadable
        )

    @property
    def promoted(self) -> tuple[EntryChange, ...]:
        return tuple(
            change
            for change in self.changed
            if change.before.epcl_status is EpclStatus.NON_EPCL
            and change.after.epcl_status is EpclStatus.EPCL
        )

    @property
    def reidentified(self) -> tuple[EntryChange, ...]:
        """Emergency entries whose identifying fields (``IDENTITY_FIELDS``) changed under the same id."""
        return tuple(
            change
            for change in self.changed
            if change.before.is_emergency and any(change.changed(field) for field in IDENTITY_FIELDS)
        )

    def identity_changes(self, change: EntryChange) -> list[FieldChange]:
        """The identifying fields of one change, in the order of ``IDENTITY_FIELDS``."""
        return [field for name in IDENTITY_FIELDS for field in change.fields if field.field == name]

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def summary(self) -> dict[str, list[str]]:
        """Entry ids per kind of change: what a log line or a card shows."""
        return {
            "added": [entry.entry_id for entry in self.added],
            "removed": [entry.entry_id for entry in self.removed],
            "changed": [change.entry_id for change in self.changed],
            "withdrawn": [change.entry_id for change in self.withdrawn],
            "promoted": [change.entry_id for change in self.promoted],
        }


def diff_publications(old: CplPublication | None, new: CplPublication) -> PublicationDiff:
    """Compare two publications by CPL Entry ID; with no previous one, everything is added."""
    before = old.by_id() if old is not None else {}
    after = new.by_id()
    # A publication has 100,000 entries: the work below runs in C (map and compress over the dicts' own
    # methods) and looks each id up once, since every lookup costs a few cache misses.
    news = list(after.values())
    olds = list(map(before.get, after))  # None for an id that is new
    shared = list(map(operator.is_not, olds, repeat(None)))
    return PublicationDiff(
        added=tuple(compress(news, map(operator.not_, shared))),
        removed=_removed(before, after, sum(shared)),
        changed=_changed(cast(list[CplEntry], list(compress(olds, shared))), list(compress(news, shared))),
    )


def _removed(
    before: Mapping[str, CplEntry], after: Mapping[str, CplEntry], shared: int
) -> tuple[CplEntry, ...]:
    """The entries of ``before`` whose id ``after`` lacks, given how many ids the two share."""
    if shared == len(before):
        return ()  # every id of ``before`` is shared: nothing to look up
    return tuple(compress(before.values(), map(operator.not_, map(after.__contains__, before))))


def _changed(olds: list[CplEntry], news: list[CplEntry]) -> tuple[EntryChange, ...]:
    """What changed between pairs of entries with the same id (``olds[i]`` and ``news[i]``)."""
    return tuple(
        EntryChange(entry_id=after.entry_id, before=before, after=after, fields=_field_changes(before, after))
        for before, after in _maybe_changed(olds, news)
        if before != after
    )


_FIELDS = operator.attrgetter("__dict__")


def _maybe_changed(olds: list[CplEntry], news: list[CplEntry]) -> Iterator[tuple[CplEntry, CplEntry]]:
    """The pairs ``(olds[i], news[i])``, except those surely equal.

    Two ``CplEntry`` objects (that exact class) with equal ``__dict__`` are equal: model ``==`` checks
    the class, private attributes and extras (``CplEntry`` has neither) and then compares the two
    ``__dict__`` first. Comparing the dicts in C, without a Python ``__eq__`` call per pair, is most of
    the time saved; the few pairs left are confirmed with ``==`` by the caller."""
    pairs = zip(olds, news, strict=True)
    if not set(map(type, olds)).union(map(type, news)) <= {CplEntry}:
        return pairs  # a subclass of CplEntry: leave every pair to its own ==
    same = map(operator.eq, map(_FIELDS, olds), map(_FIELDS, news))
    return compress(pairs, map(operator.not_, same))


def _field_changes(old: CplEntry, new: CplEntry) -> tuple[FieldChange, ...]:
    return tuple(
        FieldChange(field=name, old=getattr(old, name), new=getattr(new, name))
        for name in CplEntry.model_fields
        if getattr(old, name) != getattr(new, name)
    )

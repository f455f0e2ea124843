"""What changed between two CPL publications, in the terms the process reacts to."""

from __future__ import annotations

from typing import Any

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
    added = tuple(entry for entry_id, entry in after.items() if entry_id not in before)
    removed = tuple(entry for entry_id, entry in before.items() if entry_id not in after)
    changed = []
    for entry_id, new_entry in after.items():
        old_entry = before.get(entry_id)
        if old_entry is None or old_entry == new_entry:
            continue
        changed.append(
            EntryChange(
                entry_id=entry_id,
                before=old_entry,
                after=new_entry,
                fields=_field_changes(old_entry, new_entry),
            )
        )
    return PublicationDiff(added=added, removed=removed, changed=tuple(changed))


def _field_changes(old: CplEntry, new: CplEntry) -> tuple[FieldChange, ...]:
    return tuple(
        FieldChange(field=name, old=getattr(old, name), new=getattr(new, name))
        for name in CplEntry.model_fields
        if getattr(old, name) != getattr(new, name)
    )

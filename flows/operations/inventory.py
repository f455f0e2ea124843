"""Operations on the Smart Metering Inventory: load a case's device model, withdraw one."""

from __future__ import annotations

from typing import Any

from flows.domain.case import CaseState
from flows.engine.registry import ActionContext
from flows.errors import BadInput
from flows.ports import CaseStore, FindsByEntry, Inventory, InventoryRecord, InventoryStatus, PublicationStore


class InventoryOperations:
    def __init__(self, inventory: Inventory, cases: CaseStore, publications: PublicationStore) -> None:
        self._inventory = inventory
        self._cases = cases
        self._publications = publications

    def load(self, context: ActionContext, response_id: str, entry_id: str) -> dict[str, Any]:
        """Upsert the CPL entry's device model combination for a case; repeating it changes nothing."""
        stored = self._publications.latest()
        entry = stored.publication.by_id().get(entry_id) if stored else None
        if entry is None:
            raise BadInput(f"CPL entry {entry_id!r} is not on the latest publication")
        if not entry.is_loadable or not entry.is_emergency:
            raise BadInput(f"CPL entry {entry_id} is {entry.epcl_status} {entry.cpl_status}: never loaded")
        record = InventoryRecord(
            **entry.dmc._asdict(), cpl_entry_id=entry.entry_id, s1sp=entry.s1sp, response_id=response_id
        )
        outcome = self._inventory.upsert(
            record, idempotency_key=context.idempotency_key, attempt=context.attempt
        )
        # ``combination``: what was written, field by field, for the case to record (``cases.mark_loaded``)
        return {
            "outcome": outcome.value, "dmc": entry.dmc.key, "combination": entry.dmc._asdict(),
            "cpl_entry_id": entry.entry_id,
        }  # fmt: skip

    def withdraw(self, context: ActionContext, response_id: str) -> dict[str, Any]:
        """Withdraw the combination a case loaded (its CPL entry was withdrawn).

        The SMI's records say what was loaded from the case's CPL entries (the entry's combination,
        which an operator's acceptance may have made differ from the one notified; a re-issue the case
        followed since, still held under the entry it replaced when it differed); those are withdrawn,
        found even when a later publication no longer lists the entry. A case never loaded, or a
        combination since loaded from an entry not the case's (another supplier's notification),
        leaves the SMI as it is.
        """
        case = self._cases.get(response_id)
        if case is None:
            raise BadInput(f"no case for response {response_id!r}")
        entries = case.loaded_from()
        if not entries or case.state not in (CaseState.LOADED, CaseState.NEEDS_ATTENTION):
            return {"withdrawn": False, "reason": f"the case is {case.state.value}: nothing of it was loaded"}
        loaded = [record.dmc for record in self._loaded_from(entries)]
        for dmc in loaded:
            key = f"{context.idempotency_key}/{dmc.key}"
            self._inventory.withdraw(dmc, idempotency_key=key, attempt=context.attempt)
        return {
            "withdrawn": bool(loaded),
            "dmcs": [dmc.key for dmc in loaded],
            "cpl_entry_id": case.cpl_entry_id,
        }

    def _loaded_from(self, entries: set[str]) -> list[InventoryRecord]:
        """The active records loaded from ``entries``: asked for where the inventory can find them
        (the embedded one, by an index), else sorted out of every record (the SMI has no such query)."""
        if isinstance(self._inventory, FindsByEntry):
            return self._inventory.active_from(entries)
        return [
            record
            for record in self._inventory.all()
            if record.cpl_entry_id in entries and record.status is InventoryStatus.ACTIVE
        ]

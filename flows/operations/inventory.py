"""Operations on the Smart Metering Inventory: load a case's device model, withdraw one."""

from __future__ import annotations

from typing import Any

from flows.domain.cpl import DeviceModelCombination
from flows.engine.registry import ActionContext
from flows.errors import BadInput
from flows.ports import CaseStore, Inventory, InventoryRecord, PublicationStore


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
        outcome = self._inventory.upsert(record, idempotency_key=context.idempotency_key)
        return {"outcome": outcome.value, "dmc": entry.dmc.key, "cpl_entry_id": entry.entry_id}

    def withdraw(self, context: ActionContext, response_id: str) -> dict[str, Any]:
        """Withdraw the combination a case loaded (its CPL entry was withdrawn)."""
        case = self._cases.get(response_id)
        if case is None or case.notification is None:
            raise BadInput(f"no loaded case for response {response_id!r}")
        dmc: DeviceModelCombination = case.notification.dmc
        withdrawn = self._inventory.withdraw(dmc, idempotency_key=context.idempotency_key)
        return {"withdrawn": withdrawn, "dmc": dmc.key}

"""The flows' business rules past the sample scenario (found by review): what a withdrawal takes out
of the SMI. Each scenario goes through the command line, on publications made from the sample's."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.ports import InventoryStatus
from tests.support.cpl_world import CplWorld, entry


@pytest.fixture
def world(tmp_path: Path) -> CplWorld:
    return CplWorld(tmp_path)


def test_a_withdrawal_takes_out_what_was_loaded_not_what_was_notified(world: CplWorld) -> None:
    """The operator accepted the CPL's firmware over the notified one: the SMI holds the CPL's."""
    assert world.notify("2026-11-20T08:00:00Z", 301, new_firmware_version="01020012") == 0
    assert world.publish("2026-11-20T09:05:00Z", [entry()], "20 November 2026 09:00") == 0
    assert world.case(301).state.value == "needs_attention"
    assert world.cli(
        "2026-11-20T09:30:00Z", "cases", "decide", "301", "--accept", "--reason", "SECAS: 01020011 is right",
        "--operator", "Olu",
    ) == 0  # fmt: skip
    [loaded] = world.smi()
    assert (loaded.firmware_version, loaded.status) == ("01020011", InventoryStatus.ACTIVE)
    assert (
        world.publish("2026-11-21T09:05:00Z", [entry(cpl_status="Withdrawn")], "21 November 2026 09:00") == 0
    )
    assert world.case(301).state.value == "withdrawn"
    [record] = world.smi()
    assert record.status is InventoryStatus.WITHDRAWN


def test_a_case_never_loaded_withdraws_nothing_another_case_loaded(world: CplWorld) -> None:
    """Two suppliers notified one combination; one loaded it, the other's entry (a typo) is withdrawn."""
    world.notify("2026-11-20T08:00:00Z", 311)
    world.notify(
        "2026-11-20T08:10:00Z", 312, supplier="Bramble Power", supplier_party_id="90-B3-D5-1F-30-01-00-02",
        responder="tom.okafor@bramblepower.example", secas_reference="ECPL-2026-0050",
    )  # fmt: skip
    typo = entry(entry_id="S1-000400", secas_reference="ECPL-2026-0050", firmware_version="01020021")
    world.publish("2026-11-20T09:05:00Z", [entry(), typo], "20 November 2026 09:00")
    assert (world.case(311).state.value, world.case(312).state.value) == ("loaded", "needs_attention")
    withdrawn = {**typo, "cpl_status": "Withdrawn"}
    world.publish("2026-11-21T09:05:00Z", [entry(), withdrawn], "21 November 2026 09:00")
    assert (world.case(311).state.value, world.case(312).state.value) == ("loaded", "withdrawn")
    [record] = world.smi()
    assert (record.response_id, record.status) == ("311", InventoryStatus.ACTIVE)

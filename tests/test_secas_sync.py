"""The SECAS sync operation: a redelivered sync whose first delivery kept the publication but died
before its result was recorded reports the same changes again, so no entry event is lost."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.cpl_source import CplFileOrUrl
from adapters.embedded.idempotency import SqliteIdempotencyStore
from adapters.embedded.publications import SqlitePublicationStore
from adapters.embedded.sqlite import BridgeDatabase
from adapters.secas import read_cpl
from flows.domain.cpl import CplPublication
from flows.engine.registry import ActionContext
from flows.errors import BadInput
from flows.operations.secas import SecasOperations
from flows.settings import SAMPLES

NOW = datetime(2026, 11, 24, 9, 5, tzinfo=UTC)


class ScriptedSource:
    """SECAS as the sync sees it: the next answers, in order (None is a 304)."""

    def __init__(self, *answers: bytes | None) -> None:
        self.answers = list(answers)

    def fetch(self, location: str) -> bytes | None:
        return self.answers.pop(0)


def read(data: bytes, name: str) -> CplPublication:
    return read_cpl(data, name=name)


def context(key: str) -> ActionContext:
    return ActionContext("secas-sync", "run-1", "fetch", key, NOW)


def test_a_redelivered_sync_reports_the_changes_it_kept(tmp_path: Path) -> None:
    old = (SAMPLES / "cpl" / "cpl-2026-11-20.xlsx").read_bytes()
    new = (SAMPLES / "cpl" / "cpl-2026-11-24.xlsx").read_bytes()
    with BridgeDatabase(tmp_path / "bridge.sqlite3") as database:
        publications = SqlitePublicationStore(database)
        markers = SqliteIdempotencyStore(database)
        source = ScriptedSource(old, new, new, None)
        sync = SecasOperations(source, publications, read, markers)
        initial = sync.sync(context("sync/1/fetch"), "cpl.xlsx")
        assert initial["changed"] is True
        # Every active EPCL entry of a first publication is new, and counted (never listed one by one).
        epcl = [e for e in read(old, "old").entries if not e.is_emergency and e.is_loadable]
        assert initial["epcl_added"] == len(epcl) > 100
        first = sync.sync(context("sync/2/fetch"), "cpl.xlsx")  # kept; say the worker died here
        assert first["added_emergency"] == ["S1-000318", "S1-000319", "S1-000320"]
        assert first["epcl_added"] == 0  # the later publication adds emergency entries only
        again = sync.sync(context("sync/2/fetch"), "cpl.xlsx")  # redelivered: needs no download at all
        assert again == first
        another = sync.sync(context("sync/3/fetch"), "cpl.xlsx")  # a later, different sync: nothing new
        assert another == {"changed": False, "reason": "same file as the last publication"}
        assert sync.sync(context("sync/4/fetch"), "cpl.xlsx") == {"changed": False, "reason": "not modified"}


def test_a_redelivered_sync_reports_the_cells_its_first_delivery_left_out(tmp_path: Path) -> None:
    """The stored publication does not keep the cells the reader left out: the mark does, so that
    operators are told of them whichever delivery's result the run records."""
    cell = "sheet 'SMETS1', row 7, column 'Date Added': 'TBC' is not a date, read as no date"

    def read_with_a_bad_cell(data: bytes, name: str) -> CplPublication:
        return read(data, name).model_copy(update={"unread": (cell,)})

    data = (SAMPLES / "cpl" / "cpl-2026-11-20.xlsx").read_bytes()
    with BridgeDatabase(tmp_path / "bridge.sqlite3") as database:
        publications = SqlitePublicationStore(database)
        sync = SecasOperations(
            ScriptedSource(data), publications, read_with_a_bad_cell, SqliteIdempotencyStore(database)
        )
        first = sync.sync(context("sync/1/fetch"), "cpl.xlsx")  # kept; say the worker died here
        again = sync.sync(context("sync/1/fetch"), "cpl.xlsx")  # redelivered: the source answers no more
        assert first["unread_cells"] == again["unread_cells"] == [cell]


@pytest.mark.parametrize("location", ["", "  "])
def test_a_sync_without_a_location_names_the_setting(tmp_path: Path, location: str) -> None:
    """The scheduled sync reads ``BRIDGE_CPL_LOCATION``; unset, it used to read the current folder
    and fail with "Is a directory", which named nothing an operator could set."""
    with BridgeDatabase(tmp_path / "bridge.sqlite3") as database:
        sync = SecasOperations(
            CplFileOrUrl(), SqlitePublicationStore(database), read, SqliteIdempotencyStore(database)
        )
        with pytest.raises(BadInput, match="no CPL location to sync from: set BRIDGE_CPL_LOCATION"):
            sync.sync(context("sync/1/fetch"), location)

"""A bridge home driven through the command line with CPL publications made from the 2026-11-20
sample, for scenarios beyond the sample's: each publication is the sample's SMETS1 rows but the
entries the test writes itself (based on S1-000316, Corrie's GSME under ECPL-2026-0031)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from adapters.secas.reader import read_cpl
from flows.bootstrap import BridgeApp, bootstrap
from flows.cli import main
from flows.domain.case import Case
from flows.domain.cpl import CplEntry
from flows.ports import InventoryRecord
from flows.queue_message import Message
from flows.settings import SAMPLES, Settings
from flows.wiring import Parts
from tests.support.cpl_workbooks import Cell, write_cpl_workbook

FORM = json.loads((SAMPLES / "forms" / "form-definition.json").read_text(encoding="utf-8"))
QUESTION = {question["field"]: question["id"] for question in FORM["questions"]}
RESPONSE = json.loads((SAMPLES / "forms" / "responses.json").read_text(encoding="utf-8"))[0]


def _row(entry: CplEntry) -> dict[str, Cell]:
    row: dict[str, Cell] = entry.model_dump(mode="json")
    row["previous_entry_ids"] = ", ".join(entry.previous_entry_ids) or "N/A"
    row["date_added"] = entry.date_added
    return row


_SAMPLE = read_cpl((SAMPLES / "cpl" / "cpl-2026-11-20.xlsx").read_bytes(), name="sample")
_OTHER_ROWS = [_row(e) for e in _SAMPLE.entries if e.entry_id not in ("S1-000316", "S1-000317")]
_E316 = _row(_SAMPLE.by_id()["S1-000316"])


def entry(**changes: Cell) -> dict[str, Cell]:
    """S1-000316's row (GSME, Corrie, firmware 01020011, Non-EPCL, Active) with ``changes``."""
    return {**_E316, **changes}


def response(response_id: int, *, responder: str | None = None, **answers: Any) -> dict[str, Any]:
    """The sample's first form response under another id, with ``answers`` changed (by field)."""
    made: dict[str, Any] = copy.deepcopy(RESPONSE)
    made["responseId"] = response_id
    if responder:
        made["responder"] = responder
    for field, value in answers.items():
        made["answers"][QUESTION[field]] = value
    return made


class CplWorld:
    def __init__(self, folder: Path) -> None:
        self.home = folder / "home"
        self.files = folder / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        self._made = 0

    def cli(self, now: str, *args: str) -> int:
        return main(["--home", str(self.home), "--now", now, *args])

    def publish(self, now: str, rows: list[dict[str, Cell]], published: str) -> int:
        """Sync a CPL published at ``published`` (a day like '21 November 2026 09:00')."""
        return self.cli(now, "sync", "--cpl", str(self.workbook(rows, published)))

    def publish_in(self, app: BridgeApp, rows: list[dict[str, Cell]], published: str) -> None:
        """Sync such a CPL in ``app`` (a bridge with adjusted parts), and drain what it queues."""
        location = str(self.workbook(rows, published))
        app.bridge.submit(Message(type="http", flow="secas-sync", body={"location": location}))
        app.bridge.drain()

    def workbook(self, rows: list[dict[str, Cell]], published: str) -> Path:
        """A CPL workbook: the sample's other rows and ``rows``, published at ``published``."""
        self._made += 1
        path = self.files / f"cpl-{self._made}.xlsx"
        title: list[list[Cell]] = [["Central Products List"], [f"Published {published}"], []]
        write_cpl_workbook(path, [*_OTHER_ROWS, *rows], title_rows=title)
        return path

    def notify(self, now: str, response_id: int, *, responder: str | None = None, **answers: Any) -> int:
        self._made += 1
        path = self.files / f"response-{self._made}.json"
        path.write_text(json.dumps(response(response_id, responder=responder, **answers)), encoding="utf-8")
        return self.cli(now, "intake", str(path))

    def app(self, now: str, *, adjust: Callable[[Parts], None] | None = None) -> BridgeApp:
        """The bridge on this home at ``now``, with ``adjust`` changing its parts (another SMI)."""
        moment = datetime.fromisoformat(now)
        return bootstrap(Settings(home=self.home), clock=lambda: moment, adjust=adjust)

    def case(self, response_id: int) -> Case:
        with bootstrap(Settings(home=self.home)) as app:
            case = app.cases.get(str(response_id))
        assert case is not None
        return case

    def smi(self) -> list[InventoryRecord]:
        with bootstrap(Settings(home=self.home)) as app:
            return app.inventory.all()

    def cards(self) -> list[str]:
        """The operators' cards posted so far, as JSON texts."""
        return [
            path.read_text(encoding="utf-8")
            for path in sorted((self.home / "outbox" / "teams").glob("*.json"))
        ]

    def mails(self) -> list[str]:
        """The names of the e-mails sent so far (made from their idempotency keys)."""
        return sorted(path.name for path in (self.home / "outbox" / "mail").glob("*.eml"))

"""Operators hear when something does not happen: a SECAS sync that has not succeeded within the
window, and failed runs; each alert once. (A case waiting past its limit: test_scenario.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from adapters.embedded.runs import SqliteRunStore
from flows.cli import main
from flows.engine.definition import ActionStatus
from flows.engine.runs import ActionRecord, RunRecord, RunStatus
from flows.settings import SAMPLES

CPL = str(SAMPLES / "cpl" / "cpl-2026-11-20.xlsx")


def cli(home: Path, *args: str, now: str) -> int:
    return main(["--home", str(home), "--now", now, *args])


def cards(home: Path, template_text: str) -> list[dict[str, object]]:
    found = []
    for path in (home / "outbox" / "teams").glob("*.json"):
        card = json.loads(path.read_text())
        if template_text in json.dumps(card):
            found.append(card)
    return found


def watch(home: Path, now: str) -> None:
    assert cli(home, "tick", "--flow", "operations-watch", now=now) == 0


def test_a_stale_sync_is_alerted_once_per_stale_period(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli(home, "sync", "--cpl", CPL, now="2026-11-24T09:00:00Z") == 0
    watch(home, "2026-11-24T09:20:00Z")  # within the 30-minute window
    assert cards(home, "SECAS") == []
    assert cli(home, "sync", "--cpl", str(tmp_path / "moved.xlsx"), now="2026-11-24T09:25:00Z") == 1  # fails
    watch(home, "2026-11-24T09:45:00Z")  # 45 minutes since the last good download
    watch(home, "2026-11-24T10:00:00Z")  # still stale: no second alert
    stale = cards(home, "24 November 2026, 09:00")
    assert len(stale) == 1
    assert (
        cli(home, "sync", "--cpl", CPL, now="2026-11-24T10:05:00Z") == 0
    )  # SECAS is back (a same-file sync)
    watch(home, "2026-11-24T10:10:00Z")
    watch(home, "2026-11-24T11:00:00Z")  # stale again: a new period, a new alert
    assert len(cards(home, "24 November 2026, 10:05")) == 1


def test_a_bridge_that_never_synced_is_alerted(tmp_path: Path) -> None:
    home = tmp_path / "never"
    watch(home, "2026-11-24T09:00:00Z")
    (alert,) = cards(home, "SECAS CPL sync")
    assert "has never succeeded" in json.dumps(alert)


def test_each_failed_run_is_alerted_once(tmp_path: Path) -> None:
    home = tmp_path / "failed"
    assert cli(home, "sync", "--cpl", CPL, now="2026-11-24T09:00:00Z") == 0
    at = datetime(2026, 11, 24, 9, 1, tzinfo=UTC)
    with SqliteRunStore(home / "bridge.sqlite3") as runs:  # a run that failed, as the engine records one
        runs.start(
            RunRecord(run_id="run-broken", flow="emergency-load", flow_version="v", trigger={}, started_at=at)
        )
        runs.record_action(
            "run-broken",
            ActionRecord(path="each_case[2].load", status=ActionStatus.FAILED, attempts=5,
                         error="TransientError: SMI adaptor: HTTP 503", started_at=at, ended_at=at),
        )  # fmt: skip
        runs.finish("run-broken", RunStatus.FAILED, ended_at=at, error="each_case[2].load failed", keys=[])
    watch(home, "2026-11-24T09:10:00Z")
    watch(home, "2026-11-24T09:25:00Z")
    alerts = cards(home, "run-broken")
    assert len(alerts) == 1
    text = json.dumps(alerts[0])
    assert "emergency-load" in text
    assert "HTTP 503" in text

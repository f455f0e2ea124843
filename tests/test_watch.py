"""Operators hear when something does not happen: a SECAS sync that has not succeeded within the
window, and failed runs; each alert once. (A case waiting past its limit: test_scenario.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from adapters.embedded.runs import SqliteRunStore
from flows.bootstrap import bootstrap
from flows.cli import main
from flows.engine.definition import ActionStatus
from flows.engine.registry import ActionContext
from flows.engine.runs import ActionRecord, RunRecord, RunStatus
from flows.operations.monitoring import MonitoringOperations
from flows.settings import SAMPLES, Settings

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
    stale = cards(home, "no successful SECAS download")  # the watch's: the failed sync told its own
    assert len(stale) == 1 and "24 November 2026, 09:00" in json.dumps(stale)
    assert (
        cli(home, "sync", "--cpl", CPL, now="2026-11-24T10:05:00Z") == 0
    )  # SECAS is back (a same-file sync)
    watch(home, "2026-11-24T10:10:00Z")
    watch(home, "2026-11-24T11:00:00Z")  # stale again: a new period, a new alert
    assert len(cards(home, "24 November 2026, 10:05")) == 1
    assert len(cards(home, "no successful SECAS download")) == 2


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


def test_a_failing_sync_alerts_once_per_failing_streak_naming_its_error(tmp_path: Path) -> None:
    """The sync polls every five minutes: an outage, or a stale file served again, fails each poll.
    Operators hear at its first failure, with the error and the last success, not at every poll."""
    home, moved = tmp_path / "home", str(tmp_path / "moved.xlsx")
    assert cli(home, "sync", "--cpl", CPL, now="2026-11-24T09:00:00Z") == 0
    for minute in ("05", "10", "15"):
        assert cli(home, "sync", "--cpl", moved, now=f"2026-11-24T09:{minute}:00Z") == 1
    (first,) = cards(home, "has not succeeded since")
    text = json.dumps(first)
    assert "24 November 2026, 09:00" in text and "cannot read CPL file" in text and "moved.xlsx" in text
    assert cli(home, "sync", "--cpl", CPL, now="2026-11-24T09:20:00Z") == 0  # back
    assert cli(home, "sync", "--cpl", moved, now="2026-11-24T09:25:00Z") == 1  # a new streak
    assert len(cards(home, "has not succeeded since")) == 2
    assert len(cards(home, "24 November 2026, 09:20")) == 1


def test_a_sync_that_never_succeeded_says_so_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for minute in ("05", "10"):
        assert cli(home, "sync", "--cpl", str(tmp_path / "nope.xlsx"), now=f"2026-11-24T09:{minute}:00Z") == 1
    (alert,) = cards(home, "has never succeeded")
    assert "nope.xlsx" in json.dumps(alert)


def test_the_last_download_that_worked_is_found_however_many_polls_failed_since(tmp_path: Path) -> None:
    """A scan of the latest runs (200 in the bridge, 2 here) found nothing once an outage outlasted it:
    the failure alert then said "never succeeded", under a key every such outage shared."""
    home, moved = tmp_path / "home", str(tmp_path / "moved.xlsx")
    assert cli(home, "sync", "--cpl", CPL, now="2026-11-24T09:00:00Z") == 0
    for minute in ("05", "10", "15"):
        assert cli(home, "sync", "--cpl", moved, now=f"2026-11-24T09:{minute}:00Z") == 1
    now = datetime(2026, 11, 24, 9, 20, tzinfo=UTC)
    with bootstrap(Settings(home=home)) as app:
        health = MonitoringOperations(app.parts.runs, scan=2).sync_health(
            ActionContext("operations-watch", "run", "sync", "key", now), window_minutes=30
        )
    assert health["last_success"] == "2026-11-24T09:00:00+00:00" and not health["stale"]

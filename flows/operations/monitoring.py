"""Watching for what did not happen: a SECAS sync that has not succeeded lately, runs that failed.

Both read the run history, so they work the same over SQLite and Azure Tables.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flows.engine.definition import ActionStatus
from flows.engine.registry import ActionContext
from flows.engine.runs import RunStatus, RunStore

SYNC_FLOW = "secas-sync"
DOWNLOADED = "secas-sync/downloaded"
"""The run key a sync run gets when its download worked (see ``flows/definitions/secas-sync.yaml``)."""


class MonitoringOperations:
    def __init__(self, runs: RunStore, *, scan: int = 200) -> None:
        self._runs = runs
        self._scan = scan

    def sync_health(self, context: ActionContext, window_minutes: float) -> dict[str, Any]:
        """Whether a SECAS download succeeded within the window (a 304 counts: SECAS answered).

        A sync run can end Succeeded with its download failed (the failure alert handled it), so the
        download action's own status is what is read.
        """
        last = None
        # By its key first: a scan of the latest runs finds nothing once an outage has lasted longer
        # than the scan (200 polls), and the failure alert keyed by the last success would then post
        # "never succeeded" under a key every such outage shares. The scan is for histories kept
        # before the key was written.
        downloaded = self._runs.find(key=DOWNLOADED, flow=SYNC_FLOW, limit=1)
        for run in downloaded or self._runs.find(flow=SYNC_FLOW, limit=self._scan):
            fetch = run.actions.get("fetch")
            if fetch is not None and fetch.status is ActionStatus.SUCCEEDED:
                last = fetch.ended_at
                break
        stale = last is None or context.now - last > timedelta(minutes=window_minutes)
        return {
            "stale": stale,
            "last_success": last.isoformat() if last else None,
            "window_minutes": window_minutes,
        }

    def failed_runs(self, context: ActionContext, since_minutes: float) -> dict[str, Any]:
        """Runs that failed in the last ``since_minutes``: flow, run id, the failed action and why."""
        since = context.now - timedelta(minutes=since_minutes)
        failed = []
        for run in self._runs.find(status=RunStatus.FAILED, limit=self._scan):
            if run.started_at < since:
                continue
            first = next(iter(run.failed_actions()), None)
            failed.append(
                {
                    "flow": run.flow,
                    "run_id": run.run_id,
                    "action": first.path if first else "",
                    "error": (first.error or run.error or "")[:300] if first else (run.error or "")[:300],
                }
            )
        return {"runs": failed, "count": len(failed)}

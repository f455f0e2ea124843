"""How the command line shows cases and runs: rich tables for people, JSON for programs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from flows.domain.case import Case, CaseState
from flows.engine.runs import RunRecord
from flows.queue_message import Message
from flows.service import PoisonedMessage

ATTENTION_FIRST = {CaseState.NEEDS_ATTENTION: 0, CaseState.AWAITING_CPL: 1, CaseState.RECEIVED: 2}


def case_rows(cases: Sequence[Case]) -> list[dict[str, Any]]:
    """The ``cases --json`` contract: response_id, status, cpl_entry_id and problems, at least."""
    return [
        {
            "response_id": case.response_id,
            "status": case.state.value,
            "cpl_entry_id": case.cpl_entry_id,
            "problems": list(case.problems),
            "supplier": case.supplier,
            "opened_at": case.opened_at.isoformat(),
            "waiting_since": case.waited_since().isoformat(),
        }
        for case in cases
    ]


_PROGRESS = Console(stderr=True, highlight=False, soft_wrap=True)


def print_progress(message: Message, run: RunRecord) -> None:
    """One line on standard error per finished run (long commands show progress). Defined here, not in
    ``flows.cli``: worker processes are sent it by name, and ``flows.cli`` may be running as
    ``__main__``, a name that means another module in the worker."""
    what = message.event or message.type
    _PROGRESS.print(f"  {run.flow:<20} {run.status.value:<9} {what} {run.run_id[:12]}", markup=False)


MIB = 1024 * 1024


class DownloadProgress:
    """Lines on standard error as a large CPL download goes: at each tenth when the server declared
    the size (from 1 MiB up), else at each 5 MiB. A small download prints nothing."""

    def __init__(self, console: Console = _PROGRESS, *, smallest: int = MIB, step_unknown: int = 5 * MIB):
        self._console = console
        self._smallest = smallest
        self._step_unknown = step_unknown
        self._shown = 0  # the last step printed, in tenths or in steps of ``step_unknown``
        self._received = 0

    def __call__(self, received: int, total: int | None) -> None:
        if received < self._received:  # a new download
            self._shown = 0
        self._received = received
        if total is not None and total >= self._smallest:
            step = received * 10 // total
            if step > self._shown:
                self._shown = step
                self._print(
                    f"  downloading the CPL: {received / MIB:.1f} of {total / MIB:.1f} MiB ({step * 10}%)"
                )
        elif total is None:
            step = received // self._step_unknown
            if step > self._shown:
                self._shown = step
                self._print(f"  downloading the CPL: {received / MIB:.1f} MiB so far")

    def _print(self, line: str) -> None:
        self._console.print(line, markup=False, highlight=False)


def print_cases(console: Console, cases: Sequence[Case], *, now: datetime) -> None:
    table = Table(title=f"Cases ({len(cases)})")
    for column in ("response", "state", "supplier", "CPL entry", "in state for"):
        table.add_column(column, no_wrap=True)
    table.add_column("problems", overflow="fold", ratio=1)
    ordered = sorted(cases, key=lambda c: (ATTENTION_FIRST.get(c.state, 9), c.opened_at))
    for case in ordered:
        hours = (now - case.waited_since()).total_seconds() / 3600
        table.add_row(
            case.response_id,
            case.state.value,
            case.supplier,
            case.cpl_entry_id or "-",
            f"{hours:.1f} h",
            "\n".join(case.problems) or "-",
        )
    console.print(table)


def print_runs(console: Console, runs: Sequence[RunRecord]) -> None:
    table = Table(title=f"Runs ({len(runs)})")
    # The run id on one line, whatever the width: it is what `runs show` takes, copied whole; the
    # other columns fold around it (folded, a piece of it was all a copy took).
    table.add_column("run", no_wrap=True, min_width=max((len(run.run_id) for run in runs), default=3))
    for column in ("flow", "status", "started", "keys", "error"):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(
            run.run_id,
            run.flow,
            run.status.value,
            run.started_at.isoformat(),
            ", ".join(run.keys),
            run.error or "",
        )
    console.print(table)


def print_poisoned(console: Console, kept: Sequence[PoisonedMessage], *, title: str | None = None) -> None:
    """What each kept (or waiting) poisoned message was, never its body (it may hold a supplier's contact)."""
    table = Table(title=title or f"Poisoned messages ({len(kept)})")
    table.add_column("message", overflow="fold")  # folded, never cut: it is what --requeue takes
    for column in ("type", "flow", "deliveries", "poisoned at"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", overflow="fold", ratio=1)
    for message in kept:
        table.add_row(
            message.message_id,
            message.type,
            message.flow or "-",
            "?" if message.dequeue_count is None else str(message.dequeue_count),
            message.poisoned_at.isoformat(timespec="seconds"),
            message.reason,
        )
    console.print(table)


def print_run(console: Console, run: RunRecord) -> None:
    console.print(
        f"run {run.run_id}  flow {run.flow} (version {run.flow_version})  {run.status.value}"
        + (f"  replays {run.replay_of}" if run.replay_of else "")
        + ("  DRY RUN" if run.dry_run else ""),
        markup=False,
    )
    table = Table()
    for column in ("action", "status", "attempts", "inputs", "outputs", "error"):
        table.add_column(column, overflow="fold")
    for record in run.actions.values():
        table.add_row(
            record.path,
            record.status.value + (" (deduplicated)" if record.deduplicated else ""),
            str(record.attempts),
            _short(record.inputs),
            _short(record.outputs),
            record.error or "",
        )
    console.print(table)


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"

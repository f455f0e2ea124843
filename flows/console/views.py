"""What the console's pages show, gathered from the stores: plain values for the templates."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Any, NamedTuple
from urllib.parse import quote

from markupsafe import Markup

from flows.bootstrap import BridgeApp
from flows.domain.case import Case, CaseReport, CaseState, CaseSummary
from flows.domain.cpl import CplEntry, DeviceModelCombination
from flows.domain.decisions import problems_seen
from flows.domain.matching import Assessment, assess
from flows.engine.runs import RunRecord
from flows.messages.rendering import TemplateProblem

_PLAIN_ID = re.compile(r"[A-Za-z0-9._~-]+")
ORDER = {
    CaseState.NEEDS_ATTENTION: 0,
    CaseState.RECEIVED: 1,
    CaseState.AWAITING_CPL: 2,
    CaseState.LOADED: 3,
    CaseState.REJECTED: 4,
    CaseState.WITHDRAWN: 5,
    CaseState.CLOSED: 6,
}
"""Cases needing a person first, then those still moving, then the finished ones."""

PREVIEW_EXTRAS: dict[str, Any] = {
    "hours_waiting": 80.0,
    "limit_hours": 72,
    "last_success": "2026-11-24T09:00:00Z",
    "error": "HTTP 503 from the SECAS site (an example)",
    "source": "https://secas.example/cpl.xlsx",
    "flow": "emergency-load",
    "run_id": "run-example",
    "action": "load",
    "previous_entry": None,  # shown as "no longer on the CPL"
    "entry_id": "S1-000316",
    "previous_entry_id": "S1-000300",
    "changes": [{"field": "firmware_version", "old": "01020011", "new": "01020012"}],
    "cells": [
        "sheet 'SMETS1', row 7, column 'Date Added': 'TBC' is not a date, read as no date (an example)"
    ],
    "published_at": "2026-11-24T09:00:00",
    "message_id": "9d3c1f6e0b2a4c5d8e7f6a5b4c3d2e1f",
    "message_type": "event",
}
"""Values only the alert templates take: shown as examples in a preview."""


class CaseRow(NamedTuple):
    """A case as a line of the cases page: its summary and how long it has waited."""

    summary: CaseSummary
    waited: timedelta


def case_rows_html(rows: Sequence[CaseRow], root: str) -> Markup:
    """The cases table's rows, every value escaped. Made here rather than in the template because a
    page of ten thousand rows must render in a fifth of a second (``bench/console_render.py``), and
    Jinja's per-value escaping alone takes longer than that."""
    escaped: dict[str, str] = {}  # suppliers, entries and the like repeat: escape each text once
    lines = []
    root = escape(root)
    for case, waited in rows:
        response_id = case.response_id
        if _PLAIN_ID.fullmatch(response_id):  # most ids: nothing to quote or escape
            href = shown = response_id
        else:
            href, shown = quote(response_id, safe=""), escape(response_id)
        supplier = escaped.get(case.supplier) or escaped.setdefault(case.supplier, escape(case.supplier))
        entry = case.cpl_entry_id or "-"
        entry = escaped.get(entry) or escaped.setdefault(entry, escape(entry))
        problems = escape("; ".join(case.problems)) if case.problems else ""
        state = case.state.value
        lines.append(  # an f-string: str.format with keywords costs twice as much, ten thousand times
            f'<tr>\n<td data-label="Case"><a href="{root}/cases/{href}">{shown}</a></td>\n'
            f'<td data-label="State"><span class="state state-{state}">{state}</span></td>\n'
            f'<td data-label="Supplier">{supplier}</td>\n<td data-label="CPL entry">{entry}</td>\n'
            f'<td data-label="Waiting">{waited_text(waited)}</td>\n'
            f'<td data-label="Problems">{problems}</td>\n</tr>\n'
        )
    return Markup("".join(lines))  # noqa: S704 - every value in it went through html.escape


def waited_text(delta: timedelta) -> str:
    """How long a case has waited, as an operator reads it: hours, or days past two days."""
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"


def case_list(
    cases: Sequence[CaseSummary], *, now: datetime, state: str = "", supplier: str = ""
) -> tuple[list[CaseRow], list[str]]:
    """The cases a filter keeps, those needing attention first and the longest-waiting first within
    a state; and every supplier, for the filter's choices."""
    suppliers = sorted({case.supplier for case in cases if case.supplier})
    rows = [
        CaseRow(case, now - case.state_since)
        for case in cases
        if (not state or case.state.value == state) and (not supplier or case.supplier == supplier)
    ]
    rows.sort(
        key=lambda row: (ORDER[row.summary.state], -row.waited.total_seconds(), row.summary.response_id)
    )
    return rows, suppliers


@dataclass(frozen=True)
class SentMessage:
    kind: str  # "e-mail" or "card"
    template: str
    at: datetime
    run_id: str
    action: str


@dataclass
class CaseView:
    case: Case
    waited: timedelta
    entry: CplEntry | None
    assessment: Assessment | None
    published_at: datetime | None
    sent: list[SentMessage] = field(default_factory=list)

    @property
    def decidable(self) -> bool:
        return self.case.state is CaseState.NEEDS_ATTENTION

    @property
    def seen(self) -> str:
        """The fingerprint of the differences this page shows (the decision form sends it back)."""
        return problems_seen(self.case.problems)

    @staticmethod
    def new_decision_id() -> str:
        """A new id for the decision this page's form may record: posted twice, it is recorded once."""
        return uuid.uuid4().hex

    @property
    def recheckable(self) -> bool:
        return self.case.state in (CaseState.NEEDS_ATTENTION, CaseState.AWAITING_CPL)


def case_view(app: BridgeApp, case: Case, *, now: datetime) -> CaseView:
    """One case with its paired entry, the field-by-field verdict against the latest CPL, and the
    e-mails and cards its runs sent."""
    stored = app.publications.latest()
    entry = None
    assessment = None
    if stored is not None:
        if case.cpl_entry_id:
            entry = stored.publication.by_id().get(case.cpl_entry_id)
        if case.notification is not None:
            assessment = assess(case.notification, stored.publication, loaded=_loaded(case))
    runs = app.bridge.engine.runs.find(key=case.response_id, limit=200)
    view = CaseView(case, now - case.waited_since(), entry, assessment, stored.fetched_at if stored else None)
    seen: set[str] = set()  # a later run that met the same idempotency key reused the message sent
    for run in reversed(runs):  # oldest first: the run that sent it
        for path, record in run.actions.items():
            outputs = record.outputs if isinstance(record.outputs, dict) else {}
            template, sent_id = outputs.get("template"), outputs.get("message_id") or outputs.get("post_id")
            if not isinstance(template, str) or not sent_id or sent_id in seen:
                continue
            if _concerns(path, case.response_id):
                seen.add(str(sent_id))
                kind = "e-mail" if "message_id" in outputs else "card"
                view.sent.append(SentMessage(kind, template, record.ended_at, run.run_id, path))
    view.sent.sort(key=lambda message: message.at)
    return view


def _concerns(path: str, response_id: str) -> bool:
    """An action at the top of a run, or inside the for-each iteration for this case."""
    return "[" not in path or f"[{response_id}]" in path


def run_list(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """Failed runs first (they want a person), then the rest, newest first (as the store gives them)."""
    failed = [run for run in runs if run.status.value == "Failed"]
    return failed + [run for run in runs if run.status.value != "Failed"]


def export_columns(cases: Sequence[CaseReport]) -> list[dict[str, Any]]:
    """One row per case for reporting: no contact details (a report holds none)."""
    rows = []
    for case in sorted(cases, key=lambda c: (c.opened_at, c.response_id)):
        n = case.notification
        decisions = [entry for entry in case.timeline if "decision_id" in entry.evidence]
        rows.append(
            {
                "response_id": case.response_id,
                "supplier": case.supplier,
                "secas_reference": n.secas_reference if n else "",
                "device_type": n.device_type if n else "",
                "state": case.state.value,
                "cpl_entry_id": case.cpl_entry_id or "",
                "opened_at": case.opened_at.isoformat(),
                "last_change_at": case.waited_since().isoformat(),
                "problems": "; ".join(case.problems),
                "decisions": "; ".join(_decision_text(d.evidence) for d in decisions),
            }
        )
    return rows


def _decision_text(evidence: dict[str, Any]) -> str:
    return f"{evidence.get('decision')} by {evidence.get('operator')}: {evidence.get('reason')}"


@dataclass(frozen=True)
class Preview:
    template: str
    kind: str
    subject: str = ""
    text: str = ""
    html: str = ""
    card: dict[str, Any] | None = None
    problem: str = ""


def message_preview(app: BridgeApp, template: str, case: Case | None) -> Preview:
    """A template rendered with a real case (and example values for what only alerts take)."""
    templates = app.templates
    emails, cards = templates.names("email"), templates.names("card")
    if template not in emails and template not in cards:
        raise KeyError(f"no message template {template!r}")
    context: dict[str, Any] = dict(PREVIEW_EXTRAS)
    if case is not None:
        context.update(case=case.model_dump(mode="json"), problems=list(case.problems) or ["(no problems)"])
        stored = app.publications.latest()
        if stored is not None and case.notification is not None:
            assessment = assess(case.notification, stored.publication, loaded=_loaded(case))
            context["assessment"] = assessment.model_dump(mode="json")
            if assessment.entry is not None:
                context["entry"] = assessment.entry.model_dump(mode="json")
        decisions = [e for e in case.timeline if "decision_id" in e.evidence]
        if decisions:
            context["decision_id"] = decisions[-1].evidence["decision_id"]
    try:
        if template in emails:
            responder = (
                case.notification.responder if case and case.notification else "supplier@example.invalid"
            )
            email = templates.email(template, context, to=[responder], idempotency_key="preview")
            return Preview(template, "e-mail", email.subject, email.text_body, email.html_body)
        card = templates.card(template, context, idempotency_key="preview").card
        return Preview(template, "card", card=card)
    except TemplateProblem as problem:
        return Preview(template, "e-mail" if template in emails else "card", problem=str(problem))


def _loaded(case: Case) -> DeviceModelCombination | None:
    """What the case loaded into the SMI, as the flows assess it against (``cases.assess``)."""
    loaded = case.loaded_as()
    return loaded.combination if loaded else None

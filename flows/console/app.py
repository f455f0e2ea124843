"""The console's routes: pages to read, forms to decide and resubmit, exports to report from.

Reads go straight to the stores; the two writes (a decision, a resubmission) go through the bridge,
which records them before anything is queued. Every page is escaped by Jinja's autoescape, served
with a strict Content-Security-Policy (no script at all), and behind ``ConsoleAuth``.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError

from flows.bootstrap import BridgeApp
from flows.console.auth import COOKIE, PLATFORM_SIGNS_IN, SESSION_SECONDS, ConsoleAuth, Operator, Refusal
from flows.console.diagram import flow_svg
from flows.console.http import ConsoleRequest, ConsoleResponse
from flows.console.views import (
    CaseView,
    case_list,
    case_rows_html,
    case_view,
    export_columns,
    message_preview,
    run_list,
    waited_text,
)
from flows.domain.case import CaseState
from flows.domain.decisions import Decision, DecisionKind, decision_problems, find_decision
from flows.engine.runs import RunStatus
from flows.errors import BadInput, TransientError
from flows.export import to_csv

HERE = Path(__file__).resolve().parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
Handler = Callable[[ConsoleRequest, Operator, re.Match[str]], ConsoleResponse]


# What a page says after a form was handled: a fixed name in its address, and the state the page reads
# itself. A text given in the link would let anyone's link put words in the console.
NOTICES = {
    DecisionKind.ACCEPT.value: "accepted",
    DecisionKind.REJECT.value: "rejected",
    DecisionKind.RECHECK.value: "re-check asked",
}
_DECISION_ID = re.compile(r"[0-9a-f]{32}")


def _notice(done: str | None, now: str) -> str:
    return f"{done}: {now}" if done else ""


class ConsoleApp:
    """The console over one built bridge, mounted at ``root`` (``/console`` in the Functions app)."""

    def __init__(self, app: BridgeApp, *, root: str = "/console", key: str | None = None) -> None:
        """``key`` stands in for ``BRIDGE_CONSOLE_KEY`` (``serve`` makes one when none is set)."""
        self.app = app
        self.root = root.rstrip("/")
        if key is None and app.settings.console_key is not None:
            key = app.settings.console_key.get_secret_value()
        platform = os.environ.get(PLATFORM_SIGNS_IN, "").strip().lower() == "true"
        self.auth = ConsoleAuth(app.settings.console_auth, key, platform_signs_in=platform)
        self._pages = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._pages.globals["root"] = self.root
        self._pages.filters["when"] = _when
        self._pages.filters["waited"] = waited_text
        self._pages.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False)
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"/?"), lambda r, o, m: ConsoleResponse.redirect(f"{self.root}/cases")),
            ("GET", re.compile(r"/static/console\.css"), self._css),
            ("GET", re.compile(r"/cases"), self._cases),
            ("GET", re.compile(r"/cases/export\.(csv|json)"), self._export_cases),
            ("GET", re.compile(r"/cases/([^/]+)"), self._case),
            ("GET", re.compile(r"/cases/([^/]+)/timeline\.(csv|json)"), self._export_timeline),
            ("POST", re.compile(r"/cases/([^/]+)/decide"), self._decide),
            ("GET", re.compile(r"/runs"), self._runs),
            ("GET", re.compile(r"/runs/([^/]+)"), self._run),
            ("POST", re.compile(r"/runs/([^/]+)/resubmit"), self._resubmit),
            ("GET", re.compile(r"/flows"), self._flows),
            ("GET", re.compile(r"/previews"), self._previews),
            ("GET", re.compile(r"/previews/email\.html"), self._email_html),
        ]

    # --- entry ----------------------------------------------------------------------------------

    def handle(self, request: ConsoleRequest) -> ConsoleResponse:
        response = self._dispatch(request)
        response.headers = {**SECURITY_HEADERS, **response.headers}
        return response

    def _dispatch(self, request: ConsoleRequest) -> ConsoleResponse:
        given = self.auth.given_key(request)
        if given is not None and request.method == "GET" and self.auth.mode == "key":
            return self._sign_in(request, given)
        try:
            operator = self.auth.operator(request)
        except Refusal as refusal:
            return self._error(refusal.status, str(refusal))
        allowed = []
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            try:
                return handler(request, operator, match)
            except Refusal as refusal:
                return self._error(refusal.status, str(refusal))
            except (BadInput, KeyError, ValueError) as error:  # ValueError: a resubmit's unknown action
                return self._error(404 if isinstance(error, KeyError) else 400, _message(error))
            except TransientError as error:
                return self._error(409, str(error))
        if allowed:
            return self._error(405, f"{request.method} is not allowed here; use {', '.join(allowed)}")
        return self._error(404, f"no page at {self.root}{request.path}")

    def _sign_in(self, request: ConsoleRequest, given: str) -> ConsoleResponse:
        """A key in the link opens a session and is dropped from the address (and its history)."""
        if self.auth.mode != "key" or not self.auth.key_matches(given):
            return self._error(401, "that console key is not valid")
        query = {name: value for name, value in request.query.items() if name != "code"}
        location = f"{self.root}{request.path}" + (f"?{urlencode(query)}" if query else "")
        response = ConsoleResponse.redirect(location)
        secure = "; Secure" if request.header("x-forwarded-proto") == "https" else ""
        response.headers["Set-Cookie"] = (
            f"{COOKIE}={self.auth.open_session()}; Path={self.root}/; HttpOnly; SameSite=Strict; "
            f"Max-Age={SESSION_SECONDS}{secure}"
        )
        return response

    # --- pages ----------------------------------------------------------------------------------

    def _cases(self, request: ConsoleRequest, operator: Operator, match: re.Match[str]) -> ConsoleResponse:
        state, supplier = request.query.get("state", ""), request.query.get("supplier", "")
        if state and state not in {s.value for s in CaseState}:
            raise BadInput(f"no state {state!r}; states: {', '.join(s.value for s in CaseState)}")
        rows, suppliers = case_list(
            self.app.cases.summaries(), now=self._now(), state=state, supplier=supplier
        )
        return self._page(
            "cases.html.j2", operator, title="Cases", rows=rows, rows_html=case_rows_html(rows, self.root),
            suppliers=suppliers, state=state,
            supplier=supplier, states=[s.value for s in CaseState],
        )  # fmt: skip

    def _case(self, request: ConsoleRequest, operator: Operator, match: re.Match[str]) -> ConsoleResponse:
        view = self._case_view(match.group(1))
        done = NOTICES.get(request.query.get("notice", ""))
        return self._page(
            "case.html.j2", operator, title=f"Case {view.case.response_id}", view=view,
            notice=_notice(done, f"the case is now {view.case.state.value}"),
        )  # fmt: skip

    def _decide(self, request: ConsoleRequest, operator: Operator, match: re.Match[str]) -> ConsoleResponse:
        form = request.form()
        self.auth.check_post(request, operator, form.get("csrf", ""))
        response_id = match.group(1)
        view = self._case_view(response_id)
        name = operator.name or form.get("operator", "")
        given_id = form.get("decision_id", "")
        try:
            decision = Decision(
                # made when the page was shown: the same form posted twice is one decision
                decision_id=given_id if _DECISION_ID.fullmatch(given_id) else uuid.uuid4().hex,
                kind=form.get("kind", ""),
                operator=name,
                reason=form.get("reason", ""),
                seen=form.get("seen") or None,
            )
        except ValidationError as error:
            problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
            return self._page("case.html.j2", operator, status=400, title=f"Case {response_id}", view=view,
                              errors=problems, form=form)  # fmt: skip
        shown = f"{self.root}/cases/{quote(response_id)}?notice={decision.kind.value}"
        if find_decision(view.case, decision.decision_id) is not None:  # this form, posted again
            return ConsoleResponse.redirect(shown)
        problems = decision_problems(view.case, decision)
        if problems:
            return self._page("case.html.j2", operator, status=409, title=f"Case {response_id}", view=view,
                              errors=problems, form=form)  # fmt: skip
        self.app.decide(response_id, decision)
        return ConsoleResponse.redirect(shown)

    def _runs(self, request: ConsoleRequest, operator: Operator, match: re.Match[str]) -> ConsoleResponse:
        flow, status = request.query.get("flow", ""), request.query.get("status", "")
        if status and status not in {s.value for s in RunStatus}:
            raise BadInput(f"no run status {status!r}; statuses: {', '.join(s.value for s in RunStatus)}")
        runs = self.app.bridge.engine.runs.find(
            flow=flow or None, status=RunStatus(status) if status else None, limit=200
        )
        return self._page(
            "runs.html.j2", operator, title="Runs", runs=run_list(runs), flow=flow, chosen_status=status,
            flows=sorted(self.app.bridge.flows), statuses=[s.value for s in RunStatus],
        )  # fmt: skip

    def _run(self, request: ConsoleRequest, operator: Operator, match: re.Match[str]) -> ConsoleResponse:
        run = self.app.bridge.engine.runs.get(match.group(1))
        if run is None:
            raise KeyError(f"no run {match.group(1)!r}")
        done = "resubmitted" if request.query.get("notice") == "resubmitted" else None
        return self._page("run.html.j2", operator, title=f"Run {run.run_id}", run=run,
                          notice=_notice(done, f"this run {run.run_id} is {run.status.value}"))  # fmt: skip

    def _resubmit(self, request: ConsoleRequest, operator: Operator, match: re.Match[str]) -> ConsoleResponse:
        form = request.form()
        self.auth.check_post(request, operator, form.get("csrf", ""))
        previous = self.app.bridge.engine.runs.get(match.group(1))
        if previous is None:
            raise KeyError(f"no run {match.group(1)!r}")
        if previous.status is not RunStatus.FAILED:
            raise BadInput(
                f"run {previous.run_id} did not fail ({previous.status.value}): nothing to resubmit"
            )
        from_action = form.get("from_action") or None
        run = self.app.bridge.resubmit(previous.run_id, from_action=from_action)
        if self.app.parts.local_queue:
            self.app.bridge.drain()
        return ConsoleResponse.redirect(f"{self.root}/runs/{quote(run.run_id)}?notice=resubmitted")

    def _flows(self, request: ConsoleRequest, operator: Operator, match: re.Match[str]) -> ConsoleResponse:
        flows = []
        for name, source in sorted(self.app.bridge.flows.items()):
            recent = self.app.bridge.engine.runs.find(flow=name, limit=100)
            done = [run for run in recent if run.status is not RunStatus.RUNNING]
            succeeded = sum(run.status is RunStatus.SUCCEEDED for run in done)
            flows.append(
                {
                    "name": name,
                    "definition": source.definition,
                    "svg": flow_svg(source.definition),
                    "runs": len(done),
                    "succeeded": succeeded,
                    "rate": round(100 * succeeded / len(done)) if done else None,
                }
            )
        return self._page("flows.html.j2", operator, title="Flows", flows=flows)

    def _previews(self, request: ConsoleRequest, operator: Operator, match: re.Match[str]) -> ConsoleResponse:
        templates = self.app.templates
        chosen = request.query.get("template", "")
        response_id = request.query.get("case", "")
        # Summaries to choose from; the one case shown is read whole.
        cases: list[Any] = [summary for summary in self.app.cases.summaries() if summary.notified]
        shown = response_id or (cases[0].response_id if cases else "")
        case = self.app.cases.get(shown) if shown else None
        if case is None and response_id:  # another case's message was shown as if it were this one's
            raise KeyError(f"no case {response_id!r}")
        if case is not None and case.notification is None:
            cases.append(case)  # its form could not be read (its own link asks for it): chosen, not listed
        preview = message_preview(self.app, chosen, case) if chosen else None
        return self._page(
            "previews.html.j2", operator, title="Message previews", emails=templates.names("email"),
            cards=templates.names("card"), chosen=chosen, case=case, cases=cases, preview=preview,
        )  # fmt: skip

    def _email_html(
        self, request: ConsoleRequest, operator: Operator, match: re.Match[str]
    ) -> ConsoleResponse:
        """An e-mail's HTML part alone, for the preview's sandboxed frame: no script, no requests."""
        response_id = request.query.get("case", "")
        case = self.app.cases.get(response_id)
        if case is None and response_id:  # rendered without it, the page said "'case' is undefined"
            raise KeyError(f"no case {response_id!r}")
        preview = message_preview(self.app, request.query.get("template", ""), case)
        if preview.kind != "e-mail":
            raise BadInput(f"{preview.template!r} is not an e-mail template")
        headers = {
            "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; "
            "frame-ancestors 'self'",
            "X-Frame-Options": "SAMEORIGIN",
        }
        return ConsoleResponse(body=(preview.html or preview.problem).encode(), headers=headers)

    # --- exports ----------------------------------------------------------------------------------

    def _export_cases(
        self, request: ConsoleRequest, operator: Operator, match: re.Match[str]
    ) -> ConsoleResponse:
        start, end = _day(request.query.get("from", "")), _day(request.query.get("to", ""))
        rows = [
            row
            for row in export_columns(self.app.cases.reports())
            if (start is None or row["opened_at"][:10] >= start.isoformat())
            and (end is None or row["opened_at"][:10] <= end.isoformat())
        ]
        period = f"{start or 'start'}_to_{end or 'now'}"
        return _download(match.group(1), rows, f"cases_{period}")

    def _export_timeline(
        self, request: ConsoleRequest, operator: Operator, match: re.Match[str]
    ) -> ConsoleResponse:
        view = self._case_view(match.group(1))
        rows = [
            {
                "response_id": view.case.response_id,
                "at": entry.at.isoformat(),
                "from_state": entry.from_state.value if entry.from_state else "",
                "to_state": entry.to_state.value,
                "cause": entry.cause,
                "operator": entry.evidence.get("operator", ""),
                "reason": entry.evidence.get("reason", ""),
                "evidence": json.dumps(entry.evidence, sort_keys=True),
            }
            for entry in view.case.timeline
        ]
        return _download(match.group(2), rows, f"case_{view.case.response_id}_timeline")

    # --- helpers ----------------------------------------------------------------------------------

    def _case_view(self, response_id: str) -> CaseView:
        case = self.app.cases.get(response_id)
        if case is None:
            raise KeyError(f"no case {response_id!r}")
        return case_view(self.app, case, now=self._now())

    def _now(self) -> datetime:
        return self.app.bridge.now()

    def _page(
        self, template: str, operator: Operator, *, status: int = 200, **context: Any
    ) -> ConsoleResponse:
        context.setdefault("errors", [])
        context.setdefault("form", {})
        body = self._pages.get_template(template).render(
            operator=operator, csrf=self.auth.csrf_token(operator), now=self._now(), **context
        )
        return ConsoleResponse(status=status, body=body.encode())

    def _error(self, status: int, message: str) -> ConsoleResponse:
        body = self._pages.get_template("error.html.j2").render(title=f"Error {status}", status=status,
                                                               message=message)  # fmt: skip
        return ConsoleResponse(status=status, body=body.encode())

    def _css(self, request: ConsoleRequest, operator: Operator, match: re.Match[str]) -> ConsoleResponse:
        css = (HERE / "static" / "console.css").read_bytes()
        return ConsoleResponse(body=css, content_type="text/css; charset=utf-8")


def _download(kind: str, rows: list[dict[str, Any]], stem: str) -> ConsoleResponse:
    """Rows as a CSV (formula prefixes neutralised by ``to_csv``) or a JSON array, as an attachment."""
    safe_stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)
    if kind == "csv":
        columns = list(rows[0]) if rows else ["response_id"]
        body, content_type = to_csv(rows, columns).encode("utf-8-sig"), "text/csv; charset=utf-8"
    else:
        body, content_type = json.dumps(rows, indent=2).encode(), "application/json"
    disposition = f'attachment; filename="{safe_stem}.{kind}"'
    return ConsoleResponse(body=body, content_type=content_type, headers={"Content-Disposition": disposition})


def _day(text: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise BadInput(f"not a date (YYYY-MM-DD): {text!r}") from error


def _when(moment: datetime | str | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _message(error: Exception) -> str:
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
